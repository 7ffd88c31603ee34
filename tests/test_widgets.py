"""mmlab.widgets.interact: ipywidgets' controls, outputs set as Output-widget state (never ``with out:``).

The in-process tests run without a kernel (IPython's display falls back to printing); the last test executes a
small notebook in a real kernel under nbclient — the executor that stalled — and checks that no Output widget
capture is mimicked, that each figure reaches the widget's state exactly once and nothing else reaches the cell.
"""

from __future__ import annotations

import base64

import matplotlib
import pytest
from ipywidgets import Checkbox, Dropdown, FloatSlider, IntSlider, Output, Text, fixed
from matplotlib.figure import Figure

from mmlab.widgets import interact, interactive_figure

matplotlib.use("Agg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def line_figure(slope: float = 1.0, label: str = "a", data=None) -> Figure:
    """Parameters in, figure out: the course's widget functions."""
    fig = Figure(figsize=(2, 1.5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, slope])
    ax.set(title=f"{label} {len(data or [])}", xlabel="x (s)", ylabel="y (m)")
    return fig


def _pngs(widget) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in widget.out.outputs if "image/png" in o.get("data", {})]


def test_controls_have_the_right_types_values_and_options():
    text = Text(value="seven", continuous_update=False)
    f = interact(
        lambda slope, label, n, flag, query, data: line_figure(slope, label, data),
        slope=FloatSlider(value=0.5, min=0, max=2, step=0.1, description="slope"),
        label=["a", "b"],
        n=(0, 10),
        flag=True,
        query=text,
        data=fixed([1, 2, 3]),
    )
    w = f.widget
    assert isinstance(w, interactive_figure) and "widget-interact" in w._dom_classes
    kinds = [type(c) for c in w.children]
    assert kinds == [FloatSlider, Dropdown, IntSlider, Checkbox, Text, Output], "fixed() gets no control"
    slope, label, n, flag, query, _ = w.children
    assert (slope.value, slope.min, slope.max, slope.step) == (0.5, 0, 2, 0.1)
    assert label.options == ("a", "b") and label.value == "a"
    assert (n.min, n.max, n.value) == (0, 10, 5), "ipywidgets' own abbreviation rules"
    assert flag.value is True
    assert query is text and query.continuous_update is False, "the caller's widget, its options untouched"
    assert slope.continuous_update is True, "sliders keep ipywidgets' default"


def test_the_figure_is_output_state_and_changes_with_the_controls():
    calls = []

    def fig_fn(slope=1.0, data=None):
        calls.append((slope, data))
        return line_figure(slope)

    data = object()
    f = interact(fig_fn, slope=FloatSlider(value=0.5, min=0, max=2, step=0.5), data=fixed(data))
    assert f is fig_fn and isinstance(f.widget, interactive_figure), "returns f with f.widget, as ipywidgets"
    w = f.widget
    first = _pngs(w)
    assert len(first) == 1 and first[0].startswith(PNG_MAGIC), "the default figure, once, as PNG"
    assert [o["output_type"] for o in w.out.outputs] == ["display_data"]
    assert calls == [(0.5, data)] and calls[0][1] is data, "fixed() passes the object itself"
    w.children[0].value = 1.5
    second = _pngs(w)
    assert calls[-1] == (1.5, data)
    assert len(second) == 1 and second[0].startswith(PNG_MAGIC) and second[0] != first[0], "a new figure"


def test_a_pyplot_figure_is_shown_once_and_closed():
    import matplotlib.pyplot as plt

    plt.close("all")

    def pyplot_fn(k=1):
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot(range(k + 2))
        return fig

    w = interact(pyplot_fn, k=IntSlider(1, 1, 4)).widget
    assert len(_pngs(w)) == 1
    assert plt.get_fignums() == [], "closed: the inline backend would otherwise draw it again at the cell's end"


def test_printed_text_and_other_results_are_shown():
    def report(k=2):
        print(f"k = {k}")
        return {"k": k}

    w = interact(report, k=IntSlider(2, 1, 5)).widget
    kinds = [(o["output_type"], o.get("text") or o["data"]["text/plain"]) for o in w.out.outputs]
    assert kinds == [("stream", "k = 2\n"), ("display_data", "{'k': 2}")]


def test_an_error_after_a_move_shows_its_traceback_and_the_controls_stay_live():
    def fragile(x=0.0):
        if x > 0.5:
            raise RuntimeError(f"x = {x} is too large")
        return line_figure(x)

    w = interact(fragile, x=FloatSlider(value=0.0, min=0, max=1, step=0.25)).widget
    w.children[0].value = 1.0
    (err,) = w.out.outputs
    assert err["output_type"] == "error" and err["ename"] == "RuntimeError" and "too large" in err["evalue"]
    assert any("fragile" in line for line in err["traceback"]), "the traceback names the function"
    w.children[0].value = 0.25
    assert len(_pngs(w)) == 1, "the next move draws again"


def test_an_error_with_the_default_values_fails_the_cell():
    def broken(x=0):
        raise ValueError("broken default")

    with pytest.raises(ValueError, match="broken default"):
        interact(broken, x=IntSlider(0, 0, 3))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="no parameter 'sloep'.*'slope'"):
        interact(line_figure, sloep=FloatSlider())
    with pytest.raises(ValueError, match="argument 'slope'.*cannot be a control"):
        interact(line_figure, slope=object())
    with pytest.raises(ValueError, match="argument 'slope'.*cannot be a control"):
        interact(line_figure, slope=Output())  # a widget that has no value
    with pytest.raises(ValueError, match="'x'"):
        interact(lambda x: None)  # no control and no default for x
    with pytest.raises(TypeError, match="function"):
        interactive_figure(42)


NOTEBOOK_SETUP = """
import matplotlib.pyplot as plt
from IPython.display import HTML, display
from ipywidgets import IntSlider
from matplotlib.figure import Figure
from mmlab.widgets import interact
import ipywidgets


def fig_fn(k=1):
    fig = Figure(figsize=(2, 1.5))
    fig.subplots().plot(range(k + 2))
    return fig


def pyplot_fn(k=1):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot(range(k + 2))
    return fig


def listen(n=2):
    for i in range(n):
        print(f"clip {i}")
        display(HTML(f"<b>player {i}</b>"))


def fragile(x=0):
    if x > 1:
        raise RuntimeError(f"x = {x} is too large")
    return fig_fn(x + 1)
"""


@pytest.mark.slow
def test_in_a_kernel_under_nbclient_nothing_is_captured_and_the_state_holds_the_figures(monkeypatch):
    """The stall's mechanism is nbclient mimicking an Output widget's capture (an output hook per ``with out:``,
    each output synced back on the shell socket). mmlab's interact must never trigger it; ipywidgets' does."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    class CountingClient(NotebookClient):
        hooks = 0

        def register_output_hook(self, msg_id, hook):
            CountingClient.hooks += 1
            super().register_output_hook(msg_id, hook)

    cells = [
        new_code_cell(NOTEBOOK_SETUP),
        new_code_cell("_ = interact(fig_fn, k=IntSlider(1, 1, 5))"),
        new_code_cell("_ = interact(pyplot_fn, k=(1, 5))"),
        new_code_cell("_ = interact(listen, n=IntSlider(2, 1, 3))"),
        new_code_cell("moved = interact(fragile, x=IntSlider(0, 0, 3)).widget\nmoved.children[0].value = 3"),
    ]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # figures as in Jupyter
    client = CountingClient(nb, timeout=60, kernel_name="python3")
    client.execute()
    assert CountingClient.hooks == 0, "no Output-widget capture for nbclient to mimic"

    saved = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    states = {model_id: v["state"] for model_id, v in saved.items()}
    view = "application/vnd.jupyter.widget-view+json"
    widget_outputs = []
    for cell in nb.cells[1:]:
        assert [sorted(o["data"]) for o in cell.outputs] == [[view, "text/plain"]], "only the widget reaches the cell"
        box = states[cell.outputs[0]["data"][view]["model_id"]]
        children = [states[c.removeprefix("IPY_MODEL_")] for c in box["children"]]
        (out,) = [c for c in children if c["_model_name"] == "OutputModel"]
        widget_outputs.append(out["outputs"])
    for outputs in widget_outputs[:2]:
        assert len(outputs) == 1 and "image/png" in outputs[0]["data"], "one PNG each, pyplot's too (not twice)"
        assert base64.b64decode(outputs[0]["data"]["image/png"]).startswith(PNG_MAGIC)
    shown = [o.get("text") or o["data"]["text/html"] for o in widget_outputs[2]]
    assert shown == ["clip 0\n", "<b>player 0</b>", "clip 1\n", "<b>player 1</b>"], "prints and displays in order"
    (error,) = widget_outputs[3]
    assert error["output_type"] == "error" and error["ename"] == "RuntimeError", "a failing move shows its error"
    trace = "\n".join(error["traceback"])
    assert "fragile" in trace and "too large" in trace and "render_call" not in trace, "from f's own frame on"

    # the control: ipywidgets' own interact is captured (this is what stalled)
    nb2 = new_notebook(
        cells=[new_code_cell(NOTEBOOK_SETUP), new_code_cell("_ = ipywidgets.interact(fig_fn, k=IntSlider(1, 1, 5))")],
        metadata=nb.metadata,
    )
    CountingClient(nb2, timeout=60, kernel_name="python3").execute()
    assert CountingClient.hooks >= 1
