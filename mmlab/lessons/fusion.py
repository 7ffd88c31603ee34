"""Lesson 2 (fusion): the lesson's AV-Digits tasks, its timing of fusion layers and its widget figure.

* :func:`fusion_task`: image–speech pairs from AV-Digits, for the interaction task ("is the sum of the written and
  the spoken digit odd?") and the ordinary digit task;
* :func:`build_fusion_classifier`, :func:`train_fusion_model` and :func:`fusion_accuracy`: the lesson's model
  (an MLP encoder per modality, a fusion layer, a linear head), trained with :func:`mmlab.train.fit` and kept at
  the epoch with the best *validation* accuracy (chosen on val only; test is scored separately, afterwards);
* :func:`embedding_shift`: how far a split's class-conditional embeddings move away from another split's, in
  units of the within-class spread (the feature shift the lesson's transfer reading is about);
* :func:`time_fusions`: forward+backward time of fusion modules side by side, a thin wrapper around the course's
  one timing helper :func:`mmlab.deploy.compare_latency`;
* :func:`fusion_tradeoff_figure`: the lesson's widget (what TFN and LMF cost, beside the accuracy per rank).

The fusion methods themselves live in :mod:`mmlab.fusion`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
import torch
from torch import nn

from ..checks import check_choice
from ..data import SPLITS, load_avdigits
from ..deploy import compare_latency
from ..fusion import NormalizedFusion, fusion_complexity, make_fusion
from ..models import MLPEncoder, MultimodalClassifier
from ..runtime import seeded
from ..stats import sample_std
from ..train import History, evaluate, fit, make_loader, predict
from ..viz import new_figure

__all__ = [
    "fusion_task",
    "build_fusion_classifier",
    "FusionRun",
    "train_fusion_model",
    "fusion_accuracy",
    "embedding_shift",
    "time_fusions",
    "fusion_tradeoff_figure",
]


def time_fusions(
    modules: Mapping[str, nn.Module], *features: torch.Tensor, rounds: int = 7, sample_s: float = 2e-3
) -> dict[str, float]:
    """Median seconds of one forward+backward pass (``module(*features).square().mean().backward()``) of each
    module, measured side by side with :func:`mmlab.deploy.compare_latency`.

    Each module is warmed up, then timed in ``rounds`` interleaved rounds with their order rotated
    (``number="auto"``: a sample runs enough passes to last about ``sample_s``). On a CPU the modules are timed
    with one torch thread (restored afterwards) on the process's CPU-time clock: these batch-64 layers gain little
    from a second thread, and a multi-threaded kernel on a machine shared with other jobs spin-waits for a busy
    core, which multiplies wall times erratically (measured: 60× for one module, not the other). On CUDA the
    clock is wall time and the device is synchronised around each sample.
    """
    if not modules:
        raise ValueError("modules must name at least one module")
    if not features:
        raise ValueError("features must hold at least one tensor (one per modality)")
    device = features[0].device
    on_cpu = device.type == "cpu"

    def step(module: nn.Module) -> None:
        module.zero_grad(set_to_none=True)
        module(*features).square().mean().backward()

    threads = torch.get_num_threads()
    if on_cpu:
        torch.set_num_threads(1)
    try:
        timings = compare_latency(
            {name: partial(step, module) for name, module in modules.items()},
            warmup=1,
            repeats=rounds,
            device=device,
            clock="cpu" if on_cpu else "wall",
            number="auto",
            sample_s=sample_s,
        )
    finally:
        torch.set_num_threads(threads)
    return {name: t.median for name, t in timings.items()}


def _spread(values, axis: int = 0):
    """Error bars over seeds: :func:`mmlab.stats.sample_std` (ddof=1), drawn as 0 for a single seed."""
    return np.nan_to_num(sample_std(values, axis))


@lru_cache(maxsize=8)
def _mfcc_split(split: str, image_noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ds = load_avdigits(split, audio_format="mfcc_stats", image_noise=image_noise, seed=seed)
    return ds.image, ds.audio, ds.label


def fusion_task(
    split: str = "train", *, task: str = "parity", pairs_per_image: int = 1, image_noise: float = 0.0, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Image–speech pairs from AV-Digits for the fusion lesson.

    ``task="parity"``, the interaction task: a handwritten digit ``a`` and a spoken digit ``b`` drawn
    independently; the label is the parity of their sum, ``(a + b) mod 2 = parity(a) XOR parity(b)``. Each
    modality alone carries no information about the label (chance is 50%) and no additive fusion can represent
    it. ``task="digit"``, the ordinary task: the clip says the image's digit and the label is that digit.

    Each image of ``split`` is paired with ``pairs_per_image`` clips drawn at random (with ``seed``) from the
    same split (test clips come from held-out voices). Returns ``image`` (N, 64) pixels, ``audio`` (N, 40) MFCC
    mean and std standardised with the train split's statistics, ``label`` (N,), ``digit_image`` and
    ``digit_audio`` (N,).
    """
    check_choice("task", task, ("parity", "digit"))
    if not isinstance(pairs_per_image, int) or pairs_per_image < 1:
        raise ValueError(f"pairs_per_image must be a positive int, got {pairs_per_image!r}")
    images, audio, label = _mfcc_split(split, float(image_noise), int(seed))
    train_audio = _mfcc_split("train", 0.0, int(seed))[1]  # statistics from training data only
    audio = (audio - train_audio.mean(0)) / (train_audio.std(0) + 1e-6)
    rng = np.random.default_rng([seed, 7, SPLITS.index(split)])
    labels = label.numpy()
    img_idx = np.repeat(np.arange(len(labels)), pairs_per_image)
    if task == "parity":
        aud_idx = rng.integers(0, len(labels), size=len(img_idx))
    else:
        by_digit = [np.flatnonzero(labels == c) for c in range(10)]
        aud_idx = np.array([rng.choice(by_digit[labels[i]]) for i in img_idx])
    a, b = label[img_idx], label[aud_idx]
    return {
        "image": images[img_idx].flatten(1),
        "audio": audio[aud_idx],
        "label": (a + b) % 2 if task == "parity" else a,
        "digit_image": a,
        "digit_audio": b,
    }


def build_fusion_classifier(
    kind: str,
    num_classes: int,
    *,
    rank: int = 2,
    width: int = 64,
    out_dim: int = 64,
    hidden: int = 128,
    normalize: str | None = None,
) -> MultimodalClassifier:
    """The lesson's model: ``head(fusion(enc_image(x_image), enc_audio(x_audio)))``.

    Encoders are :class:`~mmlab.models.MLPEncoder` (image 64 pixels, audio 40 MFCC statistics, ``hidden`` units,
    ``width``-d features), the fusion is :func:`mmlab.fusion.make_fusion` ``(kind, [width, width], out_dim, rank)``
    — wrapped in :class:`mmlab.fusion.NormalizedFusion` when ``normalize`` is ``"layer"`` or ``"l2"`` — and the
    head is linear. The image encoder is built first, then the audio encoder, the fusion and the head, so a seed
    gives every fusion the same encoder initialisation.
    """
    encoders = {"image": MLPEncoder(64, width, hidden=hidden), "audio": MLPEncoder(40, width, hidden=hidden)}
    fusion = make_fusion(kind, [width, width], out_dim, rank=rank)
    if normalize is not None:
        fusion = NormalizedFusion(fusion, normalize)
    return MultimodalClassifier(encoders, num_classes, fusion=fusion)


@dataclass
class FusionRun:
    """One trained model of the lesson, restored to the epoch with the best validation accuracy.

    ``val_curve``: validation accuracy after each epoch; ``best_epoch`` (1-based) its first arg-max;
    ``val_acc`` = ``val_curve[best_epoch - 1]``; ``train_acc`` the restored model's accuracy on the training
    pairs. No test number is computed here: score test with :func:`fusion_accuracy` once every choice is made.
    """

    model: MultimodalClassifier
    history: History
    val_curve: list[float]
    best_epoch: int
    val_acc: float
    train_acc: float


def fusion_accuracy(model: nn.Module, data: Mapping[str, torch.Tensor], batch_size: int = 1024) -> float:
    """Accuracy of ``model(image, audio)`` on one split of :func:`fusion_task` (eval mode, no gradients)."""
    for key in ("image", "audio", "label"):
        if key not in data:
            raise KeyError(f"data must be one split of fusion_task (keys image, audio, label), lacks {key!r}")
    logits = predict(model, [data["image"], data["audio"]], batch_size=batch_size)
    return (logits.argmax(-1) == data["label"].cpu()).float().mean().item()


def train_fusion_model(
    kind: str,
    data: Mapping[str, Mapping[str, torch.Tensor]],
    seed: int,
    *,
    num_classes: int = 2,
    rank: int = 2,
    epochs: int = 15,
    lr: float = 3e-3,
    normalize: str | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> FusionRun:
    """Train :func:`build_fusion_classifier` on ``data["train"]`` with AdamW (``lr``, batch 128) for ``epochs``
    epochs and keep the weights of the epoch with the best accuracy on ``data["val"]`` (early stopping by model
    selection on validation: ``ê = argmax_e acc_val(θ_e)``, first on ties).

    Initialisation and batch order follow ``seed`` (inside :func:`mmlab.runtime.seeded`, so the caller's random
    state is left as it was). ``data["test"]``, if present, is never touched.
    """
    for split in ("train", "val"):
        if split not in data:
            raise KeyError(f"data must hold a {split!r} split of fusion_task, has {sorted(data)}")
    train, val = data["train"], data["val"]
    with seeded(seed):
        model = build_fusion_classifier(kind, num_classes, rank=rank, normalize=normalize)
        loader = make_loader(train["image"], train["audio"], train["label"], batch_size=128, shuffle=True, seed=seed)
        val_loader = make_loader(val["image"], val["audio"], val["label"], batch_size=1024)
        best: dict = {"acc": -1.0, "epoch": 0, "state": None}

        def keep_best(model: nn.Module, epoch: int) -> dict[str, float]:
            acc = evaluate(model, val_loader)["accuracy"]
            if acc > best["acc"]:
                best.update(acc=acc, epoch=epoch + 1, state=copy.deepcopy(model.state_dict()))
            return {"val_acc": acc}

        label = desc if desc is not None else f"{kind} R={rank} seed {seed}"
        history = fit(
            model, loader, epochs=epochs, lr=lr, after_epoch=keep_best, device=device, progress=progress, desc=label
        )
    model.load_state_dict(best["state"])
    return FusionRun(
        model=model,
        history=history,
        val_curve=list(history["val_acc"]),
        best_epoch=int(best["epoch"]),
        val_acc=float(best["acc"]),
        train_acc=fusion_accuracy(model, train),
    )


def embedding_shift(
    model: MultimodalClassifier,
    reference: Mapping[str, torch.Tensor],
    shifted: Mapping[str, torch.Tensor],
    *,
    where: str = "audio",
) -> float:
    """Class-conditional shift of an embedding from the ``reference`` split to the ``shifted`` split, in units
    of the reference's within-class spread:

    ``shift = mean_c ‖μ_c(shifted) - μ_c(reference)‖ / sqrt(mean_c tr Σ_c(reference))``,

    with ``μ_c``, ``Σ_c`` the mean and covariance of the embedding over the split's samples of class ``c`` (the
    label of ``fusion_task``). ``where`` picks the embedding: ``"audio"`` or ``"image"`` (that encoder's output)
    or ``"fused"`` (the fusion layer's output, what the head reads). 0 = no shift; 1 = the class means moved by
    one typical within-class distance. (A simple Fréchet-style distance between class-conditional means; cf.
    Heusel et al. 2017 for the full Fréchet distance.)
    """
    check_choice("where", where, ("audio", "image", "fused"))

    def embed(d: Mapping[str, torch.Tensor]) -> torch.Tensor:
        def fn(image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
            z_image, z_audio = model.features(image, audio)
            if where == "fused":
                return model.fusion(z_image, z_audio)
            return z_audio if where == "audio" else z_image

        return predict(model, [d["image"], d["audio"]], fn=fn).double()

    z_ref, z_new = embed(reference), embed(shifted)
    y_ref, y_new = reference["label"].cpu(), shifted["label"].cpu()
    classes = sorted(set(y_ref.tolist()) & set(y_new.tolist()))
    if not classes:
        raise ValueError("reference and shifted share no class label")
    moves, spreads = [], []
    for c in classes:
        a, b = z_ref[y_ref == c], z_new[y_new == c]
        moves.append(float((b.mean(0) - a.mean(0)).norm()))
        spreads.append(float(a.var(0, unbiased=True).sum()) if len(a) > 1 else 0.0)
    return float(np.mean(moves) / max(np.sqrt(np.mean(spreads)), 1e-12))


def fusion_tradeoff_figure(
    rank: int = 4,
    width: int = 64,
    num_modalities: int = 2,
    out_dim: int = 64,
    accuracy: Mapping[int, Sequence[float]] | None = None,
    tensor_accuracy: Sequence[float] | None = None,
    chance: float = 0.5,
    accuracy_title: str = "measured test accuracy",
):
    """The lesson's widget: what tensor (TFN) and low-rank (LMF) fusion cost at ``rank``, ``width`` (every
    modality's ``d_m``) and ``num_modalities``, beside the accuracy measured per rank.

    Left: parameters of the fusion layer vs width (log–log), TFN vs LMF at ``rank``, the chosen width marked
    and the ratio in the title. Middle: activation memory kept for backward per sample (bytes), same. Right,
    when ``accuracy`` maps ranks to per-seed accuracies: mean ± sample std (ddof=1) per rank with the chosen
    rank highlighted, TFN's ``tensor_accuracy`` as a band (mean ± sample std) and ``chance`` as a dashed line.
    Costs come from :func:`mmlab.fusion.fusion_complexity` (Zadeh et al. 2017 for TFN, Liu et al. 2018 for
    LMF); nothing is trained here.
    """
    for name, value, low in (("rank", rank, 1), ("width", width, 1), ("num_modalities", num_modalities, 2)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    rank, width, num_modalities = int(rank), int(width), int(num_modalities)
    widths = np.unique(np.geomspace(2, 256, 24).astype(int))
    ncols = 3 if accuracy else 2
    fig, axes = new_figure(1, ncols, size=(4.4 * ncols, 3.7))

    def cost(kind: str, d: int, key: str) -> float:
        return fusion_complexity(kind, [int(d)] * num_modalities, out_dim, rank=rank)[key]

    panels = (
        (axes[0], "params", "parameters", "parameters of the fusion layer"),
        (axes[1], "activation_bytes", "memory for backward", "activation memory per sample (bytes)"),
    )
    for ax, key, short, ylabel in panels:
        for kind, name, color in (("tensor", "tensor (TFN)", "tab:red"), ("lowrank", f"low-rank R={rank}", "tab:blue")):
            ax.plot(widths, [cost(kind, d, key) for d in widths], color=color, label=name)
            ax.plot([width], [cost(kind, width, key)], "o", color=color)
        ratio = cost("tensor", width, key) / cost("lowrank", width, key)
        ax.set(xscale="log", yscale="log", xlabel="width d of each modality (features)", ylabel=ylabel)
        ax.set_title(f"{short}: TFN / LMF = {ratio:,.1f}× at d = {width}", fontsize=9)
        ax.axvline(width, color="gray", lw=0.8, ls=":")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3, which="both")
    if accuracy:
        ax = axes[2]
        ranks = sorted(accuracy)
        means = [float(np.mean(accuracy[r])) for r in ranks]
        stds = [_spread(accuracy[r]) for r in ranks]
        colors = ["tab:orange" if r == rank else "tab:blue" for r in ranks]
        ax.bar([str(r) for r in ranks], means, yerr=stds, capsize=3, color=colors, alpha=0.85, label="low-rank")
        if tensor_accuracy is not None:
            m, s = float(np.mean(tensor_accuracy)), _spread(tensor_accuracy)
            ax.axhspan(m - s, m + s, color="tab:red", alpha=0.15)
            ax.axhline(m, color="tab:red", lw=1, label="tensor (TFN)")
        ax.axhline(chance, color="gray", ls="--", lw=1, label="chance")
        ax.set(xlabel="rank R", ylabel="accuracy (fraction)", ylim=(0, 1.2), yticks=np.linspace(0, 1, 6))
        here = f"R={rank}: {100 * means[ranks.index(rank)]:.1f}%" if rank in accuracy else f"R={rank} not measured"
        ax.set_title(f"{accuracy_title}\n({here})", fontsize=9)
        ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.suptitle(f"Tensor vs low-rank fusion: {num_modalities} modalities, out_dim {out_dim}")
    return fig
