"""The runtime report's notebook runner: outputs, errors, timeouts, and a table row per lesson."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import _results  # noqa: E402
import course_runtime  # noqa: E402


def _notebook(tmp_path: Path, *sources: str) -> Path:
    cells = [new_markdown_cell("# title")] + [new_code_cell(s) for s in sources]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    return path


def test_runs_every_cell_and_keeps_outputs(tmp_path):
    path = _notebook(
        tmp_path,
        "x = 2 + 3\nprint('x is', x)",
        "import ipywidgets as w\n_ = w.interact(lambda a: print('a =', a), a=w.IntSlider(4, 1, 9))",
        "x * 10",
    )
    row = course_runtime.run_lesson(path, cell_timeout=60, keep_dir=tmp_path / "out")
    assert row["error"] is None
    assert row["wall_s"] > 0 and row["peak_bytes"] > 10 * 2**20
    assert row["slowest"][1] in (1, 2, 3)
    executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3]
    assert code[0].outputs[0]["text"] == "x is 5\n"
    assert code[2].outputs[0]["data"]["text/plain"] == "50"


def test_stops_at_the_first_error_and_names_it(tmp_path):
    path = _notebook(tmp_path, "a = 1", "raise ValueError('broken lesson')", "never = True")
    row = course_runtime.run_lesson(path, cell_timeout=60)
    assert row["error"] == "cell 2: CellExecutionError: ValueError: broken lesson"
    assert "failed" in course_runtime._flags(row)[0]


def test_a_cell_over_its_timeout_fails_instead_of_hanging(tmp_path):
    path = _notebook(tmp_path, "import time\ntime.sleep(30)")
    row = course_runtime.run_lesson(path, cell_timeout=2)
    assert row["error"] == "cell 1: CellTimeoutError: cell ran over 2 s"  # not the sleep finishing: no hang


def test_budgets_are_checked_on_calibrated_time(monkeypatch):
    """A lesson over its target only because the machine is twice as slow as the reference is not flagged."""
    monkeypatch.setattr(_results, "calibrate", lambda: 2 * _results.REFERENCE_CALIBRATION_S)
    slow_machine = {"lesson": "04_x", "target_s": 90.0, "error": None, "wall_s": 150.0, "cpu_s": 200.0,
                    "peak_bytes": 2**29, "slowest": (10.0, 3, "fit(...)")}  # fmt: skip
    slow_machine["ref_s"] = _results.reference_seconds(slow_machine["wall_s"])
    assert slow_machine["ref_s"] == 75.0 and course_runtime._flags(slow_machine) == []
    slow_lesson = dict(slow_machine, wall_s=200.0, ref_s=_results.reference_seconds(200.0))
    assert course_runtime._flags(slow_lesson) == ["**over time** (+10 reference s)"]
    table = course_runtime.render([slow_machine, slow_lesson], "python benchmarks/course_runtime.py", None)
    assert "| 04_x | 150.0 s | 75.0 s |" in table and "reference s" in table
