"""The exercise cells as the lessons ship them: starters and solutions read from the notebooks' sources.

A *starter* cell begins with the line ``# ✏️ Exercise``; a *solution* cell carries the cell tag ``solution`` (and
is collapsed in JupyterLab and Colab). Each is executed on its own, in a namespace holding only what the course
promises such a cell may use (``math``, ``np``, ``torch``, ``nn``, ``F`` and the ``check_*`` functions), so the
unit tests check exactly the code a learner reads, without running whole notebooks.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import jupytext
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmlab import exercises

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STARTER_MARK = "# ✏️ Exercise"


@dataclass(frozen=True)
class ExerciseCell:
    """One executed exercise cell: the lesson it is in, its kind, the functions it defines, what it printed."""

    lesson: str
    kind: str  # "starter" or "solution"
    source: str
    functions: dict
    printed: str


def _base_namespace() -> dict:
    ns = {"math": math, "np": np, "torch": torch, "nn": nn, "F": F, "__name__": "exercise_cell"}
    ns.update({name: getattr(exercises, name) for name in exercises.__all__ if name.startswith("check_")})
    return ns


def _kind(cell) -> str | None:
    if cell.cell_type != "code":
        return None
    if "solution" in cell.metadata.get("tags", []):
        return "solution"
    if cell.source.lstrip().startswith(STARTER_MARK):
        return "starter"
    return None


def exercise_cells(notebooks: Path = NOTEBOOKS) -> list[ExerciseCell]:
    """Every starter and solution cell of every lesson, each executed alone (stdout captured)."""
    cells = []
    for src in sorted(notebooks.glob("[0-9][0-9]_*.py")):
        for cell in jupytext.read(src).cells:
            kind = _kind(cell)
            if kind is None:
                continue
            ns = _base_namespace()
            before = set(ns)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(cell.source, f"{src.name} ({kind} cell)", "exec"), ns)  # noqa: S102 - our own notebooks
            functions = {k: v for k, v in ns.items() if k not in before and callable(v) and not k.startswith("_")}
            cells.append(ExerciseCell(src.stem, kind, cell.source, functions, out.getvalue()))
    return cells


def namespace(kind: str, cells: list[ExerciseCell] | None = None) -> SimpleNamespace:
    """All functions defined by the ``kind`` cells ("starter" or "solution"), by name."""
    found: dict = {}
    for cell in cells if cells is not None else exercise_cells():
        if cell.kind == kind:
            found.update(cell.functions)
    return SimpleNamespace(**found)
