"""The browser test's JupyterLab server and kernels stop when the test run is stopped from outside.

Measured before this existed: a CI timeout left JupyterLab and a kernel at 100% CPU for minutes after `make` had
died. Here a child process starts a server and a kernel the way the browser test does, and is then stopped by
SIGTERM (a CI timeout, ``kill``) or SIGKILL (nothing can be caught); both the server and the kernel must be gone
soon after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.browser


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_server_and_kernel_stop_with_the_test_process(sig, tmp_path):
    child = subprocess.Popen(
        [sys.executable, str(HERE / "lab_server.py"), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline()
        assert line, "the child did not start JupyterLab"
        pids = json.loads(line)
        assert set(pids) == {"server", "kernel"}, f"no kernel process found: {pids}"
        assert all(_alive(p) for p in pids.values())
        child.send_signal(sig)
        child.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {k: p for k, p in pids.items() if _alive(p)}
        assert not left, f"still running 30 s after {sig.name} to the test process: {left}"
    finally:
        if child.poll() is None:
            child.kill()
