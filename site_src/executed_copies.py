"""A pytest plugin that keeps what nbval executed: each notebook, with the outputs of that run, for the website.

    python -m pytest -p site_src.executed_copies --executed-dir build/executed --nbval-lax ... notebooks/*.ipynb

nbval runs every cell of a lesson in one kernel and collects each cell's outputs to compare them; this plugin
puts those outputs into the notebook and writes it to ``--executed-dir`` as soon as every cell of it has passed, so
that ``make site`` renders the lessons without executing them a second time. A notebook with a failed cell is not
written (and an older copy of it is removed): the site never shows a stale or broken run. Each copy records the
SHA-256 of the notebook it was run from (``metadata.mmlab_site.source_sha256``), which ``make site`` compares
with the notebook in the working tree.

Widget state. nbval reads the kernel's iopub messages and ignores comm messages, so a figure that lives only in a
widget's state — :func:`mmlab.widgets.interact` sets its ``Output`` widget's ``outputs`` instead of capturing
displays, see that module — would be lost. The plugin therefore also wraps nbval's message getter
(``IPyNbFile.get_kernel_message``) and records, per notebook, the state of every widget from the ``comm_open`` and
``comm_msg`` messages that pass through it (:class:`WidgetStates`), and saves it in the copy's
``metadata.widgets`` in the format nbclient writes (``application/vnd.jupyter.widget-state+json``), where
``site_src.build`` finds each widget's default figure.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from pathlib import Path
from typing import Any

import pytest

# notebook path -> {"nb": the notebook node nbval read, "failed": bool, "cells": int, "widgets": WidgetStates}
_RUNS: dict[Path, dict] = {}
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


class WidgetStates:
    """The state of every widget a kernel opened, from its iopub ``comm_open`` / ``comm_msg`` messages.

    Each message with ``data.state`` updates that comm's state (later keys win), and binary buffers are kept
    base64-encoded by path — what ``nbclient.NotebookClient.handle_comm_msg`` does; :meth:`metadata` is then what
    nbclient saves as ``nb.metadata.widgets``.
    """

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.buffers: dict[str, dict[tuple, dict[str, Any]]] = {}

    def feed(self, msg: dict) -> None:
        """Record one kernel message (any other than a comm message with a state is ignored)."""
        kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
        if kind not in ("comm_open", "comm_msg"):
            return
        content = msg.get("content", {})
        data = content.get("data", {})
        if not isinstance(data, dict) or "state" not in data or "comm_id" not in content:
            return
        comm_id = content["comm_id"]
        self.states.setdefault(comm_id, {}).update(data["state"])
        for path, buf in zip(data.get("buffer_paths") or [], msg.get("buffers") or []):
            self.buffers.setdefault(comm_id, {})[tuple(path)] = {
                "data": base64.b64encode(bytes(buf)).decode("ascii"),
                "encoding": "base64",
                "path": path,
            }

    def metadata(self) -> dict | None:
        """``{"application/vnd.jupyter.widget-state+json": {...}}`` as nbclient writes it; None without widgets."""
        state = {}
        for comm_id, s in self.states.items():
            if "_model_name" not in s:  # a comm that is not a widget model
                continue
            state[comm_id] = {
                "model_name": s.get("_model_name"),
                "model_module": s.get("_model_module"),
                "model_module_version": s.get("_model_module_version"),
                "state": s,
            }
            if self.buffers.get(comm_id):
                state[comm_id]["buffers"] = list(self.buffers[comm_id].values())
        if not state:
            return None
        return {WIDGET_STATE_MIME: {"state": state, "version_major": 2, "version_minor": 0}}


def _run(path: Path, nb) -> dict:
    return _RUNS.setdefault(path, {"nb": nb, "failed": False, "cells": 0, "widgets": WidgetStates()})


def source_sha256(path: Path) -> str:
    """SHA-256 of a notebook file's bytes: what an executed copy was run from."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stamp(nb, source: Path, executor: str) -> None:
    """Record in ``nb.metadata.mmlab_site`` which notebook (by hash) and which executor produced these outputs."""
    nb.metadata["mmlab_site"] = {
        "source": Path(source).name,
        "source_sha256": source_sha256(source),
        "executor": executor,
        "executed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def pytest_addoption(parser):
    parser.getgroup("mmlab website").addoption(
        "--executed-dir",
        default=None,
        help="write each notebook that nbval ran without a failure, with its outputs, into this folder",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    """Before nbval runs a cell: make its notebook's message getter record widget state (once per notebook)."""
    if not item.config.getoption("--executed-dir") or not hasattr(item, "cell"):
        return
    notebook = item.parent
    if getattr(notebook, "_mmlab_records_widgets", False) or not hasattr(notebook, "get_kernel_message"):
        return
    widgets = _run(Path(str(item.fspath)).resolve(), notebook.nb)["widgets"]
    get = notebook.get_kernel_message

    def get_kernel_message(timeout=None, stream="iopub"):
        msg = get(timeout=timeout, stream=stream)
        if stream == "iopub":
            widgets.feed(msg)
        return msg

    notebook.get_kernel_message = get_kernel_message
    notebook._mmlab_records_widgets = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    folder = item.config.getoption("--executed-dir")
    if not folder or call.when != "call" or not hasattr(item, "test_outputs") or not hasattr(item, "cell"):
        return
    path = Path(str(item.fspath)).resolve()
    run = _run(path, item.parent.nb)
    report = outcome.get_result()
    run["cells"] += 1
    if report.failed or item.test_outputs is None:
        run["failed"] = True
        return
    run["count"] = run.get("count", 0) + 1
    item.cell.outputs = list(item.test_outputs)
    item.cell.execution_count = run["count"]
    for out in item.cell.outputs:
        if out.get("output_type") == "execute_result":
            out["execution_count"] = run["count"]
    if run["cells"] == sum(c.cell_type == "code" for c in run["nb"].cells):  # the notebook's last cell: write it
        _write(path, run, Path(folder))


def _write(path: Path, run: dict, out_dir: Path) -> None:
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    if run["failed"]:
        target.unlink(missing_ok=True)
        return
    stamp(run["nb"], path, "nbval")
    widgets = run["widgets"].metadata()
    if widgets:
        run["nb"].metadata["widgets"] = widgets
    else:
        run["nb"].metadata.pop("widgets", None)
    nbformat.write(run["nb"], target)
    run["written"] = True


def pytest_sessionfinish(session):
    folder = session.config.getoption("--executed-dir")
    if not folder:
        return
    for path, run in _RUNS.items():
        if not run.get("written"):  # a failure, a skip or a partial (-k, -x, interrupted) run: keep nothing
            (Path(folder) / path.name).unlink(missing_ok=True)
