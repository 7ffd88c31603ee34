"""A pytest plugin that keeps what nbval executed: each notebook, with the outputs of that run, for the website.

    python -m pytest -p site_src.executed_copies --executed-dir build/executed --nbval-lax ... notebooks/*.ipynb

nbval runs every cell of a lesson in one kernel and collects each cell's outputs to compare them; this plugin
puts those outputs into the notebook and writes it to ``--executed-dir`` as soon as every cell of it has passed, so
that ``make site`` renders the lessons without executing them a second time. A notebook with a failed cell is not
written (and an older copy of it is removed): the site never shows a stale or broken run. Each copy records the
SHA-256 of the notebook it was run from (``metadata.mmlab_site.source_sha256``), which ``make site`` compares
with the notebook in the working tree.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest

_RUNS: dict[Path, dict] = {}  # notebook path -> {"nb": the notebook node nbval read, "failed": bool, "cells": int}


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    folder = item.config.getoption("--executed-dir")
    if not folder or call.when != "call" or not hasattr(item, "test_outputs") or not hasattr(item, "cell"):
        return
    path = Path(str(item.fspath)).resolve()
    run = _RUNS.setdefault(path, {"nb": item.parent.nb, "failed": False, "cells": 0})
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
    nbformat.write(run["nb"], target)
    run["written"] = True


def pytest_sessionfinish(session):
    folder = session.config.getoption("--executed-dir")
    if not folder:
        return
    for path, run in _RUNS.items():
        if not run.get("written"):  # a failure, a skip or a partial (-k, -x, interrupted) run: keep nothing
            (Path(folder) / path.name).unlink(missing_ok=True)
