"""Modality imbalance and loss balancing: gradient modulation (OGM-GE), linear probes, multi-task weighting.

When one modality fits the training labels faster than another, joint training lets it take over: the loss
falls, every encoder's gradient fades, and the slow modality's encoder stops learning ("modality laziness").
OGM-GE (Peng et al., *Balanced Multimodal Learning via On-the-fly Gradient Modulation*, CVPR 2022) measures
how much each modality's share of the fused logits already explains the labels and slows the dominant encoder
down; a linear probe of a frozen encoder (Alain & Bengio, 2016) shows what it learned. For several *tasks*
rather than modalities, uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018) and GradNorm (Chen et al.,
ICML 2018) balance losses of very different scales.

Every piece plugs into :func:`mmlab.train.fit`: scores and modulation go in an ``after_backward`` hook,
:meth:`GradNorm.objective` is a loss for ``compute_loss`` and :meth:`GradNorm.renormalize` an ``after_step``.
Lesson 4's experiments (data, trainers, cached runs, widget) live in :mod:`mmlab.lessons.imbalance`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice, check_tensor
from .models import MultimodalClassifier
from .train import predict

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
    "encode",
    "fit_linear_probe",
    "linear_probe",
]


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

    Use with any loop: ``loss = gn.objective(losses, shared_weight)`` as the loss to backpropagate (e.g. from
    :func:`mmlab.train.fit`'s ``compute_loss``), ``optimizer.step()`` (with ``gn.parameters()`` in it), then
    ``gn.renormalize()`` (``after_step``). ``gn.backward(losses, shared_weight)`` does the backward for you.
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

    def objective(self, losses: Sequence[torch.Tensor] | torch.Tensor, shared_weight: torch.Tensor) -> torch.Tensor:
        """GradNorm's two updates as one scalar to backpropagate: ``Σ_i w_i L_i + (L_grad - sg(L_grad))``.

        Its value is ``Σ_i w_i L_i``; its backward gives the model ``∂(Σ_i w_i L_i)/∂θ`` with the weights held
        constant, and the weights ``∂L_grad/∂w`` only (``L_grad`` reaches no model parameter: the per-task norms
        ``‖∇_W L_i‖`` and the target are constants). Call it with the losses' graph alive; the first call records
        ``L_i(0)``. Gradients accumulate like any loss's, so zero them before the backward.
        """
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
        grad_loss = (g - target).abs().sum()
        total = (self.task_weights.detach() * stacked).sum()
        return total + (grad_loss - grad_loss.detach())

    def backward(self, losses: Sequence[torch.Tensor] | torch.Tensor, shared_weight: torch.Tensor) -> torch.Tensor:
        """Backpropagate :meth:`objective`: ``Σ w_i L_i`` into the model and ``∂L_grad/∂w`` into the weights;
        returns the (detached) total ``Σ w_i L_i``."""
        total = self.objective(losses, shared_weight)
        total.backward()
        return total.detach()

    @torch.no_grad()
    def renormalize(self) -> None:
        """Clamp the weights positive and rescale them to sum to the number of tasks."""
        w = self.task_weights.clamp_min(1e-3)
        self.task_weights.copy_(w * len(w) / w.sum())


# ---------------------------------------------------------------------------------------------------------------
# Linear probes: what a frozen encoder has learned


def encode(model: MultimodalClassifier, modality: str, x: torch.Tensor) -> torch.Tensor:
    """The frozen features ``enc_m(x)`` of ``modality``'s encoder, without gradients, in eval mode, on the CPU
    (via :func:`mmlab.train.predict`; the encoder's previous mode is restored)."""
    if not isinstance(model, MultimodalClassifier):
        raise TypeError(f"model must be a MultimodalClassifier, got {type(model).__name__}")
    check_choice("modality", modality, model.modalities)
    check_tensor("x", x, dtype="float")
    return predict(model.encoders[modality], x)


def fit_linear_probe(train_features: torch.Tensor, y_train: torch.Tensor):
    """A linear probe fitted on frozen features: standardised multinomial logistic regression (L2, ``C = 1``).

    ``p(y | h) = softmax(W·(h - μ)/σ + b)`` with ``μ, σ`` from the training features (Alain & Bengio, 2016). Returns
    the fitted scikit-learn pipeline; score any split with ``probe.score(features.numpy(), labels.numpy())`` (one
    fit, several splits).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sizes: dict[str, int] = {}
    check_tensor("train_features", train_features, ("N", "D"), dtype="float", sizes=sizes)
    check_tensor("y_train", y_train, ("N",), dtype="int", sizes=sizes)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(train_features.numpy(), y_train.numpy())
    return clf


def linear_probe(
    train_features: torch.Tensor, y_train: torch.Tensor, test_features: torch.Tensor, y_test: torch.Tensor
) -> float:
    """Test accuracy of a linear probe: standardised multinomial logistic regression on frozen features.

    A probe asks what an encoder *has learned*, independently of the head it was trained with (Alain & Bengio,
    2016). Standardisation uses training statistics; L2 regularisation ``C = 1`` (:func:`fit_linear_probe`).
    """
    sizes: dict[str, int] = {}
    check_tensor("train_features", train_features, ("N", "D"), dtype="float", sizes=sizes)
    check_tensor("y_train", y_train, ("N",), dtype="int", sizes=sizes)
    check_tensor("test_features", test_features, ("M", "D"), dtype="float", sizes=sizes)
    check_tensor("y_test", y_test, ("M",), dtype="int", sizes=sizes)
    clf = fit_linear_probe(train_features, y_train)
    return float(clf.score(test_features.numpy(), y_test.numpy()))
