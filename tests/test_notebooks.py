"""Static gates on the lessons: paired and in sync, Colab cell first, no CUDA-only code, small, no outputs."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from mmlab.colab import REPO_URL, colab_cell_source, colab_link

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
SOURCES = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))


def _cells(path: Path) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in jupytext.read(path).cells]


def test_there_are_lessons():
    assert SOURCES and NOTEBOOKS


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_percent_source(nb):
    assert nb.with_suffix(".py").exists(), f"{nb.name} needs its jupytext py:percent source"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_pair_in_sync(src):
    nb = src.with_suffix(".ipynb")
    assert nb.exists(), f"{src.name} has no .ipynb twin: run `make sync`"
    assert _cells(src) == _cells(nb), f"{nb.name} and {src.name} differ: run `jupytext --sync {src}`"
    assert "py:percent" in src.read_text().split("# ---", 2)[1], "the source must be jupytext py:percent"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_small_and_without_outputs(nb):
    assert nb.stat().st_size < 1_000_000, f"{nb.name} is over 1 MB"
    book = nbformat.read(nb, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{nb.name}: commit notebooks without outputs"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_colab_cell_is_first_code_cell(src):
    code = [s for t, s in _cells(src) if t == "code"]
    assert code and code[0] == colab_cell_source().strip(), f"{src.name}: first code cell must be the Colab cell"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_no_cuda_calls_or_absolute_paths(src):
    code = [s for t, s in _cells(src) if t == "code"]
    assert not any(".cuda(" in c for c in code), f"{src.name} calls .cuda(): use mmlab.get_device()"
    hard = [c for c in code if re.search(r"""(\.to\(|device\s*=\s*|torch\.device\()\s*["']cuda""", c)]
    assert not hard, f"{src.name} hard-codes the CUDA device: use mmlab.get_device()"
    body = "\n".join(code[1:])  # the Colab cell may name Colab's own paths
    assert not re.search(r"[\"'](/(home|root|work|Users|tmp|content)/|[A-Za-z]:\\\\)", body), (
        f"{src.name} has an absolute path"
    )


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_valid_with_python3_kernel(nb):
    """Without a kernelspec JupyterLab asks the learner to pick a kernel (and the browser test stops there)."""
    book = nbformat.read(nb, as_version=4)
    nbformat.validate(book)
    assert book.metadata.get("kernelspec", {}).get("name") == "python3", f"{nb.name}: kernelspec must be python3"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_lesson_has_an_interact_widget(src):
    """Every lesson's main widget is its first ``interact`` (the browser test drags its first slider)."""
    code = "\n".join(s for t, s in _cells(src) if t == "code")
    assert re.search(r"(\binteract(ive)?\(|@interact\b)", code), f"{src.name} has no interact widget"


def test_no_cuda_calls_in_package():
    for py in (ROOT / "mmlab").glob("*.py"):
        assert ".cuda(" not in py.read_text(), f"{py.name} calls .cuda()"


def test_readme_lists_every_lesson_with_colab_link():
    readme = (ROOT / "README.md").read_text()
    assert REPO_URL in readme
    for nb in NOTEBOOKS:
        assert colab_link(nb.name) in readme, f"README lacks the Colab link for {nb.name}"
