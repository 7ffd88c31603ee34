"""Plotting helpers (generic; each lesson's own figures live in ``mmlab.lessons``). Each returns a
``matplotlib.figure.Figure`` (never through pyplot's global state), with a title, axis labels and units, so that
notebooks show it once and widgets can redraw it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure


def _show_figures_inline() -> None:
    """In a Jupyter kernel, display ``Figure`` objects as PNG even before pyplot has drawn anything.

    matplotlib registers its notebook display only when pyplot creates a figure; these helpers never touch
    pyplot, so without this a returned figure would print as ``<Figure size ...>``.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the course
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    try:
        from matplotlib_inline.backend_inline import select_figure_formats
    except ImportError:  # pragma: no cover
        return
    png = shell.display_formatter.formatters["image/png"]
    if Figure not in png.type_printers:
        select_figure_formats(shell, {"png"})


_show_figures_inline()

__all__ = [
    "new_figure",
    "plot_history",
    "show_images",
    "plot_spectrogram",
    "plot_curves",
    "bar_chart",
]


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] | None = None, **kwargs):
    """A ``Figure`` and its axes, outside pyplot (so nothing is drawn twice or leaks)."""
    fig = Figure(figsize=size or (4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def plot_history(history, title: str = "Training history") -> Figure:
    """Loss and accuracy per epoch, train and validation."""
    fig, (a1, a2) = new_figure(1, 2)
    for key, ax in (("loss", a1), ("acc", a2)):
        for split in ("train", "val"):
            name = f"{split}_{key}"
            if name in history:
                vals = history[name]
                ax.plot(range(1, len(vals) + 1), vals, marker=".", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy (nats)" if key == "loss" else "accuracy (fraction)")
        ax.legend()
    a1.set_title("loss")
    a2.set_title("accuracy")
    fig.suptitle(title)
    return fig


def show_images(
    images: torch.Tensor | np.ndarray, labels: Sequence | None = None, ncols: int = 10, title: str = "Images"
) -> Figure:
    """A grid of images ``(N, C, H, W)`` or ``(N, H, W)``, each captioned by its label."""
    x = torch.as_tensor(images).detach().cpu().float()
    if x.dim() == 4:
        x = x.permute(0, 2, 3, 1)
        if x.shape[-1] == 1:
            x = x[..., 0]
    if x.dim() not in (3, 4):
        raise ValueError(
            f"images must have shape (N, C, H, W) or (N, H, W), got {tuple(torch.as_tensor(images).shape)}"
        )
    n = len(x)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = new_figure(nrows, min(ncols, n), size=(1.1 * min(ncols, n), 1.25 * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(x[i].clamp(0, 1).numpy(), cmap="gray_r" if x.dim() == 3 else None)
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=8)
    fig.suptitle(title)
    return fig


def plot_spectrogram(
    logmel: torch.Tensor | np.ndarray, ax=None, title: str = "Log-mel spectrogram", hop_s: float = 0.01
):
    """Draw a log-mel spectrogram ``(frames, n_mels)`` (time first) with time in seconds; returns the figure."""
    x = np.asarray(torch.as_tensor(logmel).detach().cpu())
    if x.ndim != 2:
        raise ValueError(f"logmel must have shape (frames, n_mels), got {x.shape}")
    x = x.T
    if ax is None:
        fig, ax = new_figure()
    im = ax.imshow(x, origin="lower", aspect="auto", extent=(0, x.shape[1] * hop_s, 0, x.shape[0]), cmap="magma")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, label="log power")
    return ax.figure


def plot_curves(
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    errors: Mapping[str, Sequence[float]] | None = None,
    logx: bool = False,
    logy: bool = False,
    hline: Mapping[str, float] | None = None,
    ax=None,
) -> Figure:
    """Several named curves over the same x, with optional error bars and horizontal reference lines."""
    if ax is None:
        fig, ax = new_figure(size=(5.5, 3.6))
    for name, y in curves.items():
        if len(y) != len(x):
            raise ValueError(f"curve {name!r} has {len(y)} points but x has {len(x)}")
        err = None if errors is None else errors.get(name)
        ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=3, label=name)
    for name, v in (hline or {}).items():
        ax.axhline(v, ls="--", lw=1, color="gray")
        ax.annotate(name, (ax.get_xlim()[0], v), fontsize=8, color="gray", va="bottom")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax.figure


def bar_chart(
    values: Mapping[str, float],
    *,
    ylabel: str,
    title: str,
    errors: Mapping[str, float] | None = None,
    ref: float | None = None,
    ref_label: str = "chance",
    ax=None,
) -> Figure:
    """Bars for named values with optional error bars and a dashed reference line (e.g. chance)."""
    if ax is None:
        fig, ax = new_figure(size=(5.5, 3.4))
    names = list(values)
    err = [errors[n] for n in names] if errors else None
    ax.bar(names, [values[n] for n in names], yerr=err, capsize=4, color="tab:blue", alpha=0.8)
    if ref is not None:
        ax.axhline(ref, ls="--", color="gray", lw=1, label=ref_label)
        ax.legend()
    ax.set(ylabel=ylabel, title=title)
    ax.tick_params(axis="x", rotation=20)
    return ax.figure
