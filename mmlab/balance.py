"""Modality imbalance and loss balancing: gradient modulation (OGM-GE), auxiliary heads, multi-task weighting.

When one modality fits the training labels faster than another, joint training lets it take over: the loss
falls, every encoder's gradient fades, and the slow modality's encoder stops learning ("modality laziness").
OGM-GE (Peng et al., *Balanced Multimodal Learning via On-the-fly Gradient Modulation*, CVPR 2022) measures
how much each modality's share of the fused logits already explains the labels and slows the dominant encoder
down. For several *tasks* rather than modalities, uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018) and
GradNorm (Chen et al., ICML 2018) balance losses of very different scales.

The module also holds the small experiment runners behind Lesson 4 (two-modality AV-Digits, two-task
balancing) and its widget, so that they are unit-tested and reusable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from .checks import check_choice, check_tensor
from .models import MultimodalClassifier
from .runtime import get_device, seed_everything

__all__ = [
    "ogm_coefficients",
    "modality_logits",
    "modality_scores",
    "modulate_gradients",
    "gradient_norms",
    "inverse_norm_weights",
    "weighted_sum",
    "UncertaintyWeighting",
    "GradNorm",
    "ImbalanceData",
    "load_imbalance_data",
    "ImbalanceRun",
    "train_imbalance",
    "encode",
    "linear_probe",
    "MultitaskData",
    "load_multitask_data",
    "MultitaskRun",
    "train_multitask",
    "probe_modality",
    "imbalance_experiment",
    "per_epoch",
    "plot_rho_k",
    "imbalance_widget_figure",
]

METHODS = ("baseline", "ogm", "ogm_ge", "aux", "inverse_norm", "alone")
OPTIMIZERS = ("sgd", "adam")
BALANCERS = ("fixed", "uncertainty", "gradnorm")


# ---------------------------------------------------------------------------------------------------------------
# OGM-GE: per-modality scores, coefficients, gradient modulation


def _positive_score(name: str, value: float | torch.Tensor) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return v


def ogm_coefficients(
    score_a: float | torch.Tensor, score_b: float | torch.Tensor, alpha: float, *, smooth: bool = False
) -> tuple[float, float]:
    """OGM's modulation coefficients ``(k_a, k_b)`` for two modalities (Peng et al., CVPR 2022, eq. 10).

    With the discrepancy ratio ``ρ = s_a / s_b`` of the modalities' scores, the dominant modality (ρ > 1 means
    *a*) gets ``k = 1 - tanh(α·ρ)`` and the other keeps ``k = 1``; symmetrically ``k_b = 1 - tanh(α/ρ)`` when
    ρ < 1; equal scores give ``(1, 1)``. Because ρ > 1 there, k jumps from 1 to at most ``1 - tanh(α)`` the moment
    one modality leads (the official code writes ``tanh(α·relu(ρ))``, the same jump). ``smooth=True`` uses
    ``1 - tanh(α·(ρ - 1))`` instead, which is continuous at ρ = 1 (a variant, not the paper's formula).
    """
    sa, sb = _positive_score("score_a", score_a), _positive_score("score_b", score_b)
    if not math.isfinite(float(alpha)) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    if sa == sb:
        return 1.0, 1.0
    rho = sa / sb if sa > sb else sb / sa  # the dominant modality's ratio, > 1
    k = 1.0 - math.tanh(alpha * ((rho - 1.0) if smooth else rho))
    return (k, 1.0) if sa > sb else (1.0, k)


def modality_logits(features: Sequence[torch.Tensor], head: nn.Linear) -> list[torch.Tensor]:
    """Each modality's share of a concatenation head's logits: ``out_m = h_m W_mᵀ + b / M``.

    For ``logits = W [h_1; …; h_M] + b`` the weight splits into column blocks ``W_m``, so the logits are exactly
    ``Σ_m out_m`` (OGM-GE's official code splits the bias in halves the same way for two modalities).
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    if len(features) < 1:
        raise ValueError("features must hold one (B, d_m) tensor per modality")
    sizes: dict[str, int] = {}
    for i, h in enumerate(features):
        check_tensor(f"features[{i}]", h, ("B", None), dtype="float", sizes=sizes)
    dims = [h.shape[1] for h in features]
    if sum(dims) != head.in_features:
        raise ValueError(f"feature widths {dims} sum to {sum(dims)} but head expects {head.in_features} inputs")
    blocks = torch.split(head.weight, dims, dim=1)
    bias = head.bias / len(features) if head.bias is not None else 0.0
    return [h @ w.T + bias for h, w in zip(features, blocks)]


def modality_scores(features: Sequence[torch.Tensor], head: nn.Linear, target: torch.Tensor) -> torch.Tensor:
    """OGM's score per modality, ``s_m = Σ_i softmax(out_m,i)[y_i]`` over the batch; returns shape ``(M,)``.

    ``out_m`` comes from :func:`modality_logits`; the score is computed without gradient.
    """
    with torch.no_grad():
        outs = modality_logits(features, head)
        check_tensor("target", target, (outs[0].shape[0],), dtype="int")
        return torch.stack([F.softmax(o.float(), -1).gather(1, target[:, None]).sum() for o in outs])


def _groups(groups: Mapping[str, Iterable[nn.Parameter]]) -> dict[str, list[nn.Parameter]]:
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must map modality names to their encoder's parameters")
    out, seen = {}, set()
    for name, params in groups.items():
        plist = list(params)
        if not plist:
            raise ValueError(f"parameter group {name!r} is empty")
        for p in plist:
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"parameter group {name!r} holds a {type(p).__name__}, not a tensor")
            if id(p) in seen:
                raise ValueError(f"a parameter appears in more than one group (again in {name!r})")
            seen.add(id(p))
        out[name] = plist
    return out


def modulate_gradients(
    groups: Mapping[str, Iterable[nn.Parameter]],
    coefficients: Mapping[str, float],
    *,
    noise: bool = False,
) -> None:
    """Scale every gradient of each modality's encoder in place: ``g ← k_m·g`` (+ ``ε``, ``ε ~ N(0, std(g)²)``).

    Call it between ``loss.backward()`` and ``optimizer.step()``; it works with any optimizer and any
    parameter shape (the official OGM-GE code touches only 4-D convolution weights, leaving biases and linear
    layers unmodulated). ``noise=True`` adds OGM-GE's generalisation-enhancement noise to every parameter of
    every group, with each tensor's own gradient std (measured before scaling), as the official code does.
    Every group needs a coefficient: a group that belongs to no modality in ``coefficients`` is an error.
    Parameters without a gradient are skipped.
    """
    groups = _groups(groups)
    unknown = [g for g in groups if g not in coefficients]
    if unknown:
        raise KeyError(
            f"parameter group {unknown[0]!r} belongs to no modality: coefficients are given for {list(coefficients)}"
        )
    for name, params in groups.items():
        k = float(coefficients[name])
        if not math.isfinite(k) or k < 0:
            raise ValueError(f"coefficients[{name!r}] must be a finite number >= 0, got {k}")
        for p in params:
            if p.grad is None:
                continue
            if noise:
                std = p.grad.std() if p.grad.numel() > 1 else p.grad.abs().reshape(())
                p.grad.mul_(k).add_(torch.randn_like(p.grad) * (std + 1e-8))
            elif k != 1.0:
                p.grad.mul_(k)


def gradient_norms(groups: Mapping[str, Iterable[nn.Parameter]]) -> dict[str, float]:
    """The L2 norm of each group's gradients, ``‖g_m‖ = sqrt(Σ_p ‖∂L/∂p‖²)`` (0 where nothing has a gradient)."""
    groups = _groups(groups)
    return {
        name: math.sqrt(sum(float(p.grad.detach().float().pow(2).sum()) for p in ps if p.grad is not None))
        for name, ps in groups.items()
    }


def inverse_norm_weights(norms: Mapping[str, float], *, eps: float = 1e-12) -> dict[str, float]:
    """The popular recipe's weights ``w_m = max_j ‖g_j‖ / ‖g_m‖`` — always ≥ 1 and unbounded as ``‖g_m‖ → 0``.

    Applying them (``g_m ← w_m·g_m``) gives every encoder the largest gradient norm. This is a comparison for the
    lesson, not a published method: norms of encoders of different sizes or parametrisations are not comparable.
    Guarded: a group whose norm is below ``eps`` (nothing to rescale) gets weight 1 instead of a division by 0.
    """
    if not norms:
        raise ValueError("norms must name at least one group")
    for k, v in norms.items():
        if not math.isfinite(float(v)) or v < 0:
            raise ValueError(f"norms[{k!r}] must be a finite number >= 0, got {v}")
    top = max(norms.values())
    return {k: (top / v if v > eps else 1.0) for k, v in norms.items()}


# ---------------------------------------------------------------------------------------------------------------
# Multi-task loss balancing


def _check_losses(losses: Sequence[torch.Tensor] | torch.Tensor, n: int | None = None) -> torch.Tensor:
    if isinstance(losses, torch.Tensor):
        stacked = losses
    else:
        if len(losses) < 1:
            raise ValueError("losses must hold one scalar loss per task")
        for i, loss in enumerate(losses):
            check_tensor(f"losses[{i}]", loss, (), dtype="float")
        stacked = torch.stack(list(losses))
    check_tensor("losses", stacked, (n,) if n is not None else (None,), dtype="float")
    return stacked


def weighted_sum(losses: Sequence[torch.Tensor] | torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """The fixed-weight baseline ``Σ_i w_i·L_i`` (weights are chosen by hand and never adapt)."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float32))
    if w.dim() != 1 or (w < 0).any():
        raise ValueError(f"weights must be a 1-D sequence of numbers >= 0, got {list(weights)}")
    stacked = _check_losses(losses, len(w))
    return (w.to(stacked) * stacked).sum()


class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty task weighting (Kendall, Gal & Cipolla, CVPR 2018), in its common form

        L = Σ_i exp(-s_i)·L_i + s_i,   s_i = log σ_i² learned with the model.

    ``∂L/∂s_i = 1 - exp(-s_i)·L_i`` vanishes at ``s_i = ln L_i``: each task's weight ``exp(-s_i)`` tends to
    ``1 / L_i``, so every weighted loss tends to 1 whatever its scale; the ``+ s_i`` term stops all weights from
    shrinking to 0. ``weights`` gives ``exp(-s)``.
    """

    def __init__(self, n_tasks: int, init: float = 0.0):
        super().__init__()
        if not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}")
        self.log_vars = nn.Parameter(torch.full((n_tasks,), float(init)))

    def forward(self, losses: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        stacked = _check_losses(losses, len(self.log_vars))
        s = self.log_vars.to(stacked)
        return (torch.exp(-s) * stacked + s).sum()

    @property
    def weights(self) -> torch.Tensor:
        return torch.exp(-self.log_vars.detach())


class GradNorm(nn.Module):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018): learn task weights ``w_i`` so that the
    weighted tasks' gradient norms on a shared layer ``W`` follow their relative training rates.

    With ``G_i = ‖∇_W w_i L_i‖``, ``Ḡ = mean_i G_i``, ``r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))``, the
    weights descend ``L_grad = Σ_i |G_i - Ḡ·r_i^α|`` (the target ``Ḡ·r_i^α`` held constant) while the model
    descends ``Σ_i w_i L_i``; after each step the weights are renormalised to sum to the number of tasks.
    A task that lags (large ``r_i``) gets a larger gradient share; ``α`` sets how strongly.

    Use: ``total = gn.backward(losses, shared_weight)`` (sets the model's and the weights' gradients), then
    ``optimizer.step()`` (with ``gn.parameters()`` in it), then ``gn.renormalize()``.
    """

    def __init__(self, n_tasks: int, alpha: float = 1.5):
        super().__init__()
        if not isinstance(n_tasks, int) or n_tasks < 2:
            raise ValueError(f"n_tasks must be an int >= 2, got {n_tasks!r}")
        if not math.isfinite(float(alpha)) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.task_weights = nn.Parameter(torch.ones(n_tasks))
        self.register_buffer("initial_losses", torch.zeros(n_tasks))

    @property
    def weights(self) -> torch.Tensor:
        return self.task_weights.detach().clone()

    def backward(self, losses: Sequence[torch.Tensor] | torch.Tensor, shared_weight: torch.Tensor) -> torch.Tensor:
        """Backpropagate ``Σ w_i L_i`` into the model and ``∂L_grad/∂w`` into the weights; returns the total."""
        stacked = _check_losses(losses, len(self.task_weights))
        if not isinstance(shared_weight, torch.Tensor) or not shared_weight.requires_grad:
            raise ValueError("shared_weight must be a parameter of the shared layer that requires grad")
        if not bool((self.initial_losses > 0).all()):
            self.initial_losses.copy_(stacked.detach().clamp_min(1e-12))
        norms = torch.stack(
            [torch.autograd.grad(li, shared_weight, retain_graph=True)[0].norm() for li in stacked]
        ).detach()
        g = self.task_weights * norms
        rate = stacked.detach() / self.initial_losses
        target = (g.mean() * (rate / rate.mean()) ** self.alpha).detach()
        grad_w = torch.autograd.grad((g - target).abs().sum(), self.task_weights)[0]
        total = (self.task_weights.detach() * stacked).sum()
        total.backward()
        self.task_weights.grad = grad_w
        return total.detach()

    @torch.no_grad()
    def renormalize(self) -> None:
        """Clamp the weights positive and rescale them to sum to the number of tasks."""
        w = self.task_weights.clamp_min(1e-3)
        self.task_weights.copy_(w * len(w) / w.sum())


# ---------------------------------------------------------------------------------------------------------------
# Lesson 4's imbalance experiment: weak visual + dominant audio on AV-Digits


@dataclass
class ImbalanceData:
    """Two-modality AV-Digits as flat tensors: ``train[m]`` / ``test[m]`` for m in ``("visual", "audio")``.

    visual: the 8×8 digit (pixels/16) plus fixed Gaussian noise, flattened to 64; audio: 20 MFCCs' mean and std
    over time (40 numbers) standardised with training statistics; test audio comes from 2 held-out voices.
    """

    train: dict[str, torch.Tensor]
    test: dict[str, torch.Tensor]
    y_train: torch.Tensor
    y_test: torch.Tensor
    image_noise: float

    @property
    def dims(self) -> dict[str, int]:
        return {m: x.shape[1] for m, x in self.train.items()}


@lru_cache(maxsize=8)
def load_imbalance_data(image_noise: float = 0.3, seed: int = 0) -> ImbalanceData:
    """The lesson's data: weak (noisy) images, dominant audio that generalises imperfectly (new voices).

    Cached: treat the returned tensors as read-only.
    """
    from .data import load_avdigits, standardize

    tr = load_avdigits("train", audio_format="mfcc_stats", image_noise=image_noise, seed=seed)
    te = load_avdigits("test", audio_format="mfcc_stats", image_noise=image_noise, seed=seed)
    a_tr, a_te = standardize(tr.audio, te.audio)
    return ImbalanceData(
        train={"visual": tr.image.flatten(1), "audio": a_tr},
        test={"visual": te.image.flatten(1), "audio": a_te},
        y_train=tr.label,
        y_test=te.label,
        image_noise=float(image_noise),
    )


@dataclass
class ImbalanceRun:
    """The outcome of :func:`train_imbalance`.

    ``test_acc``: accuracy of the fused logits on the test split (for ``"alone"``: of the single modality);
    ``half_train_acc[m]``: per epoch, training accuracy of modality m's share of the logits (``argmax out_m``);
    ``rho``: per step, ``s_audio / s_visual``; ``k[m]``: per step, the coefficient applied to m's gradients
    (OGM / OGM-GE), or the inverse-norm weight; ``model``: the trained ``MultimodalClassifier``;
    ``visual_probe``: linear-probe accuracy of the visual encoder, when computed (:func:`imbalance_experiment`).
    """

    method: str
    seed: int
    test_acc: float
    model: MultimodalClassifier
    half_train_acc: dict[str, list[float]] = field(default_factory=dict)
    rho: list[float] = field(default_factory=list)
    k: dict[str, list[float]] = field(default_factory=dict)
    visual_probe: float | None = None


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """``Linear(in→hidden)–ReLU–Linear(hidden→out)–ReLU`` on flat ``(B, in_dim)`` input (the lesson's encoder)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim), nn.ReLU())


def _make_optimizer(name: str, params, lr: float | None) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01 if lr is None else lr, momentum=0.9, weight_decay=1e-4)
    return torch.optim.Adam(params, lr=1e-3 if lr is None else lr, weight_decay=1e-4)


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
    modality: str = "visual",
    smooth: bool = False,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> ImbalanceRun:
    """Train encoders ``Linear(d→64)–ReLU–Linear(64→16)–ReLU`` per modality and a ``Linear(32→10)`` head.

    ``method``: ``"baseline"`` (joint cross-entropy), ``"ogm"`` / ``"ogm_ge"`` (gradients of the dominant
    encoder scaled by :func:`ogm_coefficients` each step, with GE noise for ``"ogm_ge"``), ``"aux"`` (plus a
    unimodal linear head and cross-entropy per modality), ``"inverse_norm"`` (the recipe's weights, applied),
    or ``"alone"`` (only ``modality``'s encoder and a linear head). ``optimizer``: ``"sgd"`` (lr 0.01,
    momentum 0.9, weight decay 1e-4) or ``"adam"`` (lr 1e-3); ``smooth`` picks the continuous OGM variant
    (see :func:`ogm_coefficients`). Full tensors, manual mini-batches (faster than a DataLoader for tiny MLPs).
    """
    check_choice("method", method, METHODS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("modality", modality, tuple(data.train))
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    device = torch.device(device) if device is not None else get_device()
    gen = seed_everything(seed)
    names = [modality] if method == "alone" else list(data.train)
    encoders = {m: _mlp(data.dims[m], 64, 16) for m in names}
    model = MultimodalClassifier(encoders, 10, fused_dim=16 * len(names)).to(device)
    aux = nn.ModuleDict({m: nn.Linear(16, 10) for m in names}).to(device) if method == "aux" else None
    params = list(model.parameters()) + (list(aux.parameters()) if aux is not None else [])
    opt = _make_optimizer(optimizer, params, lr)
    groups = {m: list(model.encoders[m].parameters()) for m in names}
    x_tr = [data.train[m].to(device) for m in names]
    y_tr = data.y_train.to(device)
    run = ImbalanceRun(method, seed, float("nan"), model, {m: [] for m in names}, [], {m: [] for m in names})
    n = len(y_tr)
    for _ in tqdm(range(epochs), desc=f"{method} seed {seed}", disable=not progress, leave=False):
        model.train()
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            idx = idx.to(device)
            feats = model.features(*[x[idx] for x in x_tr])
            logits = model.head(torch.cat(feats, -1))
            loss = F.cross_entropy(logits, y_tr[idx])
            if aux is not None:
                loss = loss + sum(F.cross_entropy(aux[m](h), y_tr[idx]) for m, h in zip(names, feats))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if len(names) == 2 and method != "aux":
                s = modality_scores(feats, model.head, y_tr[idx])
                run.rho.append(float(s[1] / s[0].clamp_min(1e-12)))
                if method in ("ogm", "ogm_ge"):
                    kv, ka = ogm_coefficients(s[0].clamp_min(1e-12), s[1].clamp_min(1e-12), alpha, smooth=smooth)
                    coeffs = dict(zip(names, (kv, ka)))
                    modulate_gradients(groups, coeffs, noise=method == "ogm_ge")
                elif method == "inverse_norm":
                    coeffs = inverse_norm_weights(gradient_norms(groups))
                    modulate_gradients(groups, coeffs)
                else:
                    coeffs = dict.fromkeys(names, 1.0)
                for m in names:
                    run.k[m].append(coeffs[m])
            opt.step()
        model.eval()
        with torch.no_grad():
            outs = modality_logits(model.features(*x_tr), model.head)
            for m, o in zip(names, outs):
                run.half_train_acc[m].append(float((o.argmax(-1) == y_tr).float().mean()))
    with torch.no_grad():
        pred = model(*[data.test[m].to(device) for m in names]).argmax(-1).cpu()
    run.test_acc = float((pred == data.y_test).float().mean())
    return run


@torch.no_grad()
def encode(model: MultimodalClassifier, modality: str, x: torch.Tensor) -> torch.Tensor:
    """The frozen features of ``modality``'s encoder for ``x``, on the CPU (eval mode)."""
    check_choice("modality", modality, model.modalities)
    enc = model.encoders[modality]
    was = enc.training
    enc.eval()
    dev = next(enc.parameters()).device
    out = enc(x.to(dev)).float().cpu()
    enc.train(was)
    return out


def linear_probe(
    train_features: torch.Tensor, y_train: torch.Tensor, test_features: torch.Tensor, y_test: torch.Tensor
) -> float:
    """Test accuracy of a linear probe: standardised multinomial logistic regression on frozen features.

    A probe asks what an encoder *has learned*, independently of the head it was trained with (Alain & Bengio,
    2016). Standardisation uses training statistics; L2 regularisation ``C = 1``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sizes: dict[str, int] = {}
    check_tensor("train_features", train_features, ("N", "D"), dtype="float", sizes=sizes)
    check_tensor("y_train", y_train, ("N",), dtype="int", sizes=sizes)
    check_tensor("test_features", test_features, ("M", "D"), dtype="float", sizes=sizes)
    check_tensor("y_test", y_test, ("M",), dtype="int", sizes=sizes)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(train_features.numpy(), y_train.numpy())
    return float(clf.score(test_features.numpy(), y_test.numpy()))


def probe_modality(run: ImbalanceRun, data: ImbalanceData, modality: str = "visual") -> float:
    """Linear-probe test accuracy of ``modality``'s encoder after ``run`` (see :func:`linear_probe`)."""
    return linear_probe(
        encode(run.model, modality, data.train[modality]),
        data.y_train,
        encode(run.model, modality, data.test[modality]),
        data.y_test,
    )


# ---------------------------------------------------------------------------------------------------------------
# Lesson 4's multi-task experiment: digit classification + ink regression from one shared trunk


@dataclass
class MultitaskData:
    """AV-Digits for two tasks from one shared trunk: ``x`` = [noisy image (64); audio MFCC stats (40)], targets
    ``y`` (digit, cross-entropy ≈ 2.3 at the start) and ``ink`` (total ink of the clean image in the data set's
    raw 0–16 pixel units, a few hundred; squared error ≈ 10⁵ at the start)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    ink_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    ink_test: torch.Tensor


@lru_cache(maxsize=2)
def load_multitask_data(image_noise: float = 0.3, seed: int = 0) -> MultitaskData:
    """The two-task data (cached: treat the tensors as read-only)."""
    from .data import load_avdigits

    d = load_imbalance_data(image_noise, seed)
    ink = [load_avdigits(s, audio_format="mfcc_stats", seed=seed).image.sum((1, 2, 3)) * 16 for s in ("train", "test")]
    return MultitaskData(
        d.train["visual"],
        d.y_train,
        ink[0],
        d.test["visual"],
        d.y_test,
        ink[1],
    )


@dataclass
class MultitaskRun:
    """The outcome of :func:`train_multitask`: test accuracy, test RMSE of the ink (raw units), and per epoch the
    task weights and the two raw training losses."""

    method: str
    seed: int
    test_acc: float
    test_rmse: float
    weights: list[list[float]] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)


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
    """Train a shared trunk ``104→64→32`` with a digit head and an ink head, balancing the two losses by
    ``method``: ``"fixed"`` (:func:`weighted_sum` with ``fixed_weights``), ``"uncertainty"``
    (:class:`UncertaintyWeighting`) or ``"gradnorm"`` (:class:`GradNorm` on the trunk's last weight).

    Adam at ``lr`` for the model and at ``weight_lr`` for the task weights. The ink loss is the mean squared
    error in raw units; nothing is normalised by hand, which is the point.
    """
    check_choice("method", method, BALANCERS)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    device = torch.device(device) if device is not None else get_device()
    gen = seed_everything(seed)
    trunk = _mlp(data.x_train.shape[1], 64, 32).to(device)
    heads = nn.ModuleList([nn.Linear(32, 10), nn.Linear(32, 1)])
    with torch.no_grad():  # start the ink head at the training mean: the loss then starts at the target's variance
        heads[1].bias.fill_(float(data.ink_train.mean()))
    heads.to(device)
    balancer: nn.Module | None = {
        "fixed": None,
        "uncertainty": UncertaintyWeighting(2),
        "gradnorm": GradNorm(2, gradnorm_alpha),
    }[method]
    groups = [{"params": list(trunk.parameters()) + list(heads.parameters()), "lr": lr}]
    if balancer is not None:
        balancer.to(device)
        groups.append({"params": list(balancer.parameters()), "lr": weight_lr})
    opt = torch.optim.Adam(groups)
    x, y, ink = data.x_train.to(device), data.y_train.to(device), data.ink_train.to(device)
    run = MultitaskRun(method, seed, float("nan"), float("nan"))
    for _ in tqdm(range(epochs), desc=f"{method} seed {seed}", disable=not progress, leave=False):
        sums, count = torch.zeros(2), 0
        for idx in torch.randperm(len(y), generator=gen).split(batch_size):
            idx = idx.to(device)
            h = trunk(x[idx])
            losses = torch.stack([F.cross_entropy(heads[0](h), y[idx]), F.mse_loss(heads[1](h).squeeze(-1), ink[idx])])
            opt.zero_grad(set_to_none=True)
            if isinstance(balancer, GradNorm):
                balancer.backward(losses, trunk[2].weight)
            elif isinstance(balancer, UncertaintyWeighting):
                balancer(losses).backward()
            else:
                weighted_sum(losses, fixed_weights).backward()
            opt.step()
            if isinstance(balancer, GradNorm):
                balancer.renormalize()
            sums += losses.detach().cpu() * len(idx)
            count += len(idx)
        w = balancer.weights.cpu().tolist() if balancer is not None else [float(v) for v in fixed_weights]
        run.weights.append(w)
        run.losses.append((sums / count).tolist())
    with torch.no_grad():
        h = trunk(data.x_test.to(device))
        run.test_acc = float((heads[0](h).argmax(-1).cpu() == data.y_test).float().mean())
        run.test_rmse = float((heads[1](h).squeeze(-1).cpu() - data.ink_test).pow(2).mean().sqrt())
    return run


# ---------------------------------------------------------------------------------------------------------------
# Cached runs, plots and the lesson's widget


@lru_cache(maxsize=256)
def _cached_imbalance(method, seed, alpha, optimizer, image_noise, epochs, smooth, progress) -> ImbalanceRun:
    data = load_imbalance_data(image_noise)
    run = train_imbalance(
        data, method, seed=seed, alpha=alpha, optimizer=optimizer, epochs=epochs, smooth=smooth, progress=progress
    )
    run.visual_probe = probe_modality(run, data, "visual")
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
    progress: bool = False,
) -> ImbalanceRun:
    """:func:`train_imbalance` on :func:`load_imbalance_data` ``(image_noise)``, plus the visual encoder's linear
    probe, memoised: the same arguments return the same (shared, read-only) run, so the widget reuses the
    lesson's runs instead of retraining."""
    check_choice("method", method, METHODS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if method not in ("ogm", "ogm_ge"):
        alpha, smooth = 1.0, False  # unused: one cache entry
    return _cached_imbalance(
        method, int(seed), float(alpha), optimizer, round(float(image_noise), 6), int(epochs), bool(smooth), progress
    )


def per_epoch(values: Sequence[float], epochs: int) -> np.ndarray:
    """Mean of per-step ``values`` within each of ``epochs`` equal chunks (steps per epoch are constant here)."""
    v = np.asarray(values, dtype=float)
    if epochs < 1 or len(v) % epochs:
        raise ValueError(f"values has {len(v)} steps, not a multiple of epochs={epochs}")
    return v.reshape(epochs, -1).mean(1)


def plot_rho_k(runs: Mapping[str, ImbalanceRun], *, axes=None, title: str = "") -> Figure:
    """Left: the score ratio ``ρ_t = s_audio / s_visual`` per step (faint) and per epoch (line) for each run;
    right: the factor applied to each encoder's gradients (OGM's k, or the inverse-norm weight), per step
    (faint) and per epoch (line; solid: audio, dashed: visual)."""
    from .viz import new_figure

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
        for m, ls in (("audio", "-"), ("visual", "--")):
            a2.plot(steps, run.k[m], color=color, alpha=0.15, lw=0.5, ls=ls)
            a2.plot(ep, per_epoch(run.k[m], epochs), color=color, ls=ls, label=f"{name}: {m}")
    a1.axhline(1, ls="--", lw=1, color="gray")
    a1.set(xlabel="epoch", ylabel="ρ = s_audio / s_visual (ratio)", title="who explains the labels better")
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
    trained with ``optimizer``. Shows ρ_t and k_t, and the visual encoder's probe accuracy (alone, joint,
    joint + OGM) beside the joint models' test accuracy. Runs are memoised (a new setting trains ≤ 3 small
    models, about a second each on a laptop CPU)."""
    from .viz import new_figure

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
    names = ["visual alone", "joint", "joint + OGM"]
    probes = [alone.visual_probe, base.visual_probe, ogm.visual_probe]
    x = np.arange(3)
    axes[2].bar(x - 0.2, probes, 0.4, label="visual probe", color="tab:blue")
    axes[2].bar(x[1:] + 0.2, [base.test_acc, ogm.test_acc], 0.4, label="joint test accuracy", color="tab:orange")
    for xi, v in zip(x - 0.2, probes):
        axes[2].annotate(f"{100 * v:.0f}", (xi, v), ha="center", va="bottom", fontsize=8)
    for xi, v in zip(x[1:] + 0.2, [base.test_acc, ogm.test_acc]):
        axes[2].annotate(f"{100 * v:.0f}", (xi, v), ha="center", va="bottom", fontsize=8)
    axes[2].set_xticks(x, names)
    axes[2].set(ylim=(0, 1.25), ylabel="test accuracy (fraction)", title="what the visual encoder learned")
    axes[2].legend(fontsize=8, loc="upper left", ncols=2)
    fig.suptitle(f"image noise σ = {image_noise:g}, {optimizer.upper()}, seed {seed}, {epochs} epochs")
    return fig
