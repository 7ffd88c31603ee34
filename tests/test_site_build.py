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


def _comm(kind, comm_id, state, buffer_paths=(), buffers=()):
    data = {"state": state, "buffer_paths": [list(p) for p in buffer_paths]}
    return {"msg_type": kind, "header": {"msg_type": kind}, "content": {"comm_id": comm_id, "data": data},
            "buffers": list(buffers)}  # fmt: skip


def test_widget_states_are_recorded_in_nbclients_format():
    from site_src.executed_copies import WIDGET_STATE_MIME, WidgetStates

    out = {"_model_name": "OutputModel", "_model_module": "@jupyter-widgets/output", "_model_module_version": "1.0.0"}
    box = {"_model_name": "VBoxModel", "_model_module": "@jupyter-widgets/controls", "children": ["IPY_MODEL_out"]}
    rec = WidgetStates()
    rec.feed(_comm("comm_open", "out", {**out, "outputs": []}))
    rec.feed(_comm("comm_open", "box", box))
    rec.feed(_comm("comm_msg", "out", {"outputs": [{"output_type": "display_data", "data": {"image/png": PNG}}]}))
    rec.feed(_comm("comm_msg", "img", {"_model_name": "ImageModel"}, buffer_paths=[["value"]], buffers=[b"\x89PNG"]))
    rec.feed(_comm("comm_open", "plain", {"x": 1}))  # a comm that is not a widget model
    rec.feed({"msg_type": "stream", "header": {"msg_type": "stream"}, "content": {"name": "stdout", "text": "hi"}})
    rec.feed({"msg_type": "comm_msg", "header": {}, "content": {"comm_id": "out", "data": {"method": "custom"}}})
    saved = rec.metadata()[WIDGET_STATE_MIME]
    assert (saved["version_major"], saved["version_minor"]) == (2, 0)
    assert sorted(saved["state"]) == ["box", "img", "out"]
    entry = saved["state"]["out"]
    assert entry["model_name"] == "OutputModel" and entry["model_module"] == "@jupyter-widgets/output"
    assert entry["state"]["outputs"][0]["data"]["image/png"] == PNG, "the update wins over the opening state"
    assert saved["state"]["img"]["buffers"] == [{"data": "iVBORw==", "encoding": "base64", "path": ["value"]}]
    assert WidgetStates().metadata() is None


def test_a_widget_whose_figure_is_only_in_its_state_keeps_it_on_the_page():
    """mmlab.widgets.interact: the cell holds only the widget's view, the figure is the Output widget's state."""
    from site_src.executed_copies import WidgetStates

    nb = _executed_lesson()
    widget_cell = nb.cells[3]
    widget_cell.outputs = widget_cell.outputs[:1]  # the view alone
    out = {"_model_name": "OutputModel", "_model_module": "@jupyter-widgets/output", "outputs": []}
    rec = WidgetStates()
    rec.feed(_comm("comm_open", "out1", out))
    rec.feed(_comm("comm_open", "abc", {"_model_name": "VBoxModel", "children": ["IPY_MODEL_s", "IPY_MODEL_out1"]}))
    rec.feed(_comm("comm_msg", "out1", {"outputs": [{"output_type": "display_data", "data": {"image/png": PNG},
                                                     "metadata": {}}]}))  # fmt: skip
    nb.metadata["widgets"] = rec.metadata()
    page, counts = build.transform_lesson(nb, "09_test.ipynb")
    assert counts["widgets"] == 1
    assert [o["data"].get("image/png") for o in page.cells[4].outputs] == [PNG]
    assert "widgets" not in page.metadata, "no widget state on the page: no widget JavaScript"


@pytest.mark.slow
def test_nbval_plugin_saves_widget_state_and_the_page_gets_the_default_figure(tmp_path):
    """The plugin end to end: nbval runs a notebook with mmlab.widgets.interact, the executed copy holds the
    widget state, and the page shows the figure that lives only there."""
    import os
    import subprocess
    import sys

    from mmlab.colab import colab_cell_source

    src = (
        "from ipywidgets import IntSlider\nfrom matplotlib.figure import Figure\nfrom mmlab.widgets import interact\n\n"
        "def fig_fn(k=1):\n    fig = Figure(figsize=(2, 1.5))\n    fig.subplots().plot(range(k + 2))\n    return fig\n"
    )
    cells = [
        new_markdown_cell("# Lesson 9 — probe"),
        new_code_cell(colab_cell_source()),
        new_code_cell(src),
        new_code_cell("# NBVAL_IGNORE_OUTPUT\n_ = interact(fig_fn, k=IntSlider(2, 1, 5))"),
    ]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    lesson = tmp_path / "09_probe.ipynb"
    nbformat.write(new_notebook(cells=cells, metadata=meta), lesson)
    executed = tmp_path / "executed"
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "site_src.executed_copies",
           "--executed-dir", str(executed), "--nbval-lax", "--nbval-current-env", str(lesson)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=build.ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    copy = nbformat.read(executed / lesson.name, as_version=4)
    widget_cell = copy.cells[3]
    assert all("image/png" not in o.get("data", {}) for o in widget_cell.outputs), "the figure is not a cell output"
    assert "application/vnd.jupyter.widget-state+json" in copy.metadata.widgets
    page, counts = build.transform_lesson(copy, lesson.name)
    assert counts["widgets"] == 1
    pngs = [o["data"]["image/png"] for c in page.cells if c.cell_type == "code" for o in c.outputs
            if "image/png" in o.get("data", {})]  # fmt: skip
    assert len(pngs) == 1 and pngs[0].startswith("iVBORw0KGgo"), "the default figure is on the page, once"
