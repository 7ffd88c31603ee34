"""The website's page transforms (site_src/build.py) and executed-copy bookkeeping, without Sphinx or a browser.

The built site itself is checked in Chromium by browser_tests/test_site.py (make site-test).
"""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from site_src import build
from site_src.executed_copies import stamp

PNG = "iVBORw0KGgo="  # a stand-in: only its presence is checked
WIDGET = "application/vnd.jupyter.widget-view+json"


def _executed_lesson():
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    cells = [
        new_markdown_cell("# Lesson 9 — A test lesson\n\nIntro with [a link](#Some-Heading)."),
        new_code_cell("# Colab only: ...", outputs=[]),
        new_code_cell(
            "for seed in range(2):\n    fit(...)",
            outputs=[
                new_output("display_data", data={WIDGET: view, "text/plain": "HBox(children=(HTML(value=''), "
                                                 "FloatProgress(value=0.0, max=30.0), HTML(value='')))"}),
                new_output("display_data", data={WIDGET: view, "text/plain": "HBox(children=(HTML(value=''), "
                                                 "FloatProgress(value=0.0, max=30.0), HTML(value='')))"}),
                new_output("stream", name="stdout", text="accuracy 0.91\n"),
            ],
        ),
        new_code_cell(
            "# NBVAL_IGNORE_OUTPUT\n_ = interact(figure, k=IntSlider())",
            outputs=[
                new_output("display_data", data={WIDGET: view, "text/plain": "interactive(children=(IntSlider("}),
                new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480>"}),
            ],
        ),
        new_code_cell(
            "def answer():\n    return 42", metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}}
        ),
        new_markdown_cell("## References\n\n1. A paper. See [lesson 0](00_setup.ipynb#How-this-course-measures)."),
    ]
    return new_notebook(cells=cells)


def test_lesson_page_keeps_figures_hides_solutions_and_collapses_progress_bars():
    page, counts = build.transform_lesson(_executed_lesson(), "09_test.ipynb")
    assert counts == {"widgets": 1, "progress_cells": 1, "solutions": 1}
    title = page.cells[0].source
    assert "colab.research.google.com" in title and "_static/notebooks/09_test.ipynb" in title
    assert "(#some-heading)" in title, "JupyterLab's anchors become MyST's lower-case ones"
    assert "hide-input" in page.cells[1].metadata["tags"], "the Colab set-up cell is collapsed"
    progress = page.cells[2].outputs
    assert len(progress) == 2 and "2 progress bars" in progress[0]["data"]["text/html"]
    assert all(WIDGET not in o.get("data", {}) for c in page.cells if c.cell_type == "code" for o in c.outputs)
    note, widget = page.cells[3], page.cells[4]
    assert note.cell_type == "markdown" and "mmlab-widget-note" in note.source and "make lab" in note.source
    assert [o["data"].get("image/png") for o in widget.outputs] == [PNG], "the default figure stays, the view goes"
    assert "NBVAL" not in widget.source
    solution = page.cells[5]
    assert "hide-input" in solution.metadata["tags"] and "jupyter" not in solution.metadata


def test_an_error_output_fails_the_build():
    nb = _executed_lesson()
    nb.cells[2].outputs.append(new_output("error", ename="ValueError", evalue="x", traceback=[]))
    with pytest.raises(build.SiteError, match="ValueError"):
        build.transform_lesson(nb, "09_test.ipynb")


def test_stale_copies_are_found_by_hash(tmp_path):
    notebooks, executed = tmp_path / "notebooks", tmp_path / "executed"
    notebooks.mkdir()
    executed.mkdir()
    source = notebooks / "09_test.ipynb"
    nbformat.write(_executed_lesson(), source)
    assert build.stale(notebooks, executed) == [source], "no copy yet"
    copy = _executed_lesson()
    stamp(copy, source, "test")
    nbformat.write(copy, executed / source.name)
    assert build.stale(notebooks, executed) == []
    source.write_text(source.read_text().replace("A test lesson", "An edited lesson"))
    assert build.stale(notebooks, executed) == [source], "an edited lesson needs a new run"


def test_index_lists_every_lesson_without_outside_images():
    readme = (build.ROOT / "README.md").read_text()
    stems = [p.stem for p in build.lessons(build.ROOT / "notebooks")]
    index = build.index_page(readme, stems)
    for stem in stems:
        assert f"(lessons/{stem}.ipynb)" in index
    assert "colab-badge.svg" not in index and "![" not in index, "the site loads no image from another host"
    assert index.count("[Open in Colab](https://colab.research.google.com/") >= len(stems)


def test_references_page_collects_each_lesson():
    page, _ = build.transform_lesson(_executed_lesson(), "09_test.ipynb")
    refs = build.references_page([("09_test", page)])
    assert "## [Lesson 9 — A test lesson](lessons/09_test.ipynb)" in refs
    assert "(lessons/00_setup.ipynb#how-this-course-measures)" in refs
