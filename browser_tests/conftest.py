"""Fixtures for the real-browser test: one JupyterLab server and one headless Chromium for all lessons.

Run it with ``make browser-test`` (installs Chromium and Playwright when missing). Directly:
``pytest browser_tests [--lesson notebooks/00_setup.ipynb ...] [--lesson-timeout 300]``.
It lives outside ``tests/`` so that the unit run (``pytest tests``) never starts a browser.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_server import install_signal_handlers, start_lab, stop_lab  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "browser"
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


def pytest_configure(config):
    install_signal_handlers()  # a SIGTERM (CI timeout, kill) stops JupyterLab and its kernels too


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One JupyterLab server for the whole run (see ``lab_server.start_lab``), stopped at the end, on Ctrl-C,
    on SIGTERM, and — through PR_SET_PDEATHSIG — even when pytest is killed outright."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        server = start_lab(ROOT, tmp_path_factory.mktemp("jupyterlab"), ARTIFACTS / "jupyterlab.log")
    except RuntimeError as e:
        pytest.fail(str(e))
    yield server
    stop_lab(server)


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
