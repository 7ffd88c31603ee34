"""Lesson 1 (``notebooks/01_alignment``): its test sets, its experiment over seeds and warps, its figures and widget.

The methods themselves (cross-modal attention, DTW and soft-DTW, the shared space, the aligners, the pairings and
the metric) live in :mod:`mmlab.align`; this module only drives them the way the lesson does:

* :func:`alignment_test_sets` — the lesson's evaluation episodes (val or test), one padded batch per (warp, seed);
  :func:`selection_batch` — validation episodes at mixed warps, for choosing epochs;
* :func:`timing_ranges` — the measured stretches, holds, pauses and leading silences of a set of episodes;
* :func:`alignment_score`, :func:`chance_accuracy`, :func:`score_methods` — scoring a pairing method on a batch;
* :func:`alignment_experiment` — every method at every warp for several seeds, given a trainer;
* :func:`episode_figure`, :func:`alignment_figure` (the widget), :func:`alignment_curves_figure`,
  :func:`grounding_figure` — the lesson's plots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..align import (
    ALIGN_METHODS,
    AlignmentSpace,
    AttentionAligner,
    alignment_accuracy,
    dtw,
    predict_tokens,
    proportional_pairing,
)
from ..checks import check_choice, check_tensor
from ..data import (
    DIGIT_WORDS,
    AlignmentEpisode,
    collate_episodes,
    load_audio_clips,
    make_alignment_episode,
    make_alignment_episodes,
)
from ..train import eval_mode, to_device
from ..viz import new_figure, plot_curves

__all__ = [
    "ALIGN_METHOD_LABELS",
    "TEST_SEED_OFFSET",
    "SELECTION_SEED_OFFSET",
    "alignment_test_sets",
    "selection_batch",
    "timing_ranges",
    "alignment_score",
    "chance_accuracy",
    "score_methods",
    "alignment_experiment",
    "episode_figure",
    "alignment_figure",
    "alignment_curves_figure",
    "grounding_figure",
]

ALIGN_METHOD_LABELS = {
    "index": "pair by index",
    "proportional": "pair proportionally",
    "dtw_cosine": "DTW, cost 1 − cos",
    "dtw": "DTW, cost −log p(same word)",
    "attention": "cross-modal attention",
}
TEST_SEED_OFFSET = 1000  # evaluation episodes of seed s are stream 1000 + s: never the training streams 0, 1, 2, ...
SELECTION_SEED_OFFSET = 2000  # the validation episodes that choose epochs: stream 2000 + s of the val split

Batch = dict[str, torch.Tensor]
Trainer = Callable[[int], tuple[AlignmentSpace, AttentionAligner]]


# --------------------------------------------------------------------------------------------------------------
# Test sets and scoring


def alignment_test_sets(
    warps: Sequence[float], seeds: Sequence[int], n: int = 40, split: str = "test"
) -> dict[tuple[float, int], Batch]:
    """The lesson's evaluation sets of one split: for each warp ``w`` and seed ``s``, ``n`` episodes of stream
    ``TEST_SEED_OFFSET + s`` of ``split`` at warp ``w``, collated into one padded batch. ``split="val"``: seen
    voices, unseen recordings and images (where the lesson chooses); ``"test"``: unseen voices and images (what it
    reports). The same episode numbers give the same digits, images and clips at every warp (only the timing
    changes), so the warps are compared on the same strings."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not len(warps) or not len(seeds):
        raise ValueError(f"warps and seeds must be non-empty, got {list(warps)} and {list(seeds)}")
    return {
        (w, s): collate_episodes(make_alignment_episodes(n, split, warp=w, seed=TEST_SEED_OFFSET + s))
        for w in warps
        for s in seeds
    }


def selection_batch(seed: int, n: int = 30) -> Batch:
    """``n`` validation episodes at warps drawn uniformly in [0, 1] (stream ``SELECTION_SEED_OFFSET + seed`` of the
    val split), collated: what the lesson scores after every epoch to choose the epoch (never the test split)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    warp = np.random.default_rng(SELECTION_SEED_OFFSET + seed).uniform(0, 1, n)
    return collate_episodes(make_alignment_episodes(n, "val", warp=warp, seed=SELECTION_SEED_OFFSET + seed))


def timing_ranges(episodes: Sequence[AlignmentEpisode]) -> dict[str, np.ndarray]:
    """What the warp did to each token of ``episodes``, measured from the frames (so up to one frame of rounding):

    * ``"speech_stretch"`` — spoken frames of the token / its clip's natural duration in frames;
    * ``"video_hold"`` — video frames of the token / the same natural duration;
    * ``"pause_s"`` — silent frames after the token's last spoken frame, in seconds;
    * ``"lead_s"`` — silent frames before the first spoken frame, in seconds (one value per episode).

    Each value is an array (one entry per token, or per episode for ``"lead_s"``).
    """
    if not len(episodes):
        raise ValueError("episodes must hold at least one episode")
    clips = load_audio_clips()
    sr = int(clips["sample_rate"])
    out: dict[str, list[float]] = {"speech_stretch": [], "video_hold": [], "pause_s": [], "lead_s": []}
    for ep in episodes:
        dt = ep.frame_ms / 1000
        hop = sr * ep.frame_ms / 1000
        voiced, tokens = ep.speech_voiced.numpy(), ep.speech_token.numpy()
        out["lead_s"].append(float(np.argmax(voiced)) * dt)
        for k, c in enumerate(ep.clips.tolist()):
            natural = clips["length"][c] / hop
            spoken = np.flatnonzero((tokens == k) & voiced)
            out["speech_stretch"].append(len(spoken) / natural)
            out["video_hold"].append(float((ep.video_token == k).sum()) / natural)
            out["pause_s"].append(float(((tokens == k) & (np.arange(len(tokens)) > spoken.max())).sum()) * dt)
    return {k: np.array(v) for k, v in out.items()}


def alignment_score(
    method: str, batch: Batch, space: AlignmentSpace | None = None, aligner: AttentionAligner | None = None
) -> float:
    """Alignment accuracy of one pairing method (one of :data:`~mmlab.align.ALIGN_METHODS`) on a batch of
    episodes: the share of spoken speech frames paired with a video frame of their own transcript token
    (:func:`~mmlab.align.predict_tokens`, then :func:`~mmlab.align.alignment_accuracy` over ``speech_voiced``).
    The batch is moved to the space's device; the models run in eval mode (their modes are restored)."""
    if space is not None:
        batch = to_device(batch, next(space.parameters()).device)
    with eval_mode(space, aligner):
        pred = predict_tokens(method, batch, space, aligner)
    return alignment_accuracy(pred, batch["speech_token"], batch["speech_voiced"])


def chance_accuracy(batch: Batch) -> float:
    """Accuracy of a random token per spoken frame: ``mean over spoken frames of 1/K``, for an episode of ``K``
    tokens."""
    check_tensor("speech_voiced", batch["speech_voiced"], ("B", "T"), dtype="bool")
    check_tensor("token_mask", batch["token_mask"], (batch["speech_voiced"].shape[0], None), dtype="bool")
    k = batch["token_mask"].sum(1, keepdim=True).float().expand_as(batch["speech_voiced"])
    return (1 / k)[batch["speech_voiced"]].mean().item()


def score_methods(
    space: AlignmentSpace,
    aligner: AttentionAligner,
    test_sets: Mapping[tuple[float, int], Batch],
    seed: int,
    warps: Sequence[float],
    methods: Sequence[str] = ALIGN_METHODS,
) -> dict[str, list[float]]:
    """``{method: [accuracy at each warp]}`` of one seed's space and aligner on that seed's test sets."""
    for m in methods:
        check_choice("methods", m, ALIGN_METHODS)
    missing = [(w, seed) for w in warps if (w, seed) not in test_sets]
    if missing:
        raise KeyError(f"test_sets has no batch for (warp, seed) {missing}")
    return {m: [alignment_score(m, test_sets[w, seed], space, aligner) for w in warps] for m in methods}


def alignment_experiment(
    train: Trainer,
    test_sets: Mapping[tuple[float, int], Batch],
    seeds: Sequence[int],
    warps: Sequence[float],
    methods: Sequence[str] = ALIGN_METHODS,
    trained: Mapping[int, tuple[AlignmentSpace, AttentionAligner]] | None = None,
) -> dict[str, np.ndarray]:
    """The lesson's evidence: for each seed, ``train(seed)`` gives a fresh ``(space, aligner)`` (unless
    ``trained`` already holds that seed's pair), and every method is scored at every warp on that seed's test
    episodes. Returns ``{method: accuracies}``, each an array (len(seeds), len(warps))."""
    if not len(seeds):
        raise ValueError("seeds must be non-empty")
    trained = dict(trained or {})
    results = {}
    for seed in seeds:
        space, aligner = trained[seed] if seed in trained else train(seed)
        results[seed] = score_methods(space, aligner, test_sets, seed, warps, methods)
    return {m: np.array([results[s][m] for s in seeds]) for m in methods}


# --------------------------------------------------------------------------------------------------------------
# Figures


def _token_boundaries(tokens: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.diff(tokens)) + 0.5


def episode_figure(episodes: Sequence[AlignmentEpisode], titles: Sequence[str] | None = None) -> Figure:
    """Each episode on one time axis: its speech (log-mel, time first) above its video (a film strip of the 8×8
    frames), with the true token boundaries of each stream drawn as lines. When the lines of the two panels meet,
    the streams are in step."""
    n = len(episodes)
    if n == 0:
        raise ValueError("episodes must hold at least one episode")
    titles = list(titles) if titles is not None else [e.transcript for e in episodes]
    if len(titles) != n:
        raise ValueError(f"titles must have {n} entries, got {len(titles)}")
    fig, axes = new_figure(2 * n, 1, size=(10, 2.1 * n + 0.6), squeeze=False, height_ratios=[1.6, 1] * n)
    for i, ep in enumerate(episodes):
        dt = ep.frame_ms / 1000
        a_sp, a_v = axes[2 * i, 0], axes[2 * i + 1, 0]
        sp = ep.speech.T.numpy()  # (n_mels, T): mel bands up, time across
        a_sp.imshow(sp, origin="lower", aspect="auto", cmap="magma", extent=(0, len(ep.speech) * dt, 0, sp.shape[0]))
        strip = ep.video[:, 0].permute(1, 0, 2).reshape(8, -1).clamp(0, 1).numpy()
        a_v.imshow(strip, cmap="gray_r", aspect="auto", extent=(0, len(ep.video) * dt, 8, 0))
        for ax, tokens in ((a_sp, ep.speech_token.numpy()), (a_v, ep.video_token.numpy())):
            for b in _token_boundaries(tokens):
                ax.axvline(b * dt + dt / 2, color="tab:cyan", lw=1.2)
            for k in range(len(ep.digits)):
                start = np.flatnonzero(tokens == k)[0]
                ax.text(
                    start * dt + 0.01,
                    0.93,
                    DIGIT_WORDS[int(ep.digits[k])],
                    ha="left",
                    va="top",
                    fontsize=8,
                    transform=ax.get_xaxis_transform(),
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
                )
        end = max(len(ep.speech), len(ep.video)) * dt
        a_sp.set(xlim=(0, end), ylabel="mel band", title=titles[i])
        a_v.set(xlim=(0, end), yticks=[], ylabel="video", xlabel="time (s)")
    fig.suptitle("speech (top) and video (bottom) of each episode; lines: true token boundaries")
    return fig


def alignment_figure(
    space: AlignmentSpace,
    aligner: AttentionAligner,
    warp: float = 0.5,
    noise: float = 0.0,
    episode: int = 0,
    split: str = "test",
) -> Figure:
    """Lesson 1's widget: one episode at a given warp and noise; left, the shared space's same-word cost
    matrix (speech frames × video frames) with the DTW path and the proportional pairing; right, the aligner's
    attention map with its arg-max; each titled with its alignment accuracy. Dotted lines: true token
    boundaries. ``noise`` is both the pixel-noise std of the video and the audio noise relative to the speech RMS.
    """
    ep = make_alignment_episode(split, warp=warp, image_noise=noise, audio_noise=noise, seed=2024, index=episode)
    device = next(space.parameters()).device
    batch = to_device(collate_episodes([ep]), device)
    with eval_mode(space, aligner), torch.no_grad():
        cost = space.cost(batch)
        za = space.speech(batch["speech"], batch["speech_mask"])
        zv = space.video(batch["video"], batch["video_mask"])
        weights = aligner(za, batch["speech_mask"], zv, batch["video_mask"])
    _, path = dtw(cost[0])
    acc = {m: alignment_score(m, batch, space, aligner) for m in ("proportional", "dtw", "attention")}
    st, vt = ep.speech_token.numpy(), ep.video_token.numpy()
    fig, axes = new_figure(1, 2, size=(11, 4.4))
    panels = (
        (cost[0], f"DTW on −log p(same word): {100 * acc['dtw']:.0f}% right", "viridis", "cost (nats)"),
        (weights[0], f"cross-modal attention: {100 * acc['attention']:.0f}% right", "magma", "attention weight"),
    )
    for ax, (mat, title, cmap, label) in zip(axes, panels):
        im = ax.imshow(mat.float().cpu().numpy(), aspect="auto", origin="lower", cmap=cmap, interpolation="nearest")
        fig.colorbar(im, ax=ax, label=label)
        for b in _token_boundaries(vt):
            ax.axvline(b, color="w", lw=0.7, ls=":")
        for b in _token_boundaries(st):
            ax.axhline(b, color="w", lw=0.7, ls=":")
        ax.set(
            xlabel=f"video frame ({ep.frame_ms} ms each)", ylabel=f"speech frame ({ep.frame_ms} ms each)", title=title
        )
    rows, cols = path.cpu().nonzero(as_tuple=True)
    axes[0].plot(cols.numpy(), rows.numpy(), color="tab:red", lw=1.6, label="DTW path")
    ones_s, ones_v = torch.ones(1, len(st), dtype=torch.bool), torch.ones(1, len(vt), dtype=torch.bool)
    prop = proportional_pairing(ones_s, ones_v)[0].numpy()
    axes[0].plot(prop, np.arange(len(st)), color="w", lw=1.2, ls="--", label="proportional pairing")
    axes[1].plot(weights[0].argmax(-1).cpu().numpy(), np.arange(len(st)), ".", color="tab:cyan", ms=3, label="arg-max")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(
        f"“{ep.transcript}” · warp {warp:.2f} · noise {noise:.2f} · proportional pairing "
        f"{100 * acc['proportional']:.0f}% right",
        fontsize=10,
    )
    return fig


def alignment_curves_figure(
    acc: Mapping[str, np.ndarray], warps: Sequence[float], chance: float | None = None, split: str | None = None
) -> Figure:
    """Alignment accuracy against warp strength, one curve per method: mean ± standard deviation (ddof = 1) over
    the seeds (the rows of each ``acc[method]``, an array (seeds, warps)); a dashed line at ``chance``; the title
    names the ``split`` the episodes come from, when given."""
    n_seeds = {np.shape(a)[0] for a in acc.values()}
    for m, a in acc.items():
        if np.ndim(a) != 2 or np.shape(a)[1] != len(warps):
            raise ValueError(f"acc[{m!r}] must have shape (seeds, {len(warps)}), got {np.shape(a)}")
    if len(n_seeds) != 1:
        raise ValueError(f"every acc[method] must have the same number of seeds, got {sorted(n_seeds)}")
    (n,) = n_seeds
    fig = plot_curves(
        warps,
        {ALIGN_METHOD_LABELS.get(m, m): np.mean(a, 0) for m, a in acc.items()},
        errors=None if n < 2 else {ALIGN_METHOD_LABELS.get(m, m): np.std(a, 0, ddof=1) for m, a in acc.items()},
        xlabel="warp strength (0 = streams in step)",
        ylabel="alignment accuracy (share of spoken frames)",
        title=f"Aligning speech to video{'' if split is None else f' ({split} episodes)'}: mean ± std over {n} seeds",
        hline=None if chance is None else {"chance (a random token)": chance},
    )
    fig.axes[0].legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 0.08))
    return fig


def grounding_figure(
    canvas: torch.Tensor,
    weights: torch.Tensor,
    texts: Sequence[str],
    grid: int,
    target_cell: torch.Tensor | None = None,
) -> Figure:
    """Attention over image patches as heat maps on the canvases: ``canvas`` (N, 1, H, W), ``weights``
    (N, grid²) (one query each), ``texts`` the N queries; a green square marks the true cell when given."""
    from matplotlib.patches import Rectangle

    check_tensor("canvas", canvas, ("N", 1, "H", "W"), dtype="float")
    n = canvas.shape[0]
    check_tensor("weights", weights, (n, grid * grid), dtype="float")
    if len(texts) != n:
        raise ValueError(f"texts must have {n} entries, got {len(texts)}")
    if target_cell is not None:
        check_tensor("target_cell", target_cell, (n,), dtype="int")
    fig, axes = new_figure(1, n, size=(2.3 * n, 2.8), squeeze=False)
    size = canvas.shape[-1]
    cell = size / grid
    for i, ax in enumerate(axes[0]):
        ax.imshow(canvas[i, 0].clamp(0, 1).cpu().numpy(), cmap="gray_r", extent=(0, size, size, 0))
        heat = weights[i].detach().float().cpu().reshape(grid, grid).numpy()
        ax.imshow(heat, cmap="Reds", alpha=0.55, extent=(0, size, size, 0), vmin=0, vmax=max(float(heat.max()), 1e-6))
        if target_cell is not None:
            r, c = divmod(int(target_cell[i]), grid)
            ax.add_patch(Rectangle((c * cell, r * cell), cell, cell, fill=False, ec="tab:green", lw=2))
        ax.set_title(f"“{texts[i]}”", fontsize=9)
        ax.set(xlabel="x (px)", ylabel="y (px)" if i == 0 else None)
    fig.suptitle("attention of the query over 8×8 patches (red); true place (green)")
    return fig
