"""Missing modalities: simulate them, fill them, train for them, and measure robustness.

Convention used everywhere here: a **presence mask** ``present`` is a bool tensor of shape ``(batch, modalities)``;
``present[i, m]`` is True when sample ``i`` has modality ``m`` and False when it is missing. Every row keeps at
least one modality (a sample with nothing observed has nothing to classify).

The pieces, each from the literature:

* :func:`sample_presence` draws masks with a missing rate per modality; :func:`pattern_probabilities` gives the
  exact probability of every presence pattern, so expected accuracies need no sampling.
* :func:`fill_missing` (and :func:`zero_fill`, :func:`mean_fill`) put a chosen value where a modality is missing;
  :class:`MissingToken` learns that value per modality, like BERT's ``[MASK]`` embedding (Devlin et al. 2019).
* :class:`ModalityDropout` drops whole modalities during training, ModDrop (Neverova et al., IEEE TPAMI 2016),
  so that the model meets at training time the missingness it will meet at test time.
* :class:`CrossModalReconstructor` predicts a missing modality's embedding from the present ones with one
  residual autoencoder ``ẑ = z̃ + AE([z̃; p])``, trained against the model's own full-modality embeddings: a
  simplified version of MMIN's imagination module (Zhao, Li & Jin, ACL 2021), which cascades several residual
  autoencoders (Tran et al., CVPR 2017) and adds a cycle-consistency (backward imagination) loss — see the
  class docstring for every simplification.
* :class:`MissingModalityClassifier` puts encoders, a fill and a fusion head together; :func:`train_classifier`
  trains it with :func:`mmlab.train.fit` (under simulated missingness when it has a ModDrop layer);
  :func:`accuracy_by_pattern`, :func:`expected_accuracy` and :func:`robustness_auc` measure accuracy against the
  missing rate; :func:`missing_rates_figure` draws it for chosen per-modality rates (exact, no model needed).

Lesson 3's data recipe, experiment driver and figures live in :mod:`mmlab.lessons.missing`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from .checks import check_choice, check_fraction, check_tensor
from .models import mlp
from .runtime import resolve_device
from .stats import sample_std
from .train import History, fit, make_loader, predict
from .viz import new_figure

__all__ = [
    "FILLS",
    "check_rates",
    "check_presence",
    "sample_presence",
    "pattern_probabilities",
    "effective_rates",
    "fill_missing",
    "zero_fill",
    "mean_fill",
    "MissingToken",
    "ModalityDropout",
    "CrossModalReconstructor",
    "reconstruction_loss",
    "MissingModalityClassifier",
    "train_classifier",
    "accuracy_by_pattern",
    "expected_accuracy",
    "missing_rate_curve",
    "robustness_auc",
    "evaluate_with_missing",
    "missing_rates_figure",
]

FILLS = ("zero", "mean", "token", "reconstruct")
"""How :class:`MissingModalityClassifier` replaces a missing embedding (see its docstring)."""


# ----------------------------------------------------------------------------------------------- presence masks


def check_rates(rates: Sequence[float], num_modalities: int | None = None, name: str = "rates") -> list[float]:
    """Check a sequence of per-modality missing rates in [0, 1], not all 1, and return it as a list."""
    if isinstance(rates, (str, bytes)) or not isinstance(rates, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a sequence of floats (one missing rate per modality), got {rates!r}")
    out = [check_fraction(f"{name}[{m}]", r) for m, r in enumerate(list(rates))]
    if not out:
        raise ValueError(f"{name} must have one rate per modality, got an empty sequence")
    if num_modalities is not None and len(out) != num_modalities:
        raise ValueError(f"{name} must have {num_modalities} rates (one per modality), got {len(out)}")
    if all(r == 1.0 for r in out):
        raise ValueError(f"{name} are all 1: every modality would always be missing, got {out}")
    return out


def check_presence(
    present: object, batch_size: int | None = None, num_modalities: int | None = None, name: str = "present"
) -> torch.Tensor:
    """Check a presence mask: a bool tensor ``(batch, modalities)`` (True = present) with no all-missing row."""
    check_tensor(name, present, ("B" if batch_size is None else batch_size, num_modalities), dtype="bool")
    if present.numel() and not bool(present.any(1).all()):
        row = int((~present.any(1)).nonzero()[0, 0])
        raise ValueError(f"{name} row {row} has every modality missing; each sample needs at least one present")
    return present


def sample_presence(
    batch_size: int,
    rates: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw a presence mask ``(batch_size, M)`` (True = present) with missing rate ``rates[m]`` per modality.

    Each modality is dropped independently with probability ``r_m``; a row that lost every modality gets one
    back, modality ``m`` with probability ``(1 - r_m) / Σ_k (1 - r_k)``. The realised missing rate is therefore
    ``r_m - Π_k r_k · (1 - r_m) / Σ_k (1 - r_k)`` (see :func:`effective_rates`): exactly ``r_m`` whenever some
    other modality is never missing. Random numbers come from ``generator`` on the CPU (the same masks on every
    device); the mask is then moved to ``device``.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
        raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
    r = torch.tensor(check_rates(rates), dtype=torch.float64)
    keep = torch.rand(batch_size, len(r), generator=generator, dtype=torch.float64) >= r
    empty = ~keep.any(1)
    n_empty = int(empty.sum())
    if n_empty:
        weights = (1 - r).expand(n_empty, -1)
        back = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        keep[empty] = F.one_hot(back, len(r)).bool()
    return keep.to(device) if device is not None else keep


def pattern_probabilities(rates: Sequence[float]) -> dict[tuple[bool, ...], float]:
    """Exact probability of each presence pattern under :func:`sample_presence` (the patterns sum to 1).

    ``P(s) = Π_m [s_m (1 - r_m) + (1 - s_m) r_m]``, plus, for a pattern with the single modality ``m`` present,
    the share ``Π_k r_k · (1 - r_m) / Σ_k (1 - r_k)`` of the rows that would have lost everything.
    """
    r = check_rates(rates)
    total_keep = sum(1 - x for x in r)
    p_empty = math.prod(r)
    probs = {}
    for pattern in itertools.product((True, False), repeat=len(r)):
        if not any(pattern):
            continue
        p = math.prod((1 - x) if s else x for s, x in zip(pattern, r))
        if sum(pattern) == 1:
            p += p_empty * (1 - r[pattern.index(True)]) / total_keep
        probs[pattern] = p
    return probs


def effective_rates(rates: Sequence[float]) -> list[float]:
    """The missing rate of each modality that :func:`sample_presence` realises: ``r_m - Π_k r_k·(1-r_m)/Σ_k(1-r_k)``."""
    probs = pattern_probabilities(rates)
    return [sum(p for s, p in probs.items() if not s[m]) for m in range(len(rates))]


# ------------------------------------------------------------------------------------------------------ fills


def _check_input_dims(input_dims: Sequence[int]) -> list[int]:
    """Embedding sizes, one positive int per modality, in modality order."""
    if isinstance(input_dims, (str, bytes)) or not isinstance(input_dims, Sequence):
        raise TypeError(f"input_dims must be a sequence of ints (one embedding size per modality), got {input_dims!r}")
    if not input_dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in input_dims):
        raise ValueError(f"input_dims must be positive embedding sizes, one per modality, got {list(input_dims)}")
    return [int(d) for d in input_dims]


def fill_missing(x: torch.Tensor, present: torch.Tensor, value: float | torch.Tensor) -> torch.Tensor:
    """``x`` where ``present`` is True, ``value`` where it is False: ``out_i = p_i·x_i + (1 - p_i)·v``.

    ``x`` is one modality's batch ``(B, *F)``, ``present`` its column of the presence mask ``(B,)``, ``value``
    a number or a tensor of shape ``F`` (exactly; nothing else broadcasts). Gradients reach ``value`` when it
    is a parameter (a learned token) and never flow into ``x`` at missing positions.
    """
    check_tensor("x", x, None, dtype="float")
    if x.dim() < 1:
        raise ValueError(f"x must have shape (B, *F), got {tuple(x.shape)}")
    check_tensor("present", present, (x.shape[0],), dtype="bool")
    if isinstance(value, torch.Tensor):
        check_tensor("value", value, tuple(x.shape[1:]), dtype="float")
        value = value.to(dtype=x.dtype, device=x.device)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value}")
        value = torch.full(x.shape[1:], float(value), dtype=x.dtype, device=x.device)
    else:
        raise TypeError(f"value must be a number or a tensor of shape {tuple(x.shape[1:])}, got {type(value).__name__}")
    keep = present.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(keep, x, value.unsqueeze(0))


def zero_fill(x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Zero-fill: ``0`` where the modality is missing (what most code does without saying so)."""
    return fill_missing(x, present, 0.0)


def mean_fill(x: torch.Tensor, present: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Mean-fill (mean imputation): the training-set mean ``mean`` (shape ``F``) where the modality is missing."""
    return fill_missing(x, present, mean)


class MissingToken(nn.Module):
    """One learned vector ``t_m`` per modality that replaces a missing embedding: ``z̃_m = p·z_m + (1-p)·t_m``.

    The learned stand-in of BERT's ``[MASK]`` embedding (Devlin et al. 2019), per modality. Initialised small
    (normal, std 0.02); trained with the rest of the model under simulated missingness.
    """

    def __init__(self, input_dims: Sequence[int]):
        super().__init__()
        self.input_dims = _check_input_dims(input_dims)
        self.tokens = nn.ParameterList([nn.Parameter(0.02 * torch.randn(d)) for d in self.input_dims])

    def forward(self, features: Sequence[torch.Tensor], present: torch.Tensor) -> list[torch.Tensor]:
        if len(features) != len(self.input_dims):
            raise ValueError(
                f"features must hold {len(self.input_dims)} tensors (one per modality), got {len(features)}"
            )
        check_presence(present, features[0].shape[0], len(self.input_dims))
        return [fill_missing(z, present[:, m], t) for m, (z, t) in enumerate(zip(features, self.tokens))]


class ModalityDropout(nn.Module):
    """ModDrop (Neverova et al., TPAMI 2016): in training, drop whole modalities with rates ``rates``.

    ``forward(present)`` returns ``present & sampled`` in training mode, where ``sampled`` comes from
    :func:`sample_presence`; a row that this would empty keeps its original mask. In eval mode it returns
    ``present`` unchanged, like ``nn.Dropout``. Unlike ``nn.Dropout`` nothing is rescaled: a missing modality
    is replaced by a fill, not by a scaled copy.
    """

    def __init__(self, rates: Sequence[float], generator: torch.Generator | None = None):
        super().__init__()
        self.rates = check_rates(rates)
        self.generator = generator

    def forward(self, present: torch.Tensor) -> torch.Tensor:
        check_presence(present, None, len(self.rates))
        if not self.training or not any(self.rates):
            return present
        sampled = sample_presence(present.shape[0], self.rates, generator=self.generator, device=present.device)
        out = present & sampled
        empty = ~out.any(1, keepdim=True)
        return torch.where(empty, present, out)

    def extra_repr(self) -> str:
        return f"rates={self.rates}"


class CrossModalReconstructor(nn.Module):
    """Predict missing embeddings from the present ones with one residual autoencoder (a simplified version of
    MMIN's imagination module).

    With ``z̃`` the zero-filled embeddings concatenated and ``p`` the presence mask,
    ``ẑ = z̃ + Dec(Enc([z̃; p]))``, ``Enc`` = Linear–ReLU–Linear–ReLU to a ``bottleneck``-d code, ``Dec`` =
    Linear–ReLU–Linear back to ``Σ d_m``; present embeddings are kept as they are, missing ones replaced by their
    part of ``ẑ``. Train it with :func:`reconstruction_loss` against the full-modality embeddings.

    What MMIN (Zhao, Li & Jin, ACL 2021) does and this does not: a *cascade* of residual autoencoders (CRA,
    Tran et al., CVPR 2017) rather than one; a *backward* imagination that maps the imagined embeddings back to
    the present ones, with a cycle-consistency loss; targets from modality encoders *pretrained* on full data
    (here the target is the jointly trained model's own embedding, detached); the classifier reads the
    autoencoders' latent codes (here it reads the completed embeddings); training on every missing pattern of
    three modalities (here ModDrop draws the patterns of two). What remains is MMIN's core idea: imagine a
    missing modality's embedding from the present ones, supervised by the embedding it would have had.
    """

    def __init__(self, input_dims: Sequence[int], hidden: int = 64, bottleneck: int = 32):
        super().__init__()
        self.input_dims = _check_input_dims(input_dims)
        total = sum(self.input_dims)
        self.encoder = mlp(total + len(self.input_dims), hidden, bottleneck, final_activation=True)
        self.decoder = mlp(bottleneck, hidden, total)

    def forward(self, features: Sequence[torch.Tensor], present: torch.Tensor) -> list[torch.Tensor]:
        if len(features) != len(self.input_dims):
            raise ValueError(
                f"features must hold {len(self.input_dims)} tensors (one per modality), got {len(features)}"
            )
        sizes: dict[str, int] = {}
        for m, (z, d) in enumerate(zip(features, self.input_dims)):
            check_tensor(f"features[{m}]", z, ("B", d), dtype="float", sizes=sizes)
        check_presence(present, features[0].shape[0], len(self.input_dims))
        filled = torch.cat([zero_fill(z, present[:, m]) for m, z in enumerate(features)], dim=1)
        guess = filled + self.decoder(self.encoder(torch.cat([filled, present.to(filled.dtype)], dim=1)))
        parts = guess.split(self.input_dims, dim=1)
        return [torch.where(present[:, m, None], z, parts[m]) for m, z in enumerate(features)]


def reconstruction_loss(
    reconstructed: Sequence[torch.Tensor], target: Sequence[torch.Tensor], present: torch.Tensor
) -> torch.Tensor:
    """Mean squared error over the *missing* embeddings only: ``Σ_{i,m: p_im=0} ‖ẑ_im - z_im‖² / (n_missing·d)``.

    ``target`` holds the full-modality embeddings (detached here: the encoders are not pulled toward easy
    targets). Zero when nothing is missing.
    """
    if len(reconstructed) != len(target):
        raise ValueError(
            f"reconstructed and target must hold as many tensors, got {len(reconstructed)} and {len(target)}"
        )
    check_presence(present, reconstructed[0].shape[0], len(target))
    total = reconstructed[0].new_zeros(())
    count = 0
    for m, (zh, z) in enumerate(zip(reconstructed, target)):
        check_tensor(f"reconstructed[{m}]", zh, tuple(z.shape), dtype="float")
        miss = ~present[:, m]
        total = total + ((zh[miss] - z[miss].detach()) ** 2).sum()
        count += int(miss.sum()) * z.shape[1]
    return total / max(count, 1)


# ------------------------------------------------------------------------------------------------- the model


class MissingModalityClassifier(nn.Module):
    """Encoders, a fill for missing embeddings, concatenation and a head: ``head([z̃_1; ...; z̃_M])``.

    ``z_m = enc_m(x_m)``; where modality ``m`` is missing, ``z̃_m`` is set by ``fill``: ``"zero"`` (0),
    ``"mean"`` (the training-set mean embedding, see :meth:`set_fill_mean`), ``"token"`` (a learned
    :class:`MissingToken`) or ``"reconstruct"`` (a :class:`CrossModalReconstructor` predicts it from the present
    embeddings). Missing inputs are still passed in (any values: they never reach the output).
    ``train_rates`` adds a :class:`ModalityDropout` layer: in training mode whole modalities are dropped at those
    rates (ModDrop); in eval mode nothing is dropped. ``hidden`` makes the head an MLP instead of a linear layer.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        num_classes: int,
        *,
        fill: str = "zero",
        train_rates: Sequence[float] | None = None,
        hidden: int | None = None,
    ):
        super().__init__()
        if len(encoders) < 1:
            raise ValueError("encoders must name at least one modality")
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.embedding_dims = [int(e.out_dim) for e in encoders.values()]
        self.fill = check_choice("fill", fill, FILLS)
        self.dropout = ModalityDropout(train_rates) if train_rates is not None else None
        if self.dropout is not None and len(self.dropout.rates) != len(self.embedding_dims):
            raise ValueError(
                f"train_rates must have {len(self.embedding_dims)} rates (one per modality), got {train_rates}"
            )
        self.token = MissingToken(self.embedding_dims) if fill == "token" else None
        self.reconstructor = CrossModalReconstructor(self.embedding_dims) if fill == "reconstruct" else None
        self.register_buffer("fill_mean", torch.zeros(sum(self.embedding_dims)))
        self.register_buffer("fill_mean_set", torch.tensor(False))
        total = sum(self.embedding_dims)
        self.head = nn.Linear(total, num_classes) if hidden is None else mlp(total, hidden, num_classes)

    def embed(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """One embedding ``(B, d_m)`` per modality, in the order of ``encoders``."""
        if len(inputs) != len(self.modalities):
            raise ValueError(
                f"expected {len(self.modalities)} inputs ({', '.join(self.modalities)}), got {len(inputs)}"
            )
        return [self.encoders[m](x) for m, x in zip(self.modalities, inputs)]

    def complete(self, features: Sequence[torch.Tensor], present: torch.Tensor) -> list[torch.Tensor]:
        """Replace the missing embeddings according to ``self.fill``; present ones pass through unchanged."""
        fill = check_choice("fill", self.fill, FILLS)
        if fill == "zero":
            return [zero_fill(z, present[:, m]) for m, z in enumerate(features)]
        if fill == "mean":
            if not bool(self.fill_mean_set):
                raise RuntimeError("fill='mean' needs the training mean: call set_fill_mean(*train_inputs) first")
            means = self.fill_mean.split(self.embedding_dims)
            return [mean_fill(z, present[:, m], mu) for m, (z, mu) in enumerate(zip(features, means))]
        module = self.token if fill == "token" else self.reconstructor
        if module is None:
            raise RuntimeError(f"fill={fill!r} needs a model built with fill={fill!r} (its module was not created)")
        return module(features, present)

    def forward_details(
        self, *inputs: torch.Tensor, present: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """``(logits, embeddings, completed embeddings, presence mask used)``; the mask includes ModDrop's drops."""
        features = self.embed(*inputs)
        batch = features[0].shape[0]
        if present is None:
            present = torch.ones(batch, len(features), dtype=torch.bool, device=features[0].device)
        check_presence(present, batch, len(features))
        if self.dropout is not None:
            present = self.dropout(present)
        completed = self.complete(features, present)
        return self.head(torch.cat(completed, dim=1)), features, completed, present

    def forward(self, *inputs: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, classes)``; ``present`` ``(B, M)`` bool, True = present (default: all present)."""
        return self.forward_details(*inputs, present=present)[0]

    @torch.no_grad()
    def set_fill_mean(self, *inputs: torch.Tensor, batch_size: int = 1024) -> None:
        """Store each modality's mean embedding over ``inputs`` (the training set) for ``fill="mean"``:
        ``z̄_m = (1/N) Σ_i enc_m(x_im)``, computed in eval mode (the previous mode is restored)."""
        if len(inputs) != len(self.modalities):
            raise ValueError(
                f"expected {len(self.modalities)} inputs ({', '.join(self.modalities)}), got {len(inputs)}"
            )
        feats = predict(self, inputs, batch_size=batch_size, fn=lambda *xb: torch.cat(self.embed(*xb), dim=1))
        self.fill_mean.copy_(feats.mean(0).to(self.fill_mean))
        self.fill_mean_set.fill_(True)


def _check_inputs(inputs: Sequence[torch.Tensor], labels: torch.Tensor) -> int:
    if not inputs:
        raise ValueError("inputs must hold one tensor per modality, got none")
    check_tensor("labels", labels, ("N",), dtype="int")
    for m, x in enumerate(inputs):
        check_tensor(f"inputs[{m}]", x, None, dtype="float")
        if x.shape[0] != labels.shape[0]:
            raise ValueError(f"inputs[{m}] must have {labels.shape[0]} rows like labels, got shape {tuple(x.shape)}")
    return labels.shape[0]


def train_classifier(
    model: MissingModalityClassifier,
    inputs: Sequence[torch.Tensor],
    labels: torch.Tensor,
    *,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 128,
    recon_weight: float = 1.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    amp: bool = False,
    progress: bool = True,
    desc: str = "train",
    after_epoch: Callable[[nn.Module, int], Mapping[str, float] | None] | None = None,
) -> History:
    """Train ``model`` with Adam on in-memory tensors through :func:`mmlab.train.fit`; return its History.

    The loss is ``L = CE(logits, y) + recon_weight · reconstruction_loss`` (the second term only for
    ``fill="reconstruct"``, MMIN, Zhao et al. 2021). Missingness is simulated by the model's own ModDrop layer
    (``train_rates``, Neverova et al. 2016), so a model built without it trains on complete data. History rows
    per epoch: ``train_loss`` (``L``), ``ce`` and ``recon`` (0 without reconstruction). Batches are shuffled by
    :func:`mmlab.train.make_loader` with its own generator seeded with ``seed``; the model's initialisation and
    ModDrop draw from the global RNG, so seed them (``mmlab.seed_everything`` before building, or build and
    train inside ``with mmlab.runtime.seeded(seed):``). ``amp`` is off by default: these small models train in
    float32 on every device. ``after_epoch(model, epoch)`` goes to :func:`mmlab.train.fit` (e.g. to score a
    validation split and keep the best epoch); what it returns is logged in that epoch's row. The model is left
    in eval mode.
    """
    _check_inputs(inputs, labels)
    if not isinstance(model, MissingModalityClassifier):
        raise TypeError(f"model must be a MissingModalityClassifier, got {type(model).__name__}")
    if len(inputs) != len(model.modalities):
        raise ValueError(
            f"inputs must hold {len(model.modalities)} tensors ({', '.join(model.modalities)}), got {len(inputs)}"
        )
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not (isinstance(recon_weight, (int, float)) and math.isfinite(recon_weight) and recon_weight >= 0):
        raise ValueError(f"recon_weight must be a finite number >= 0, got {recon_weight!r}")
    device = resolve_device(device)
    model.to(device)
    loader = make_loader(
        *(x.to(device) for x in inputs), labels.to(device), batch_size=batch_size, shuffle=True, seed=seed
    )

    def compute_loss(model: MissingModalityClassifier, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        *xb, yb = batch
        logits, feats, completed, present = model.forward_details(*xb)
        ce = F.cross_entropy(logits, yb)
        if model.fill != "reconstruct":
            return {"loss": ce, "ce": ce, "recon": 0.0}
        recon = reconstruction_loss(completed, feats, present)
        return {"loss": ce + recon_weight * recon, "ce": ce, "recon": recon}

    history = fit(
        model,
        loader,
        epochs=epochs,
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        compute_loss=compute_loss,
        after_epoch=after_epoch,
        device=device,
        amp=amp,
        progress=progress,
        desc=desc,
    )
    model.eval()
    return history


# -------------------------------------------------------------------------------------------------- evaluation


def _predict_labels(
    model: nn.Module, inputs: Sequence[torch.Tensor], present: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Arg-max class of ``model(*inputs, present=present)`` per row, in eval mode, on the CPU."""
    logits = predict(model, [*inputs, present], batch_size=batch_size, fn=lambda *xb: model(*xb[:-1], present=xb[-1]))
    return logits.argmax(-1)


def accuracy_by_pattern(
    model: nn.Module, inputs: Sequence[torch.Tensor], labels: torch.Tensor, *, batch_size: int = 4096
) -> dict[tuple[bool, ...], float]:
    """Accuracy on ``inputs`` for every presence pattern (all ``2^M - 1`` with at least one modality present).

    Each sample is classified independently (eval mode), so these numbers determine the expected accuracy at
    any missing rates exactly (:func:`expected_accuracy`). The patterns are stacked into one pass (rows
    ``n·P``, in batches of ``batch_size``) rather than one pass per pattern.
    """
    n = _check_inputs(inputs, labels)
    patterns = [p for p in itertools.product((True, False), repeat=len(inputs)) if any(p)]
    present = torch.tensor(patterns).repeat_interleave(n, dim=0)
    stacked = [x.repeat(len(patterns), *([1] * (x.dim() - 1))) for x in inputs]
    correct = (_predict_labels(model, stacked, present, batch_size) == labels.cpu().repeat(len(patterns))).float()
    return {p: c.mean().item() for p, c in zip(patterns, correct.view(len(patterns), n))}


def evaluate_with_missing(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    labels: torch.Tensor,
    rates: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    batch_size: int = 1024,
) -> float:
    """Accuracy with a presence mask drawn by :func:`sample_presence` at ``rates`` (one random draw)."""
    n = _check_inputs(inputs, labels)
    present = sample_presence(n, check_rates(rates, len(inputs)), generator=generator)
    return (_predict_labels(model, inputs, present, batch_size) == labels.cpu()).float().mean().item()


def expected_accuracy(pattern_acc: Mapping[tuple[bool, ...], float], rates: Sequence[float]) -> float:
    """``E[acc] = Σ_s P(s | rates) · acc(s)`` over presence patterns ``s`` (:func:`pattern_probabilities`)."""
    probs = pattern_probabilities(rates)
    missing = [s for s in probs if s not in pattern_acc]
    if missing:
        raise ValueError(f"pattern_acc lacks patterns {missing} for {len(rates)} modalities")
    return float(sum(p * pattern_acc[s] for s, p in probs.items()))


def missing_rate_curve(
    pattern_acc: Mapping[tuple[bool, ...], float], modality: int, rates: Sequence[float]
) -> np.ndarray:
    """Expected accuracy when modality ``modality`` is missing at each rate in ``rates``, all others present.

    Samples are independent, so this is the straight line ``(1 - r)·acc(all) + r·acc(without m)``.
    """
    m = len(next(iter(pattern_acc)))
    if not 0 <= modality < m:
        raise ValueError(f"modality must be in [0, {m}), got {modality}")
    return np.array([expected_accuracy(pattern_acc, [r if k == modality else 0.0 for k in range(m)]) for r in rates])


def robustness_auc(rates: Sequence[float], accuracies: Sequence[float]) -> float:
    """Area under the accuracy-vs-missing-rate curve, divided by the span of ``rates`` (trapezoid rule).

    ``AUC = (1 / (r_max - r_min)) ∫ acc(r) dr``: the mean accuracy over missing rates, in [0, 1]; 1 = perfect
    whatever goes missing. ``rates`` must be increasing, with at least two points.

    On a straight line — which is what :func:`missing_rate_curve` gives, since samples are classified
    independently — the trapezoid rule is exact, so over rates 0 to 1 the AUC is just the mean of the end
    points, ``(acc(all) + acc(without m)) / 2``, whatever grid of rates is used: it adds no information beyond
    the two pattern accuracies. It becomes a summary of its own only for curves that are not straight (e.g.
    accuracy measured under sampled masks, or with missingness that depends on the sample).
    """
    r = np.asarray(rates, dtype=np.float64)
    a = np.asarray(accuracies, dtype=np.float64)
    if r.ndim != 1 or r.shape != a.shape or len(r) < 2:
        raise ValueError(f"rates and accuracies must be 1-D of the same length >= 2, got {r.shape} and {a.shape}")
    if not np.all(np.diff(r) > 0):
        raise ValueError(f"rates must be strictly increasing, got {r.tolist()}")
    return float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(r)) / (r[-1] - r[0]))


def missing_rates_figure(
    pattern_accs: Mapping[str, Sequence[Mapping[tuple[bool, ...], float]]],
    rates: Sequence[float],
    modalities: Sequence[str],
    *,
    title: str | None = None,
) -> Figure:
    """Expected test accuracy of each method at per-modality missing ``rates``: bars, mean ± std over seeds.

    ``pattern_accs`` maps a method's name to one :func:`accuracy_by_pattern` result per seed; the expected
    accuracy is :func:`expected_accuracy`, ``Σ_s P(s | rates)·acc(s)`` (exact, no sampling), so redrawing needs
    no model. Error bars: the sample std over seeds (ddof=1; 0 for a single seed). Rates that are all 1 (nothing
    left to classify) give a figure that says so. ``title``, when given, heads the title's lines about the rates.
    """
    if len(rates) != len(modalities):
        raise ValueError(f"rates must have one rate per modality ({len(modalities)}), got {len(rates)}")
    fig, ax = new_figure(size=(7.0, 0.45 * len(pattern_accs) + 1.6 + 0.2 * bool(title)))
    ax.set_xlim(0, 1)
    ax.set_xlabel("expected test accuracy (fraction)")
    head = f"{title}\n" if title else ""
    if all(float(r) == 1.0 for r in rates):
        ax.set_title(f"{head}every modality missing: nothing to classify")
        ax.set_yticks([])
        return fig
    rates = check_rates(rates, len(modalities))
    names = list(pattern_accs)
    acc = {k: np.array([expected_accuracy(p, rates) for p in pattern_accs[k]]) for k in names}
    y = np.arange(len(names))
    means = [acc[k].mean() for k in names]
    spread = [float(np.nan_to_num(sample_std(acc[k]))) for k in names]
    ax.barh(y, means, xerr=spread, capsize=3, color="tab:blue", alpha=0.85)
    for i, v in enumerate(means):
        ax.annotate(f"{100 * v:.1f}%", (0.01, i), va="center", color="white", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_ylabel("method")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    asked = ", ".join(f"{m} {100 * r:.0f}%" for m, r in zip(modalities, rates))
    real = ", ".join(f"{m} {100 * r:.0f}%" for m, r in zip(modalities, effective_rates(rates)))
    ax.set_title(
        f"{head}test-time missing rates set: {asked}\nrealised (no sample loses every modality): {real}", fontsize=10
    )
    return fig
