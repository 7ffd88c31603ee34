"""Lesson 4's experiments: a weak image modality beside a dominant audio one, and two tasks on one trunk.

Data recipes (:func:`load_imbalance_data`, :func:`load_multitask_data`), the two trainers (both run
:func:`mmlab.train.fit`, with the balancing methods of :mod:`mmlab.balance` in its hooks), the memoised runs
behind the notebook and its widget (:func:`imbalance_experiment`), and the lesson's figures
(:func:`plot_rho_k`, :func:`imbalance_widget_figure`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from ..balance import (
    GradNorm,
    UncertaintyWeighting,
    encode,
    fit_linear_probe,
    gradient_norms,
    inverse_norm_weights,
    modality_logits,
    modality_scores,
    modulate_gradients,
    ogm_coefficients,
    weighted_sum,
)
from ..checks import check_choice
from ..data import load_avdigits, standardize
from ..models import MultimodalClassifier, mlp
from ..runtime import resolve_device, seeded
from ..train import eval_mode, fit, make_loader, predict
from ..viz import new_figure

__all__ = [
    "IMBALANCE_METHODS",
    "OPTIMIZERS",
    "BALANCERS",
    "ImbalanceData",
    "load_imbalance_data",
    "ImbalanceRun",
    "train_imbalance",
    "probe_modality",
    "MultitaskData",
    "load_multitask_data",
    "MultitaskRun",
    "train_multitask",
    "imbalance_experiment",
    "per_epoch",
    "plot_rho_k",
    "imbalance_widget_figure",
]

IMBALANCE_METHODS = ("baseline", "ogm", "ogm_ge", "aux", "inverse_norm", "alone")
"""How :func:`train_imbalance` treats the two modalities (see its docstring)."""
OPTIMIZERS = ("sgd", "adam")
"""The optimizers :func:`train_imbalance` offers."""
BALANCERS = ("fixed", "uncertainty", "gradnorm")
"""How :func:`train_multitask` weighs its two losses."""


# ---------------------------------------------------------------------------------------------------------------
# Two modalities: weak images + dominant audio on AV-Digits


@dataclass
class ImbalanceData:
    """Two-modality AV-Digits as flat tensors: ``train[m]`` / ``val[m]`` / ``test[m]`` for m in
    ``("image", "audio")``.

    image: the 8×8 digit (pixels/16) plus fixed Gaussian noise, flattened to 64; audio: 20 MFCCs' mean and std
    over time (40 numbers) standardised with training statistics. Val audio comes from the training voices but
    from recordings (speed/pitch settings) training never hears; test audio from 2 held-out voices
    (:func:`mmlab.data.clip_splits`). Choices are made on val, results reported on test.
    """

    train: dict[str, torch.Tensor]
    val: dict[str, torch.Tensor]
    test: dict[str, torch.Tensor]
    y_train: torch.Tensor
    y_val: torch.Tensor
    y_test: torch.Tensor
    image_noise: float

    def split(self, name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``(inputs, labels)`` of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        check_choice("split", name, ("train", "val", "test"))
        return getattr(self, name), getattr(self, f"y_{name}")

    @property
    def dims(self) -> dict[str, int]:
        return {m: x.shape[1] for m, x in self.train.items()}

    @property
    def num_modalities(self) -> int:
        return len(self.train)


@lru_cache(maxsize=8)
def load_imbalance_data(image_noise: float = 0.3, seed: int = 0) -> ImbalanceData:
    """The lesson's data: weak (noisy) images, dominant audio that generalises imperfectly (new voices).

    Cached: treat the returned tensors as read-only.
    """
    tr, va, te = (
        load_avdigits(split, audio_format="mfcc_stats", image_noise=image_noise, seed=seed)
        for split in ("train", "val", "test")
    )
    a_tr, a_va, a_te = standardize(tr.audio, va.audio, te.audio)
    return ImbalanceData(
        train={"image": tr.image.flatten(1), "audio": a_tr},
        val={"image": va.image.flatten(1), "audio": a_va},
        test={"image": te.image.flatten(1), "audio": a_te},
        y_train=tr.label,
        y_val=va.label,
        y_test=te.label,
        image_noise=float(image_noise),
    )


@dataclass
class ImbalanceRun:
    """The outcome of :func:`train_imbalance`.

    ``val_acc`` / ``test_acc``: accuracy of the fused logits on the val / test split (for ``"alone"``: of the
    single modality);
    ``half_train_acc[m]``: per epoch, training accuracy of modality m's share of the logits (``argmax out_m``);
    ``rho``: per step, ``s_audio / s_image``; ``k[m]``: per step, the coefficient applied to m's gradients
    (OGM / OGM-GE), or the inverse-norm weight; ``model``: the trained ``MultimodalClassifier`` (eval mode);
    ``image_probe`` / ``image_probe_val``: test / val accuracy of a linear probe of the image encoder (fitted on
    the training split), when computed (:func:`imbalance_experiment`).
    """

    method: str
    seed: int
    test_acc: float
    model: MultimodalClassifier
    half_train_acc: dict[str, list[float]] = field(default_factory=dict)
    rho: list[float] = field(default_factory=list)
    k: dict[str, list[float]] = field(default_factory=dict)
    image_probe: float | None = None
    val_acc: float = float("nan")
    image_probe_val: float | None = None


def _make_optimizer(name: str, params, lr: float | None) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01 if lr is None else lr, momentum=0.9, weight_decay=1e-4)
    return torch.optim.Adam(params, lr=1e-3 if lr is None else lr, weight_decay=1e-4)


def _check_epochs(epochs: int) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")


def train_imbalance(
    data: ImbalanceData,
    method: str = "baseline",
    *,
    seed: int = 0,
    alpha: float = 1.0,
    optimizer: str = "sgd",
    lr: float | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    modality: str = "image",
    smooth: bool = False,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> ImbalanceRun:
    """Train encoders ``Linear(d→64)–ReLU–Linear(64→16)–ReLU`` per modality and a ``Linear(32→10)`` head.

    ``method`` (one of :data:`IMBALANCE_METHODS`): ``"baseline"`` (joint cross-entropy), ``"ogm"`` /
    ``"ogm_ge"`` (each step, every gradient of the dominant encoder × k from :func:`~mmlab.balance.
    ogm_coefficients` on the batch's :func:`~mmlab.balance.modality_scores`, plus GE noise for ``"ogm_ge"``;
    Peng et al., CVPR 2022), ``"aux"`` (plus a unimodal linear head and cross-entropy per modality),
    ``"inverse_norm"`` (the recipe's weights ``max_j ‖g_j‖ / ‖g_m‖``, applied), or ``"alone"`` (only
    ``modality``'s encoder and a linear head). ``optimizer``: ``"sgd"`` (lr 0.01, momentum 0.9, weight decay
    1e-4) or ``"adam"`` (lr 1e-3); ``smooth`` picks the continuous OGM variant. Runs :func:`mmlab.train.fit`
    (float32: no AMP) with the modulation in its ``after_backward`` hook; initialisation, shuffling and GE noise
    are seeded with ``seed`` without touching the caller's random state.
    """
    check_choice("method", method, IMBALANCE_METHODS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("modality", modality, tuple(data.train))
    _check_epochs(epochs)
    device = resolve_device(device)
    names = [modality] if method == "alone" else list(data.train)
    modulated = len(names) == 2 and method != "aux"
    with seeded(seed):
        encoders = {m: mlp(data.dims[m], 64, 16, final_activation=True) for m in names}
        model = MultimodalClassifier(encoders, 10, fused_dim=16 * len(names)).to(device)
        aux = nn.ModuleDict({m: nn.Linear(16, 10) for m in names}).to(device) if method == "aux" else None
        params = list(model.parameters()) + (list(aux.parameters()) if aux is not None else [])
        opt = _make_optimizer(optimizer, params, lr)
        groups = {m: list(model.encoders[m].parameters()) for m in names}
        x_tr = [data.train[m].to(device) for m in names]
        y_tr = data.y_train.to(device)
        run = ImbalanceRun(method, seed, float("nan"), model, {}, [], {m: [] for m in names})
        stash: dict[str, object] = {}  # this step's features and targets, for the OGM scores

        def compute_loss(model: MultimodalClassifier, batch) -> torch.Tensor:
            *xs, y = batch
            feats = model.features(*xs)
            loss = F.cross_entropy(model.head(torch.cat(feats, -1)), y)
            if aux is not None:
                loss = loss + sum(F.cross_entropy(aux[m](h), y) for m, h in zip(names, feats))
            stash["feats"], stash["target"] = feats, y
            return loss

        def after_backward(model: MultimodalClassifier, batch, result) -> None:
            if not modulated:
                return
            s = modality_scores(stash["feats"], model.head, stash["target"])
            run.rho.append(float(s[1] / s[0].clamp_min(1e-12)))
            if method in ("ogm", "ogm_ge"):
                k = ogm_coefficients(s[0].clamp_min(1e-12), s[1].clamp_min(1e-12), alpha, smooth=smooth)
                coeffs = dict(zip(names, k))
                modulate_gradients(groups, coeffs, noise=method == "ogm_ge")
            elif method == "inverse_norm":
                coeffs = inverse_norm_weights(gradient_norms(groups))
                modulate_gradients(groups, coeffs)
            else:
                coeffs = dict.fromkeys(names, 1.0)
            for m in names:
                run.k[m].append(coeffs[m])

        def after_epoch(model: MultimodalClassifier, epoch: int) -> dict[str, float]:
            with torch.no_grad(), eval_mode(model):
                outs = modality_logits(model.features(*x_tr), model.head)
            return {f"{m}_half_train_acc": float((o.argmax(-1) == y_tr).float().mean()) for m, o in zip(names, outs)}

        history = fit(
            model,
            make_loader(*x_tr, y_tr, batch_size=batch_size, shuffle=True, seed=seed),
            epochs=epochs,
            optimizer=opt,
            compute_loss=compute_loss,
            after_backward=after_backward,
            after_epoch=after_epoch,
            device=device,
            amp=False,
            progress=progress,
            desc=f"{method} seed {seed}",
        )
    run.half_train_acc = {m: history[f"{m}_half_train_acc"] for m in names}
    for split in ("val", "test"):
        x, y = data.split(split)
        pred = predict(model, [x[m] for m in names]).argmax(-1)
        setattr(run, f"{split}_acc", float((pred == y).float().mean()))
    model.eval()
    return run


def probe_modality(
    run: ImbalanceRun, data: ImbalanceData, modality: str = "image", splits: Sequence[str] = ("test",)
) -> float | dict[str, float]:
    """Linear-probe accuracy of ``modality``'s encoder after ``run``: the probe is fitted once on the training
    split's frozen features (:func:`mmlab.balance.fit_linear_probe`) and scored on each of ``splits``. Returns a
    float for ``splits=("test",)`` (the default), else ``{split: accuracy}``."""
    if isinstance(splits, str):
        raise ValueError(f"splits must be a sequence of split names, got the string {splits!r}")
    probe = fit_linear_probe(encode(run.model, modality, data.train[modality]), data.y_train)
    scores = {}
    for split in splits:
        x, y = data.split(split)
        scores[split] = float(probe.score(encode(run.model, modality, x[modality]).numpy(), y.numpy()))
    return scores["test"] if tuple(splits) == ("test",) else scores


# ---------------------------------------------------------------------------------------------------------------
# Two tasks: digit classification + ink regression from one shared trunk


@dataclass
class MultitaskData:
    """AV-Digits images for two tasks from one shared trunk, per split (train / val / test).

    ``x``: the 8×8 digit as 64 numbers (pixels / 16, in [0, 1]) plus Gaussian noise of std ``image_noise`` (the
    same images as :func:`load_imbalance_data`'s image modality; the lesson uses clean images, ``image_noise = 0``);
    targets ``y`` (the digit: cross-entropy ≈ ln 10 ≈ 2.3 at the start) and ``ink`` (total ink of the *clean* image
    in the data set's raw 0–16 pixel units: 64 pixels × 0–16, a few hundred; the squared error starts at the
    target's variance, about 10³, when the ink head starts at the training mean)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    ink_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    ink_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    ink_test: torch.Tensor

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x, y, ink)`` of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        check_choice("split", name, ("train", "val", "test"))
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}"), getattr(self, f"ink_{name}")

    def head(self, n: int) -> MultitaskData:
        """The first ``n`` training rows, every val and test row (a small copy for tests and quick runs)."""
        return MultitaskData(
            self.x_train[:n], self.y_train[:n], self.ink_train[:n], *self.split("val"), *self.split("test")
        )


@lru_cache(maxsize=2)
def load_multitask_data(image_noise: float = 0.0, seed: int = 0) -> MultitaskData:
    """The two-task data (cached: treat the tensors as read-only); x has 64 columns (8×8 pixels)."""
    d = load_imbalance_data(image_noise, seed)
    splits = ("train", "val", "test")
    ink = {s: load_avdigits(s, audio_format="mfcc_stats", seed=seed).image.sum((1, 2, 3)) * 16 for s in splits}
    return MultitaskData(*(t for s in splits for t in (d.split(s)[0]["image"], d.split(s)[1], ink[s])))


@dataclass
class MultitaskRun:
    """The outcome of :func:`train_multitask`: val and test digit accuracy, val and test RMSE of the ink (raw
    units), and per epoch the task weights and the two raw training losses (``[digit, ink]``, means over the
    epoch's samples)."""

    method: str
    seed: int
    test_acc: float
    test_rmse: float
    weights: list[list[float]] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)
    val_acc: float = float("nan")
    val_rmse: float = float("nan")


def train_multitask(
    data: MultitaskData,
    method: str = "fixed",
    *,
    seed: int = 0,
    fixed_weights: Sequence[float] = (1.0, 1.0),
    epochs: int = 20,
    lr: float = 1e-3,
    weight_lr: float = 0.025,
    gradnorm_alpha: float = 1.5,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> MultitaskRun:
    """Train a shared trunk ``Linear(d→64)–ReLU–Linear(64→32)–ReLU`` (d = ``data.x_train.shape[1]``, 64 for the
    lesson's 8×8 images) with a digit head ``Linear(32→10)`` and an
    ink head ``Linear(32→1)``, minimising ``L_1 = CE(digit)`` and ``L_2 = MSE(ink)`` balanced by ``method`` (one of
    :data:`BALANCERS`): ``"fixed"`` (``Σ w_i L_i`` with ``fixed_weights``, :func:`~mmlab.balance.weighted_sum`),
    ``"uncertainty"`` (:class:`~mmlab.balance.UncertaintyWeighting`, Kendall et al. 2018) or ``"gradnorm"``
    (:class:`~mmlab.balance.GradNorm` on the trunk's last weight, Chen et al. 2018).

    Adam at ``lr`` for the model and at ``weight_lr`` for the task weights, through :func:`mmlab.train.fit`
    (float32). The ink loss is the mean squared error in raw units; nothing is normalised by hand, which is the
    point. Initialisation and shuffling are seeded with ``seed`` without touching the caller's random state.
    """
    check_choice("method", method, BALANCERS)
    _check_epochs(epochs)
    device = resolve_device(device)
    with seeded(seed):
        trunk = mlp(data.x_train.shape[1], 64, 32, final_activation=True)
        heads = nn.ModuleList([nn.Linear(32, 10), nn.Linear(32, 1)])
    with torch.no_grad():  # start the ink head at the training mean: the loss then starts at the target's variance
        heads[1].bias.fill_(float(data.ink_train.mean()))
    model = nn.ModuleDict({"trunk": trunk, "heads": heads}).to(device)
    balancer: nn.Module | None = {
        "fixed": None,
        "uncertainty": UncertaintyWeighting(2),
        "gradnorm": GradNorm(2, gradnorm_alpha),
    }[method]
    groups = [{"params": list(model.parameters()), "lr": lr}]
    if balancer is not None:
        balancer.to(device)
        groups.append({"params": list(balancer.parameters()), "lr": weight_lr})
    opt = torch.optim.Adam(groups)

    def outputs(x: torch.Tensor) -> torch.Tensor:
        h = trunk(x)
        return torch.cat([heads[0](h), heads[1](h)], -1)  # (B, 10 digit logits + 1 ink)

    def compute_loss(model: nn.Module, batch) -> dict[str, torch.Tensor]:
        x, y, ink = batch
        out = outputs(x)
        losses = torch.stack([F.cross_entropy(out[:, :10], y), F.mse_loss(out[:, 10], ink)])
        if isinstance(balancer, GradNorm):
            loss = balancer.objective(losses, trunk[2].weight)
        elif isinstance(balancer, UncertaintyWeighting):
            loss = balancer(losses)
        else:
            loss = weighted_sum(losses, fixed_weights)
        return {"loss": loss, "digit_loss": losses[0], "ink_loss": losses[1]}

    def after_step(model: nn.Module, batch) -> None:
        if isinstance(balancer, GradNorm):
            balancer.renormalize()

    def after_epoch(model: nn.Module, epoch: int) -> dict[str, float]:
        w = balancer.weights.cpu().tolist() if balancer is not None else [float(v) for v in fixed_weights]
        return {"digit_weight": w[0], "ink_weight": w[1]}

    tensors = [t.to(device) for t in (data.x_train, data.y_train, data.ink_train)]
    loader = make_loader(*tensors, batch_size=batch_size, shuffle=True, seed=seed)
    history = fit(
        model,
        loader,
        epochs=epochs,
        optimizer=opt,
        compute_loss=compute_loss,
        after_step=after_step,
        after_epoch=after_epoch,
        device=device,
        amp=False,
        progress=progress,
        desc=f"{method} seed {seed}",
    )
    scores = {}
    for split in ("val", "test"):
        x, y, ink = data.split(split)
        out = predict(model, x, fn=outputs, batch_size=len(x))
        scores[f"{split}_acc"] = float((out[:, :10].argmax(-1) == y).float().mean())
        scores[f"{split}_rmse"] = float((out[:, 10] - ink).pow(2).mean().sqrt())
    return MultitaskRun(
        method,
        seed,
        weights=[list(w) for w in zip(history["digit_weight"], history["ink_weight"])],
        losses=[list(v) for v in zip(history["digit_loss"], history["ink_loss"])],
        **scores,
    )


# ---------------------------------------------------------------------------------------------------------------
# Cached runs, plots and the lesson's widget


@lru_cache(maxsize=256)
def _cached_imbalance(method, seed, alpha, optimizer, image_noise, epochs, smooth, progress, lr) -> ImbalanceRun:
    data = load_imbalance_data(image_noise)
    run = train_imbalance(
        data,
        method,
        seed=seed,
        alpha=alpha,
        optimizer=optimizer,
        lr=lr,
        epochs=epochs,
        smooth=smooth,
        progress=progress,
    )
    probes = probe_modality(run, data, "image", splits=("val", "test"))
    run.image_probe, run.image_probe_val = probes["test"], probes["val"]
    return run


def imbalance_experiment(
    method: str,
    *,
    seed: int = 0,
    alpha: float = 1.0,
    optimizer: str = "sgd",
    image_noise: float = 0.3,
    epochs: int = 30,
    smooth: bool = False,
    lr: float | None = None,
    progress: bool = False,
) -> ImbalanceRun:
    """:func:`train_imbalance` on :func:`load_imbalance_data` ``(image_noise)``, plus the image encoder's linear
    probe scored on test and val (``run.image_probe``, ``run.image_probe_val``), memoised: the same arguments
    return the same (shared, read-only) run, so the widget reuses the lesson's runs instead of retraining.
    ``lr`` = None: the optimizer's default (SGD 0.01, Adam 1e-3)."""
    check_choice("method", method, IMBALANCE_METHODS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if method not in ("ogm", "ogm_ge"):
        alpha, smooth = 1.0, False  # unused: one cache entry
    return _cached_imbalance(
        method,
        int(seed),
        float(alpha),
        optimizer,
        round(float(image_noise), 6),
        int(epochs),
        bool(smooth),
        progress,
        None if lr is None else float(lr),
    )


def per_epoch(values: Sequence[float], epochs: int) -> np.ndarray:
    """Mean of per-step ``values`` within each of ``epochs`` equal chunks (steps per epoch are constant here)."""
    v = np.asarray(values, dtype=float)
    if epochs < 1 or len(v) % epochs:
        raise ValueError(f"values has {len(v)} steps, not a multiple of epochs={epochs}")
    return v.reshape(epochs, -1).mean(1)


def plot_rho_k(runs: Mapping[str, ImbalanceRun], *, axes=None, title: str = "") -> Figure:
    """Left: the score ratio ``ρ_t = s_audio / s_image`` per step (faint) and per epoch (line) for each run;
    right: the factor applied to each encoder's gradients (OGM's k, or the inverse-norm weight), per step
    (faint) and per epoch (line; solid: audio, dashed: image)."""
    if axes is None:
        _, axes = new_figure(1, 2, size=(10, 3.5))
    a1, a2 = axes
    for i, (name, run) in enumerate(runs.items()):
        if not run.rho:
            raise ValueError(f"run {name!r} recorded no ρ (it needs two modalities and no auxiliary heads)")
        color = f"C{i}"
        epochs = len(run.half_train_acc["audio"])
        ep = np.arange(1, epochs + 1)
        steps = np.arange(1, len(run.rho) + 1) / (len(run.rho) / epochs)
        a1.plot(steps, run.rho, color=color, alpha=0.2, lw=0.6)
        a1.plot(ep, per_epoch(run.rho, epochs), color=color, marker=".", label=name)
        for m, ls in (("audio", "-"), ("image", "--")):
            a2.plot(steps, run.k[m], color=color, alpha=0.15, lw=0.5, ls=ls)
            a2.plot(ep, per_epoch(run.k[m], epochs), color=color, ls=ls, label=f"{name}: {m}")
    a1.axhline(1, ls="--", lw=1, color="gray")
    a1.set(xlabel="epoch", ylabel="ρ = s_audio / s_image (ratio)", title="who explains the labels better")
    a2.set(xlabel="epoch", ylabel="gradient factor (×)", title="factor on each encoder's gradients")
    a2.set_ylim(0, None)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        axes[0].figure.suptitle(title)
    return axes[0].figure


def imbalance_widget_figure(
    alpha: float = 1.0, image_noise: float = 0.3, optimizer: str = "sgd", seed: int = 0, epochs: int = 30
) -> Figure:
    """Lesson 4's widget: joint training with and without OGM at ``alpha``, for images with ``image_noise``,
    trained with ``optimizer``. Shows ρ_t and k_t, and the image encoder's probe accuracy (alone, joint,
    joint + OGM) beside the joint models' test accuracy. Runs are memoised (a new setting trains ≤ 3 small
    models, about a second each on a laptop CPU)."""
    if not math.isfinite(float(alpha)) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    if not math.isfinite(float(image_noise)) or image_noise < 0:
        raise ValueError(f"image_noise must be a finite number >= 0, got {image_noise}")
    kw = dict(seed=seed, optimizer=optimizer, image_noise=image_noise, epochs=epochs)
    alone = imbalance_experiment("alone", **kw)
    base = imbalance_experiment("baseline", **kw)
    ogm = imbalance_experiment("ogm", alpha=alpha, **kw)
    fig, axes = new_figure(1, 3, size=(13.5, 3.6), width_ratios=[1, 1, 1.1])
    plot_rho_k({"joint": base, f"joint + OGM (α={alpha:g})": ogm}, axes=axes[:2])
    names = ["image alone", "joint", "joint + OGM"]
    probes = [alone.image_probe, base.image_probe, ogm.image_probe]
    x = np.arange(3)
    axes[2].bar(x - 0.2, probes, 0.4, label="image probe", color="tab:blue")
    axes[2].bar(x[1:] + 0.2, [base.test_acc, ogm.test_acc], 0.4, label="joint test accuracy", color="tab:orange")
    for xi, v in zip(x - 0.2, probes):
        axes[2].annotate(f"{100 * v:.0f}", (xi, v), ha="center", va="bottom", fontsize=8)
    for xi, v in zip(x[1:] + 0.2, [base.test_acc, ogm.test_acc]):
        axes[2].annotate(f"{100 * v:.0f}", (xi, v), ha="center", va="bottom", fontsize=8)
    axes[2].set_xticks(x, names)
    axes[2].set(ylim=(0, 1.25), ylabel="test accuracy (fraction)", title="what the image encoder learned")
    axes[2].legend(fontsize=8, loc="upper left", ncols=2)
    fig.suptitle(f"image noise σ = {image_noise:g}, {optimizer.upper()}, seed {seed}, {epochs} epochs")
    return fig
