"""Start and stop the browser test's JupyterLab server so that it never outlives the test run.

The server runs in its own session (so that a Ctrl-C in the terminal reaches pytest, which then shuts it down
in the fixture's teardown) and asks the kernel to send it SIGTERM when the process that started it dies
(Linux ``PR_SET_PDEATHSIG``): a CI timeout, ``kill``, or even ``kill -9`` of pytest stops JupyterLab too, and
JupyterLab's kernels exit with it (ipykernel polls its parent). :func:`install_signal_handlers` turns SIGTERM
and SIGHUP into an orderly stop of every server started here. Importable without Playwright.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

INLINE = "module://matplotlib_inline.backend_inline"
# JupyterLab user settings for the test: no autosave (the lessons' files must stay output-free), no news or update
# checks, and JupyterLab's default windowing, "contentVisibility", named so that a new default cannot change the
# test: every cell is in the page (every output can be inspected) and the browser skips drawing the ones out of view.
# ("none" draws every cell on every change: the lessons' Run All took a few seconds longer each, measured.)
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "contentVisibility"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
_SERVERS: list[subprocess.Popen] = []  # every server started by this process and not yet stopped


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen

    def api(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self, notebook: str | None = None) -> None:
        """Delete the sessions (and so shut down the kernels) of ``notebook``, or all of them."""
        for s in self.api("GET", "/api/sessions"):
            if notebook is None or s.get("path") == notebook:
                self.api("DELETE", f"/api/sessions/{s['id']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Run in the child between fork and exec: own session, and SIGTERM when the parent dies (Linux)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except OSError:
            pass


def start_lab(root: Path, tmp: Path, log: Path, timeout: float = 120.0) -> Lab:
    """A JupyterLab server on a free localhost port with a token and its own config, settings, workspace and
    runtime folders under ``tmp``; kernels inherit its environment (inline matplotlib, ``OMP_NUM_THREADS``,
    offline hub). Raises ``RuntimeError`` if it exits or does not answer within ``timeout`` seconds."""
    settings = tmp / "settings"
    for rel, values in LAB_SETTINGS.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    config = tmp / "config"
    config.mkdir(parents=True, exist_ok=True)
    # news_url=None switches the announcements feed off (it can only be set to None in a config file)
    (config / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {"news_url": None}}))
    log.parent.mkdir(parents=True, exist_ok=True)
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        IPYTHONDIR=str(tmp / "ipython"),
        MPLBACKEND=INLINE,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env.setdefault("OMP_NUM_THREADS", "2")  # kernels inherit it: torch must not spin on more cores than exist
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: read cell and kernel state
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.terminals_enabled=False",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI machines often run as root
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
    _SERVERS.append(proc)
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log, proc=proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            stop_lab(server)
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
        try:
            server.api("GET", "/api/status")
            return server
        except OSError:
            if time.monotonic() > deadline:
                stop_lab(server)
                raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s; see {log}") from None
            time.sleep(0.3)


def _stop_process(proc: subprocess.Popen, grace: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # jupyter_server shuts its kernels down on SIGINT/SIGTERM
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the process group this module started, and only it
            except ProcessLookupError:
                pass
            proc.wait()
    if proc in _SERVERS:
        _SERVERS.remove(proc)


def stop_lab(server: Lab) -> None:
    """Shut down the server's kernels, then the server (SIGINT, and SIGKILL to its group after 20 s)."""
    if server.proc.poll() is None:
        try:
            server.shutdown_kernels()
        except OSError:
            pass
    _stop_process(server.proc)


def _on_signal(signum, frame) -> None:
    for proc in list(_SERVERS):
        _stop_process(proc, grace=10.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # die of the same signal, as if nothing had been caught


def install_signal_handlers() -> None:
    """On SIGTERM or SIGHUP, stop every server started here, then die of that signal."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


if __name__ == "__main__":  # used by test_lab_cleanup.py: start a server and a kernel, print their pids, wait
    import tempfile

    install_signal_handlers()
    tmp = Path(tempfile.mkdtemp(prefix="mmlab-lab-"))
    lab = start_lab(Path(sys.argv[1]), tmp, tmp / "jupyterlab.log")
    kernel = lab.api("POST", "/api/kernels", {"name": "python3"})
    pids = {"server": lab.proc.pid}
    deadline = time.monotonic() + 60
    while "kernel" not in pids and time.monotonic() < deadline:  # the kernel is a child of the server
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(lab.proc.pid)], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if "ipykernel" in line:
                pids["kernel"] = int(line.split()[0])
        time.sleep(0.3)
    print(json.dumps(pids), flush=True)
    time.sleep(600)
