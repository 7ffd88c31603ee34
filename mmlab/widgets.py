"""``interact`` for the course's widgets: ipywidgets' controls, with a figure that no executor has to capture.

    from mmlab.widgets import interact
    from ipywidgets import FloatSlider, fixed

    _ = interact(figure_fn, noise=FloatSlider(value=0.3, min=0, max=1, step=0.1), data=fixed(ds))

A drop-in for :func:`ipywidgets.interact`: the same call (widgets, ``fixed(...)``, and ipywidgets' abbreviations
such as ``(0, 10)`` or ``["a", "b"]``, built by ipywidgets' own :class:`ipywidgets.interactive` machinery), the
same controls, ``continuous_update`` and return value (the function, with the widget as ``f.widget``), and the same
``widget-interact`` box that JupyterLab shows. What differs is how the result reaches the page.

**Why.** ``ipywidgets.interact`` calls the function inside ``with out:`` on an ``Output`` widget: the kernel
tags the outputs of that block with the widget's ``msg_id`` and the *front end* routes them into the widget.
Notebook executors (nbclient, hence ``jupyter nbconvert --execute``, jupyter-cache, myst-nb, mkdocs-jupyter)
have no front end, so nbclient mimics the Output widget and sends its new state back to the kernel as a
``comm_msg`` on the shell socket. That send can swallow the wake-up of the cell's ``execute_reply``; the client
then waits for the cell timeout (for ever by default) although the kernel is idle — jupyter/nbclient#312, traced
on this course's lessons in ``benchmarks/nbconvert_stalls.py``. Here the function runs with its prints and
displays recorded in the kernel (nothing is published while it runs) and the ``Output`` widget gets them as a
plain state update, ``out.outputs = (...)``: a ``comm_msg`` on iopub, from kernel to client, which an executor
only records (nbclient keeps it in ``metadata.widgets``). No executor mimics a capture, nothing is sent on the
shell socket; a front end renders the outputs as it renders any Output widget's (JupyterLab: checked by
``make browser-test``, which drags each lesson's first slider and compares the figures).

**Figures.** The course's widget functions are "parameters in, figure out": a returned
:class:`matplotlib.figure.Figure` is rendered once, to PNG through IPython's display formatter (so exactly as the
inline backend shows figures), and closed if pyplot manages it, so the inline backend does not draw it a second
time when the cell ends. A function may instead print, ``display(...)`` (e.g. audio players) or draw with pyplot
and return nothing: those outputs are kept in order; any other returned value is displayed, as
``ipywidgets.interact`` does.

**Errors.** A function that raises on the *default* values raises from ``interact`` itself — the cell fails, as a
broken lesson should. Raised after a control moved, the traceback is shown in the widget's output (text, as a
cell's error) and the controls stay live.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from ipywidgets import Widget, fixed, interactive
from ipywidgets.widgets.interaction import _InteractFactory, show_inline_matplotlib_plots

__all__ = ["interact", "interactive_figure", "fixed"]

_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_BINARY_MIMES = ("image/png", "image/jpeg")


def _shell():
    """The running IPython shell, or None outside one (plain Python, unit tests)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipywidgets needs IPython
        return None
    return get_ipython()


def _live_widget_ids() -> set[str]:
    """Model ids of the widgets whose comm is still open in this kernel."""
    try:
        from ipywidgets.widgets.widget import _instances  # ipywidgets 8
    except ImportError:  # pragma: no cover - ipywidgets 7 (Colab)
        _instances = Widget.widgets
    return set(_instances)


class _Recorder:
    """What a function prints and displays, in order, as nbformat-style output dicts (nothing is published)."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def display(self, data: dict, metadata: dict | None = None) -> None:
        self.outputs.append({"output_type": "display_data", "data": _jsonable(data), "metadata": metadata or {}})

    def error(self, exc: BaseException, skip: int = 0) -> None:
        """An error output for ``exc``, its traceback without its first ``skip`` frames (the caller's own)."""
        etb = exc.__traceback__
        for _ in range(skip):
            etb = etb.tb_next if etb is not None and etb.tb_next is not None else etb
        shell = _shell()
        if shell is not None and hasattr(shell, "InteractiveTB"):
            tb = shell.InteractiveTB.structured_traceback(type(exc), exc, etb)
        else:
            tb = traceback.format_exception(type(exc), exc, etb)
        self.outputs.append({"output_type": "error", "ename": type(exc).__name__, "evalue": str(exc), "traceback": tb})

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Record stdout, stderr and IPython displays (``display``, ``clear_output``, pyplot's inline ``show``)."""
        shell = _shell()
        saved_pub = getattr(shell, "display_pub", None)
        if saved_pub is not None:
            shell.display_pub = _RecordingPublisher(self)
        try:
            with (
                contextlib.redirect_stdout(_RecordingStream(self, "stdout")),
                contextlib.redirect_stderr(_RecordingStream(self, "stderr")),
            ):
                yield
        finally:
            if saved_pub is not None:
                shell.display_pub = saved_pub

    def drop_dead_widget_views(self) -> None:
        """Forget displayed widgets that were closed meanwhile (e.g. a ``leave=False`` tqdm bar): their views
        would show "model not found" once the outputs reach the page."""
        live = _live_widget_ids()
        self.outputs = [
            o
            for o in self.outputs
            if o["output_type"] != "display_data"
            or _WIDGET_VIEW not in o["data"]
            or o["data"][_WIDGET_VIEW].get("model_id") in live
        ]


class _RecordingStream(io.TextIOBase):
    """A text stream that appends what is written to a :class:`_Recorder`."""

    def __init__(self, recorder: _Recorder, name: str) -> None:
        self._recorder, self._name = recorder, name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._recorder.stream(self._name, text)
        return len(text)


class _RecordingPublisher:
    """Stands in for IPython's display publisher while the function runs: displays are recorded, not sent."""

    is_publishing = False

    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    def publish(
        self,
        data: dict,
        metadata: dict | None = None,
        source: Any = None,
        *,
        transient: dict | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        self._recorder.display(data, metadata)

    def clear_output(self, wait: bool = False) -> None:
        self._recorder.outputs.clear()


def _jsonable(data: dict) -> dict:
    """A MIME bundle as JSON can carry it: binary images base64-encoded (as ipykernel sends them)."""
    out = dict(data)
    for mime in _BINARY_MIMES:
        if isinstance(out.get(mime), bytes):
            out[mime] = base64.b64encode(out[mime]).decode("ascii")
    return out


def _figure_bundle(fig) -> tuple[dict, dict]:
    """PNG + text of a Figure: IPython's formatter where it renders PNG (the inline backend's settings), else
    ``savefig`` with the inline backend's default ``bbox_inches="tight"``."""
    shell = _shell()
    if shell is not None and hasattr(shell, "display_formatter"):
        data, metadata = shell.display_formatter.format(fig)
        if "image/png" in data:
            return _jsonable(data), metadata
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return _jsonable({"image/png": buf.getvalue(), "text/plain": repr(fig)}), {}


def _close_if_pyplot(fig) -> None:
    """Remove a pyplot-managed figure from pyplot's list, so the inline backend does not draw it again."""
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        if fig in [m.canvas.figure for m in plt._pylab_helpers.Gcf.get_all_fig_managers()]:
            plt.close(fig)


def render_call(f: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Call ``f(**kwargs)``; return its result and the outputs it produced (printed text, displays, the returned
    figure as PNG), as nbformat output dicts. Exceptions propagate; nothing is published."""
    from matplotlib.figure import Figure

    recorder = _Recorder()
    with recorder.capturing():
        result = f(**kwargs)
        if isinstance(result, Figure):
            _close_if_pyplot(result)
        show_inline_matplotlib_plots()  # figures f drew with pyplot and left open: recorded here, then closed
    if isinstance(result, Figure):
        recorder.display(*_figure_bundle(result))
    elif result is not None:
        shell = _shell()
        if shell is not None and hasattr(shell, "display_formatter"):
            recorder.display(*shell.display_formatter.format(result))
        else:
            recorder.display({"text/plain": repr(result)})
    recorder.drop_dead_widget_views()
    return result, recorder.outputs


class interactive_figure(interactive):  # noqa: N801 - named like ipywidgets' class it replaces
    """:class:`ipywidgets.interactive` whose output is set as Output-widget *state*, never by ``with out:``.

    Controls, abbreviations, ``manual`` and ``continuous_update`` are ipywidgets' own; :meth:`update` is the
    only behaviour that differs (see the module docstring for why). Construct it through :data:`interact`.
    """

    def __init__(self, _mmlab_f: Callable[..., Any], _mmlab_options: dict | None = None, /, **kwargs: Any) -> None:
        if not callable(_mmlab_f):
            raise TypeError(f"interact needs a function as its first argument, got {type(_mmlab_f).__name__}")
        self._mmlab_first_call = True
        _check_kwargs(_mmlab_f, kwargs)
        super().__init__(_mmlab_f, dict(_mmlab_options or {}), **kwargs)

    def widgets_from_abbreviations(self, seq: list[tuple[str, Any, Any]]) -> list[Widget]:
        """ipywidgets' conversion, with errors that name the argument."""
        result = []
        for name, abbrev, default in seq:
            try:
                result += super().widgets_from_abbreviations([(name, abbrev, default)])
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"interact: argument {name!r} = {abbrev!r} cannot be a control ({e}); pass a value widget "
                    "(FloatSlider, Dropdown, ...), an abbreviation such as (0, 10), (0.0, 1.0, 0.1) or ['a', 'b'], "
                    "or fixed(value) for an argument that has no control"
                ) from e
        return result

    def update(self, *args: Any) -> None:
        """Call the function with the controls' values; put what it shows into the Output widget's state.

        The first call (at construction, with the default values) raises what the function raises; a later one
        (a control moved) shows the traceback in the widget instead.
        """
        first, self._mmlab_first_call = self._mmlab_first_call, False
        self.kwargs = {}
        if self.manual:
            self.manual_button.disabled = True
        try:
            show_inline_matplotlib_plots()  # figures the cell drew before the widget go to the cell, not here
            for widget in self.kwargs_widgets:
                self.kwargs[widget._kwarg] = widget.get_interact_value()
            try:
                self.result, outputs = render_call(self.f, self.kwargs)
            except Exception as e:
                if first:
                    raise
                recorder = _Recorder()
                recorder.error(e, skip=2)  # from the function's own frame: not update() and render_call()
                outputs = recorder.outputs
            self.out.outputs = tuple(outputs)
        finally:
            if self.manual:
                self.manual_button.disabled = False


def _check_kwargs(f: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Every keyword must be a parameter of ``f`` (unless it takes ``**kwargs``); name the one that is not."""
    try:
        params = inspect.signature(f).parameters
    except (TypeError, ValueError):  # a builtin without a signature: ipywidgets' own checks apply
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in kwargs:
        if name not in accepted and name != "clear_output":  # clear_output: an option of ipywidgets' interactive
            raise ValueError(
                f"interact: {getattr(f, '__name__', 'the function')}() has no parameter {name!r}; "
                f"its parameters are {accepted}"
            )


interact: _InteractFactory = interactive_figure.factory()
"""``interact(f, **controls)``: display the controls and ``f``'s figure; returns ``f`` (with ``f.widget``), as
:func:`ipywidgets.interact` does. Also a decorator (``@interact(x=(0, 10))``) and ``interact.options(manual=True)``."""
