"""Fixtures for the real-browser test: one JupyterLab server and one headless Chromium for all lessons.

Run it with ``make browser-test`` (installs Chromium and Playwright when missing). Directly:
``pytest browser_tests [--lesson notebooks/00_setup.ipynb ...] [--lesson-timeout 300]``.
It lives outside ``tests/`` so that the unit run (``pytest tests``) never starts a browser.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "browser"
INLINE = "module://matplotlib_inline.backend_inline"
# As root Chromium needs --no-sandbox; on a closed network the background services only produce refused
# connections, so they are switched off.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# JupyterLab user settings for the test: no autosave (the lessons' files must stay output-free), every cell
# attached to the page (no windowing, so every output can be inspected), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
RESULTS: list[dict] = []  # one row per lesson, printed at the end of the run


def pytest_addoption(parser):
    group = parser.getgroup("mmlab browser test")
    group.addoption(
        "--lesson",
        action="append",
        default=[],
        help="notebook to test (repeatable; a path inside the repository); default: every notebooks/NN_*.ipynb",
    )
    group.addoption(
        "--lesson-timeout",
        type=float,
        default=float(os.environ.get("MMLAB_LESSON_TIMEOUT", 300)),
        help="seconds allowed for one lesson's Run All (default 300, or $MMLAB_LESSON_TIMEOUT)",
    )


def _lessons(config) -> list[Path]:
    chosen = config.getoption("--lesson")
    if not chosen:
        return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    paths = [Path(p).resolve() for p in chosen]
    for p in paths:
        if not p.is_file() or ROOT not in p.parents:
            raise pytest.UsageError(f"--lesson {p}: not a notebook inside {ROOT}")
    return paths


def pytest_generate_tests(metafunc):
    if "lesson" in metafunc.fixturenames:
        lessons = _lessons(metafunc.config)
        metafunc.parametrize("lesson", lessons, ids=[p.stem for p in lessons])


@pytest.fixture(scope="session")
def lesson_timeout(pytestconfig) -> float:
    return pytestconfig.getoption("--lesson-timeout")


@pytest.fixture(scope="session")
def lesson_results() -> list[dict]:
    return RESULTS


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, method: str, path: str):
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self, notebook: str | None = None) -> None:
        """Delete the sessions (and so shut down the kernels) of ``notebook``, or all of them."""
        for s in self.api("GET", "/api/sessions"):
            if notebook is None or s.get("path") == notebook:
                self.api("DELETE", f"/api/sessions/{s['id']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A JupyterLab server on a free localhost port with a token and its own config, settings, workspace and
    runtime folders; kernels inherit its environment (inline matplotlib, ``OMP_NUM_THREADS``, offline hub)."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    settings = tmp / "settings"
    for rel, values in LAB_SETTINGS.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    config = tmp / "config"
    config.mkdir()
    # news_url=None switches the announcements feed off (it can only be set to None in a config file)
    (config / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {"news_url": None}}))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "jupyterlab.log"
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
        f"--ServerApp.root_dir={ROOT}",
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
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=ROOT, log=log)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
        try:
            server.api("GET", "/api/status")
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not answer within 120 s; see {log}")
            time.sleep(0.3)
    yield server
    try:
        server.shutdown_kernels()
    except OSError:
        pass
    proc.send_signal(signal.SIGINT)  # jupyter_server shuts its kernels down on SIGINT/SIGTERM
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group this fixture started, and only it
        proc.wait()


def chromium_executable() -> str | None:
    """Debian's Chromium (or ``$MMLAB_CHROMIUM``); ``None`` lets Playwright use a browser it installed."""
    explicit = os.environ.get("MMLAB_CHROMIUM")
    if explicit:
        return explicit
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs Playwright: run `make browser-test` (or pip install -e '.[browser]')")
    exe = chromium_executable()
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        except Exception as e:  # noqa: BLE001 - say what to install, whatever Playwright raised
            pytest.fail(f"could not start Chromium ({exe or 'Playwright default'}): {e}\n"
                        "install it (Debian: apt-get install chromium) or set MMLAB_CHROMIUM")  # fmt: skip
        yield b
        b.close()


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("lessons in JupyterLab (real browser)")
    tr.write_line(f"{'lesson':28s} {'open':>6s} {'run all':>8s} {'widget':>7s}  result")
    for r in RESULTS:
        tr.write_line(
            f"{r['lesson']:28s} {r.get('open_s', 0):6.1f} {r.get('run_s', 0):8.1f} {r.get('widget_s', 0):7.1f}  "
            f"{r['result']}"
        )
    tr.write_line(f"screenshots and the server log: {ARTIFACTS.relative_to(ROOT)}/")
    (ARTIFACTS / "summary.json").write_text(json.dumps(RESULTS, indent=1))
