"""Exercises: check a learner's function against the package's reference and say what is wrong, specifically.

Every lesson's exercise cell defines a function (its starter body raises ``NotImplementedError``); the next cell
calls ``check_<name>(fn)``, which runs ``fn`` on a few tiny, seeded cases chosen to catch the usual mistakes and
prints one line:

* the stub still raises ``NotImplementedError`` → a friendly "not attempted yet" line (never an exception, so a
  notebook with untouched exercises runs top to bottom);
* ``fn`` raises anything else → a fail naming the exception and the case it was called on;
* a wrong value → what was tried, what was expected, what came back, and a hint; when the output equals a known
  wrong variant (ddof = 0, a forgotten ``T²``, a hard instead of a soft minimum, a missing mask, the wrong axis,
  ...) the message names that mistake;
* all cases right → a pass line.

Each checker returns an :class:`ExerciseResult` and never raises, whatever ``fn`` returns. Cases run on the CPU,
with their own ``torch.Generator``; the caller's global random state (torch and numpy) is left as it was found.
References are the package's own functions (``mmlab.stats``, ``align``, ``fusion``, ``missing``, ``balance``,
``deploy``, ``quality``, ``contrastive``), imported when a checker runs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "STATUSES",
    "ExerciseResult",
    "check_std_over_seeds",
    "check_soft_min",
    "check_soft_dtw",
    "check_low_rank_fusion",
    "check_tensor_fusion",
    "check_presence_mask",
    "check_token_fill",
    "check_ogm_coefficients",
    "check_gradient_modulation",
    "check_distillation_loss",
    "check_pruning",
    "check_small_loss_scores",
    "check_keep_cleanest",
    "check_clip_loss",
    "check_recall_at_k",
    "check_local_clip_loss",
    "check_condition_accuracy",
]

STATUSES = ("not attempted", "pass", "fail")


# --------------------------------------------------------------------------------------------------------------
# The framework


@dataclass(frozen=True)
class ExerciseResult:
    """The outcome of one check: ``name`` of the exercise, ``status`` (one of :data:`STATUSES`) and the
    ``message`` that was printed. In a notebook it displays nothing more (the message is already printed)."""

    name: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def _ipython_display_(self) -> None:  # the checker printed the message already: show it once, not twice
        return None


class _NotAttempted(Exception):
    pass


class _Fail(Exception):
    pass


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _call(fn: Callable, case: str, *args, **kwargs):
    """``fn(*args, **kwargs)``; NotImplementedError means "not attempted", any other exception is the learner's."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotAttempted from None
    except Exception as e:  # noqa: BLE001 - the learner's code may raise anything
        raise _Fail(f"on {case}, your function raised {type(e).__name__}: {_short(e)}") from None


def _run(name: str, body: Callable[[], str]) -> ExerciseResult:
    """Run one checker body; print and return its result. Global RNG state (torch CPU, numpy) is restored."""
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
            try:
                detail = body()
                result = ExerciseResult(name, "pass", f"✅ {name}: correct — {detail}")
            except _NotAttempted:
                result = ExerciseResult(
                    name,
                    "not attempted",
                    f"✏️ {name}: not attempted yet — replace `raise NotImplementedError` with your code and run "
                    "this cell again (the solution is in the hidden cell below).",
                )
            except _Fail as e:
                result = ExerciseResult(name, "fail", f"❌ {name}: {e}")
            except Exception as e:  # noqa: BLE001 - an output so odd that comparing it failed
                result = ExerciseResult(
                    name,
                    "fail",
                    f"❌ {name}: could not compare your output with the reference ({type(e).__name__}: {_short(e)}). "
                    "Hint: check that it returns what the docstring says (type, shape, dtype).",
                )
    finally:
        np.random.set_state(np_state)
    print(result.message)
    return result


def _fmt(x: object, digits: int = 4) -> str:
    """A short, readable rendering of a number, array or tensor (at most 6 values)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bool:
            x = x.int()
        x = x.numpy()
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return _fmt(x.item(), digits)
        flat = x.reshape(-1)
        if flat.dtype.kind == "f":
            vals = [np.format_float_positional(v, digits, trim="-", fractional=False) for v in flat[:6]]
        else:
            vals = [str(v) for v in flat[:6]]
        more = ", …" if flat.size > 6 else ""
        body = ", ".join(vals) + more
        return f"[{body}]" if x.ndim == 1 else f"{list(x.shape)}-array [{body}]"
    if isinstance(x, float):
        return np.format_float_positional(x, digits, trim="-", fractional=False)
    return _short(repr(x), 80)


def _to_tensor(out: object, case: str, what: str) -> torch.Tensor:
    """The learner's output as a detached CPU tensor, or a fail that says what it was."""
    if isinstance(out, torch.Tensor):
        return out.detach().cpu()
    if isinstance(out, (np.ndarray, np.generic, float, int)) and not isinstance(out, bool):
        return torch.as_tensor(np.asarray(out))
    raise _Fail(f"on {case}, expected {what}, got {type(out).__name__} ({_fmt(out)}). Hint: did you forget `return`?")


def _to_float(out: object, case: str) -> float:
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise _Fail(f"on {case}, expected a single number, got a tensor of shape {tuple(out.shape)}.")
        return float(out.detach().cpu().reshape(()))
    if isinstance(out, (float, int, np.floating, np.integer)) and not isinstance(out, bool):
        return float(out)
    if isinstance(out, np.ndarray) and out.size == 1:
        return float(out.reshape(()))
    raise _Fail(f"on {case}, expected a number, got {type(out).__name__} ({_fmt(out)}). Hint: did you `return`?")


def _same(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if tuple(a.shape) != tuple(b.shape):
        return False
    a64, b64 = a.double(), b.double()
    return bool(torch.allclose(a64, b64, rtol=rtol, atol=atol, equal_nan=True))


Variants = Sequence[tuple[torch.Tensor | float, str]]


def _compare(
    got: torch.Tensor | float,
    expected: torch.Tensor | float,
    case: str,
    hint: str,
    variants: Variants = (),
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> None:
    """Fail unless ``got`` equals ``expected``; name the first known wrong variant ``got`` equals."""
    g = torch.as_tensor(got).detach().cpu()
    e = torch.as_tensor(expected).detach().cpu()
    if _same(g, e, rtol, atol):
        return
    diagnosis = next((msg for v, msg in variants if _same(g, torch.as_tensor(v).detach().cpu(), rtol, atol)), None)
    if tuple(g.shape) != tuple(e.shape):
        said = f"on {case}, expected shape {tuple(e.shape)}, got shape {tuple(g.shape)}."
    else:
        said = f"on {case}, expected {_fmt(e)}, got {_fmt(g)}."
        if g.is_floating_point() and not torch.isfinite(g).all() and torch.isfinite(e).all():
            diagnosis = diagnosis or (
                "Your output has inf or NaN where the answer is finite: something overflowed or underflowed "
                "(exp of a large number, or log of 0)."
            )
    raise _Fail(f"{said} {diagnosis + ' ' if diagnosis else ''}Hint: {hint}")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shape_of(out: object) -> str:
    shape = getattr(out, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else type(out).__name__


# --------------------------------------------------------------------------------------------------------------
# Lesson 0: a spread over seeds


def check_std_over_seeds(fn: Callable[[np.ndarray], np.ndarray]) -> ExerciseResult:
    """Check ``fn(acc) -> std`` for ``acc`` (n_seeds, n_setups): the sample standard deviation over seeds,

    ``s_j = sqrt(Σ_i (a_ij − ā_j)² / (n − 1))`` (ddof = 1, Bessel's correction), one value per setup (column).
    Reference: :func:`mmlab.stats.sample_std`. Catches ddof = 0, the variance without its square root, the wrong
    axis, and one spread over all values. (Bessel's correction: e.g. Efron & Tibshirani 1993, *An Introduction
    to the Bootstrap*, ch. 2; Bouthillier et al. 2021 on reporting variance over seeds.)
    """
    from .stats import sample_std

    def body() -> str:
        cases = [
            ("a 3 seeds × 3 setups table", np.array([[0.61, 0.42, 0.80], [0.66, 0.40, 0.86], [0.58, 0.47, 0.83]])),
            ("a 5 seeds × 2 setups table", np.array([[0.9, 0.1], [0.7, 0.3], [0.8, 0.2], [0.95, 0.15], [0.6, 0.5]])),
        ]
        for label, acc in cases:
            case = f"{label} {_fmt(acc)}"
            out = _call(fn, case, acc.copy())
            if out is None:
                raise _Fail(f"on {case}, your function returned None. Hint: did you forget `return`?")
            try:
                got = np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out, dtype=float)
            except (TypeError, ValueError):
                raise _Fail(f"on {case}, expected an array of numbers, got {type(out).__name__}.") from None
            variants = [
                (acc.std(axis=0, ddof=0), "That is the population std (ddof = 0), which divides by n."),
                (acc.var(axis=0, ddof=1), "That is the variance: you forgot the square root."),
                (
                    acc.var(axis=0, ddof=0),
                    "That is the variance with ddof = 0: no square root, and n instead of n − 1.",
                ),
                (acc.std(axis=1, ddof=1), "Wrong axis: you took the spread of each seed's row (axis=1)."),
                (acc.std(axis=1, ddof=0), "Wrong axis (axis=1) and ddof = 0."),
                (np.asarray(acc.std(ddof=1)), "That is one spread over all values: reduce over the seeds only."),
            ]
            _compare(
                torch.as_tensor(got),
                torch.as_tensor(np.asarray(sample_std(acc, axis=0))),
                case,
                "one value per setup (column), computed over the seeds (axis 0), dividing by n − 1 (ddof=1).",
                [(torch.as_tensor(v), m) for v, m in variants],
                rtol=1e-6,
                atol=1e-9,
            )
        return "sample std over seeds (ddof = 1), one per setup, on 2 tables."

    return _run("std_over_seeds", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 1: soft-min and the soft-DTW recursion


def _ref_soft_min(a: torch.Tensor, gamma: float) -> torch.Tensor:
    """``min_γ(a) = −γ log Σ_k exp(−a_k/γ)`` over the last axis, stable (logsumexp shifts by the extreme)."""
    return -gamma * torch.logsumexp(-a / gamma, dim=-1)


def check_soft_min(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(a, gamma)``: the soft minimum over the last axis, ``min_γ(a) = −γ log Σ_k exp(−a_k / γ)``.

    The smooth minimum of soft-DTW (Cuturi & Blondel, "Soft-DTW: a Differentiable Loss Function for
    Time-Series", ICML 2017). Catches the hard minimum, the wrong sign (a soft *max*), a missing or half-applied
    γ, the wrong axis, a result that is not differentiable, and the overflow of ``exp`` without the log-sum-exp
    shift (values near 1000 with γ = 0.01).
    """

    def variants(a: torch.Tensor, g: float) -> Variants:
        with torch.no_grad():
            naive = -g * torch.log(torch.exp(-a / g).sum(-1))
            return [
                (a.min(-1).values, "That is the hard minimum: the soft-min weighs every entry, −γ·log Σ exp(−a/γ)."),
                (g * torch.logsumexp(a / g, -1), "That is a soft *maximum*: both signs are flipped."),
                (g * torch.logsumexp(-a / g, -1), "Wrong sign in front: the soft-min is −γ·logsumexp(−a/γ)."),
                (-torch.logsumexp(-a, -1), "γ is missing: divide the values by γ inside and multiply by γ outside."),
                (-g * torch.logsumexp(-a, -1), "γ is only applied outside: divide the values by γ inside as well."),
                (-torch.logsumexp(-a / g, -1), "γ is only applied inside: multiply the log-sum-exp by γ as well."),
                (-g * torch.logsumexp(-a / g, 0), "Wrong axis: reduce over the last axis (dim=-1), not dim=0."),
                (
                    naive,
                    "exp(−a/γ) overflowed or underflowed: subtract the minimum before exp, or use torch.logsumexp.",
                ),
            ]

    def body() -> str:
        gen = _gen(0)
        a1 = (torch.rand(2, 3, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
        cases = [
            ("values " + _fmt(a1) + ", γ = 0.5", a1, 0.5),
            (
                "values [1000, 1000.5, 1001], γ = 0.01",
                torch.tensor([[1000.0, 1000.5, 1001.0]], dtype=torch.float64),
                0.01,
            ),
            (
                "values [-1000, -999.9, -999], γ = 0.01",
                torch.tensor([[-1000.0, -999.9, -999.0]], dtype=torch.float64),
                0.01,
            ),
            ("a (2, 2, 4) tensor, γ = 2", torch.rand(2, 2, 4, generator=gen, dtype=torch.float64) * 5, 2.0),
        ]
        hint = "min_γ(a) = −γ·log Σ_k exp(−a_k/γ) over the last axis; torch.logsumexp(−a/γ, dim=-1) is stable."
        for i, (case, a, g) in enumerate(cases):
            out = _call(fn, case, a, g)
            got = _to_tensor(out, case, "a tensor")
            _compare(got, _ref_soft_min(a.detach(), g), case, hint, variants(a.detach(), g))
            if i == 0:
                if not (isinstance(out, torch.Tensor) and out.requires_grad):
                    raise _Fail(
                        f"on {case}, the value is right but carries no gradient. Hint: stay in torch (no numpy, "
                        "no .item(), no .detach()): soft-DTW exists to be differentiated."
                    )
                (grad,) = torch.autograd.grad(out.sum(), a)
                _compare(grad, torch.softmax(-a.detach() / g, -1), f"the gradient on {case}", hint)
        return "matches −γ·logsumexp(−a/γ) on 4 cases, including γ = 0.01 on values near ±1000, and differentiates."

    return _run("soft_min", body)


def _sdtw_loops(
    cost: torch.Tensor,
    gamma: float,
    *,
    hard: bool = False,
    border: float = math.inf,
    moves: tuple[str, ...] = ("diag", "up", "left"),
    last: bool = True,
) -> float:
    """The (soft-)DTW table by two loops, with switches that reproduce typical mistakes (for diagnosis)."""
    c = cost.detach().double().numpy()
    n, m = c.shape
    r = np.full((n + 1, m + 1), border)
    r[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            prev = {"diag": r[i - 1, j - 1], "up": r[i - 1, j], "left": r[i, j - 1]}
            opts = np.array([prev[k] for k in moves])
            if hard:
                best = opts.min()
            else:
                lo = opts.min()
                best = lo if not np.isfinite(lo) else lo - gamma * np.log(np.exp(-(opts - lo) / gamma).sum())
            r[i, j] = c[i - 1, j - 1] + best
    return float(r[n, m] if last else r[n - 1, m - 1])


def check_soft_dtw(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(cost, gamma)``: soft-DTW's value by its recursion on a cost matrix ``C`` (N, M),

    ``R[i, j] = C[i−1, j−1] + min_γ(R[i−1, j−1], R[i−1, j], R[i, j−1])`` for ``1 ≤ i ≤ N``, ``1 ≤ j ≤ M``, with
    ``R[0, 0] = 0``, ``R[i, 0] = R[0, j] = ∞``, returning ``R[N, M]`` (Cuturi & Blondel, ICML 2017; DTW: Sakoe &
    Chiba 1978). Reference: :func:`mmlab.align.soft_dtw`. Catches the hard minimum (plain DTW), zero borders (a
    path may start anywhere), returning ``R[N−1, M−1]``, and a missing predecessor (diagonal, up or left).
    """
    from .align import soft_dtw

    def body() -> str:
        gen = _gen(1)
        cases = [
            (
                "a 4×4 cost matrix, γ = 0.5",
                torch.rand(4, 4, generator=gen, dtype=torch.float64) + 2 * torch.eye(4),
                0.5,
            ),
            ("a 4×5 cost matrix, γ = 0.5", torch.rand(4, 5, generator=gen, dtype=torch.float64), 0.5),
            ("a 3×1 cost matrix, γ = 1", torch.rand(3, 1, generator=gen, dtype=torch.float64), 1.0),
            ("a 5×3 cost matrix, γ = 0.1", torch.rand(5, 3, generator=gen, dtype=torch.float64) * 2, 0.1),
            ("a 1×1 cost matrix, γ = 1", torch.tensor([[0.7]], dtype=torch.float64), 1.0),
        ]
        hint = (
            "table R of size (N+1)×(M+1), R[0,0] = 0, the rest of row 0 and column 0 = ∞; "
            "R[i,j] = C[i−1,j−1] + softmin_γ(R[i−1,j−1], R[i−1,j], R[i,j−1]); return R[N,M]."
        )
        slips = [
            (dict(hard=True), "That is plain DTW: use the soft minimum, not min()."),
            (dict(border=0.0), "Borders at 0: row 0 and column 0 (except R[0,0]) must be ∞."),
            (dict(last=False), "Off by one: the answer is R[N, M] of the (N+1)×(M+1) table."),
            (dict(moves=("up", "left")), "The diagonal predecessor R[i−1, j−1] is missing."),
            (dict(moves=("diag", "left")), "The predecessor R[i−1, j] (one step up) is missing."),
            (dict(moves=("diag", "up")), "The predecessor R[i, j−1] (one step left) is missing."),
        ]
        # run every case first: a slip is named only if it explains all of them (on a square matrix a missing
        # "up" and a missing "left" both leave the diagonal path alone)
        got = [_to_float(_call(fn, case, c.clone(), g), case) for case, c, g in cases]
        refs = [float(soft_dtw(c, g)) for _, c, g in cases]
        slip_values = [[_sdtw_loops(c, g, **kw) for _, c, g in cases] for kw, _ in slips]

        def close(x: float, y: float) -> bool:
            return _same(torch.tensor(x), torch.tensor(y), 1e-5, 1e-7)

        explains_all = [j for j, vals in enumerate(slip_values) if all(close(x, y) for x, y in zip(got, vals))]
        order = explains_all + [j for j in range(len(slips)) if j not in explains_all]
        for i, (case, _, _) in enumerate(cases):
            variants = [(slip_values[j][i], slips[j][1]) for j in order]
            _compare(got[i], refs[i], case, hint, variants, rtol=1e-5, atol=1e-7)
        return "matches mmlab.align.soft_dtw on 5 cost matrices (4×4, 4×5, 3×1, 5×3, 1×1)."

    return _run("soft_dtw", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 2: fusion


def _with_one(z: torch.Tensor, first: bool = False) -> torch.Tensor:
    ones = z.new_ones(z.shape[0], 1)
    return torch.cat([ones, z] if first else [z, ones], dim=-1)


def _lmf_reference(features: Sequence[torch.Tensor], factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """:class:`mmlab.fusion.LowRankFusion` loaded with ``factors`` (R, d_m + 1, out) each, applied to ``features``."""
    from .fusion import LowRankFusion

    dims = [int(z.shape[1]) for z in features]
    rank, _, out = factors[0].shape
    module = LowRankFusion(dims, int(out), int(rank)).double()
    with torch.no_grad():
        for m, (f, d) in enumerate(zip(factors, dims)):
            module.factor_weights[m].copy_(f[:, :d, :].permute(1, 0, 2).reshape(d, rank * out))
            module.factor_biases[m].copy_(f[:, d, :].reshape(rank * out))
        return module(*features)


def check_low_rank_fusion(fn: Callable[[list[torch.Tensor], list[torch.Tensor]], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(features, factors)``: low-rank multimodal fusion (LMF; Liu et al., "Efficient Low-rank
    Multimodal Fusion with Modality-Specific Factors", ACL 2018),

    ``h = Σ_{r=1..R} ⊙_m ([z_m; 1] · W_m^(r))`` with ``features[m]`` (B, d_m) and ``factors[m]`` (R, d_m + 1, out):
    ``factors[m][r]`` is ``W_m^(r)``, its last row multiplies the appended 1. Reference:
    :class:`mmlab.fusion.LowRankFusion`. Catches the forgotten (or prepended) 1, summing over the rank before the
    product over modalities, a sum instead of a product over modalities, a mean over the rank, and the wrong axis.
    """

    def variants(zs: list[torch.Tensor], fs: list[torch.Tensor]) -> Variants:
        def terms(first: bool = False, one: bool = True) -> list[torch.Tensor]:  # each (R, B, out)
            return [
                torch.einsum("bi,rio->rbo", _with_one(z, first) if one else z, f if one else f[:, : z.shape[1]])
                for z, f in zip(zs, fs)
            ]

        def prod(ts: list[torch.Tensor]) -> torch.Tensor:
            out = ts[0]
            for t in ts[1:]:
                out = out * t
            return out

        t = terms()
        return [
            (prod(terms(one=False)).sum(0), "The appended 1 is missing: use [z_m; 1] (its row is the factor's last)."),
            (prod(terms(first=True)).sum(0), "The 1 is prepended: append it, [z_m; 1], so it meets the last row."),
            (
                prod([x.sum(0) for x in t]),
                "You summed over the rank before multiplying the modalities: ⊙_m first, Σ_r last.",
            ),
            (
                sum(t).sum(0),
                "You added the modalities' terms: LMF multiplies them elementwise (⊙_m), then sums over r.",
            ),
            (prod(t).mean(0), "You averaged over the rank: LMF sums over r."),
            (prod(t).sum(-1).T, "Wrong axis: you summed over the output units instead of the rank."),
        ]

    def body() -> str:
        gen = _gen(2)
        setups = [
            ("2 modalities (d = 3, 4), rank 2, out 5, batch 6", (3, 4), 2, 5, 6),
            ("3 modalities (d = 2, 3, 2), rank 3, out 4, batch 3", (2, 3, 2), 3, 4, 3),
        ]
        hint = "for each r: a_m = [z_m; 1] @ factors[m][r] (B, out); multiply the a_m over m; sum over r."
        for case, dims, rank, out_dim, b in setups:
            zs = [torch.randn(b, d, generator=gen, dtype=torch.float64) for d in dims]
            fs = [torch.randn(rank, d + 1, out_dim, generator=gen, dtype=torch.float64) for d in dims]
            got = _to_tensor(
                _call(fn, case, [z.clone() for z in zs], [f.clone() for f in fs]), case, "a (B, out) tensor"
            )
            _compare(got, _lmf_reference(zs, fs), case, hint, variants(zs, fs))
        return "matches mmlab.fusion.LowRankFusion with 2 and 3 modalities."

    return _run("low_rank_fusion", body)


def check_tensor_fusion(fn: Callable[[list[torch.Tensor]], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(features)``: tensor fusion's fused vector (TFN; Zadeh et al., "Tensor Fusion Network for
    Multimodal Sentiment Analysis", EMNLP 2017),

    ``vec([z_1; 1] ⊗ [z_2; 1] ⊗ … ⊗ [z_M; 1])`` per sample: (B, Π_m (d_m + 1)), flattened row-major (the last
    modality's index fastest), the layout of ``TensorFusion.weight``. Reference:
    :meth:`mmlab.fusion.TensorFusion.fused_tensor`. Catches the missing or prepended 1, the other flattening order,
    an unflattened tensor, and concatenation instead of the outer product.
    """
    from .fusion import TensorFusion

    def outer(zs: list[torch.Tensor], first: bool = False, one: bool = True, flat: bool = True) -> torch.Tensor:
        t = _with_one(zs[0], first) if one else zs[0]
        for z in zs[1:]:
            t = t.unsqueeze(-1) * (_with_one(z, first) if one else z).view(z.shape[0], *([1] * (t.dim() - 1)), -1)
        return t.flatten(1) if flat else t

    def body() -> str:
        gen = _gen(3)
        setups = [
            ("2 modalities (d = 2, 3), batch 4", (2, 3), 4),
            ("3 modalities (d = 1, 2, 2), batch 2", (1, 2, 2), 2),
        ]
        hint = (
            "append a 1 to each z_m, take the outer product per sample, flatten to (B, Π(d_m + 1)), last index fastest."
        )
        for case, dims, b in setups:
            zs = [torch.randn(b, d, generator=gen, dtype=torch.float64) for d in dims]
            got = _to_tensor(_call(fn, case, [z.clone() for z in zs]), case, "a (B, Π(d_m+1)) tensor")
            ref = TensorFusion(list(dims), 1).fused_tensor(*zs)
            variants = [
                (
                    outer(zs, one=False),
                    "The appended 1 is missing: without it the unimodal terms and the constant vanish.",
                ),
                (outer(zs, first=True), "The 1 is prepended: append it ([z; 1]), so the layout matches TFN's weight."),
                (outer(zs[::-1]), "Right values, other order: flatten with the *last* modality's index fastest."),
                (outer(zs, flat=False), "Not flattened: return (B, Π(d_m + 1)), e.g. with .flatten(1)."),
                (torch.cat([_with_one(z) for z in zs], 1), "That is a concatenation, not an outer product."),
            ]
            _compare(got, ref, case, hint, variants)
        return "matches TensorFusion.fused_tensor with 2 and 3 modalities."

    return _run("tensor_fusion", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 3: missing modalities


def check_presence_mask(fn: Callable[[int, Sequence[float], torch.Generator], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(batch_size, rates, generator)``: a presence mask (B, M), bool, True = present, for modality
    dropout (ModDrop; Neverova et al., "ModDrop: adaptive multi-modal gesture recognition", IEEE TPAMI 2016).

    Each modality is dropped independently with probability ``rates[m]``; a row that lost every modality gets
    one back (chosen with probability ∝ ``1 − r_m``, as :func:`mmlab.missing.sample_presence` does, or by
    redrawing the row). Checked on many draws: no row is empty, the missing rate of each modality is within 0.015
    of :func:`mmlab.missing.effective_rates` (or of a redraw's rates), drops are independent across samples and
    modalities, and the same generator seed gives the same mask. Catches rows with nothing left, one mask for the
    whole batch, one random number shared by a row's modalities, rates used as keep probabilities, and ignoring
    the generator.
    """
    from .missing import effective_rates

    def draw(case: str, b: int, rates: tuple[float, ...], seed: int) -> torch.Tensor:
        out = _call(fn, case, b, list(rates), _gen(seed))
        if not isinstance(out, torch.Tensor):
            raise _Fail(f"on {case}, expected a bool tensor (B, M), got {type(out).__name__}. Hint: return the mask.")
        if out.dtype != torch.bool:
            raise _Fail(f"on {case}, expected dtype torch.bool, got {out.dtype}. Hint: compare, e.g. `u >= rate`.")
        if tuple(out.shape) != (b, len(rates)):
            raise _Fail(f"on {case}, expected shape {(b, len(rates))}, got {tuple(out.shape)}.")
        return out.detach().cpu()

    def body() -> str:
        n = 20000
        case = "batch 6, rates (0, 0, 0)"
        if not bool(draw(case, 6, (0.0, 0.0, 0.0), 0).all()):
            raise _Fail(
                f"on {case}, some modality was dropped though every rate is 0: you keep modality m with probability "
                "rates[m], i.e. drop it with 1 − rates[m]. Hint: rates are *missing* rates, present = (u >= rate)."
            )
        rates = (0.5, 0.0, 0.2)
        case = f"batch {n}, rates {rates}"
        m1 = draw(case, n, rates, 1)
        if not torch.equal(m1, draw(case, n, rates, 1)):
            raise _Fail(
                f"on {case}, two calls with identically seeded generators gave different masks. Hint: draw every "
                "random number from `generator` (torch.rand(..., generator=generator))."
            )
        if (m1 == m1[0]).all():
            raise _Fail(f"on {case}, every sample got the same mask. Hint: draw one number per sample and modality.")
        miss = (~m1).double().mean(0)
        want = torch.tensor(rates, dtype=torch.float64)
        if torch.allclose(miss, 1 - want, atol=0.015):
            raise _Fail(
                f"on {case}, the missing rates are {_fmt(miss, 3)}, i.e. 1 − rates: you keep a modality with "
                "probability rates[m]. Hint: rates are missing rates, present = (u >= rate)."
            )
        if not torch.allclose(miss, want, atol=0.015):
            raise _Fail(
                f"on {case}, expected missing rates ≈ {_fmt(want, 3)} (no row can be empty here, so nothing is given "
                f"back), got {_fmt(miss, 3)}. Hint: drop modality m with probability rates[m], independently."
            )
        both = float(((~m1[:, 0]) & (~m1[:, 2])).double().mean())
        if abs(both - 0.5 * 0.2) > 0.015:
            raise _Fail(
                f"on {case}, modalities 0 and 2 were both missing in {100 * both:.1f}% of samples, expected "
                f"≈ {100 * 0.5 * 0.2:.0f}% for independent drops. Hint: one random number per sample *and* modality, "
                "not one per sample shared by its modalities."
            )
        rates = (0.3, 0.6)
        case = f"batch {n}, rates {rates}"
        m2 = draw(case, n, rates, 2)
        empty = ~m2.any(1)
        if empty.any():
            raise _Fail(
                f"on {case}, {int(empty.sum())} rows have every modality missing "
                f"(e.g. row {int(empty.nonzero()[0, 0])}). "
                "Hint: a sample needs at least one modality — give one back to rows that lost all (or redraw them)."
            )
        miss = (~m2).double().mean(0)
        give_back = torch.tensor(effective_rates(list(rates)), dtype=torch.float64)
        r = torch.tensor(rates, dtype=torch.float64)
        redraw = r * (1 - r.flip(0)) / (1 - r.prod())
        if not (torch.allclose(miss, give_back, atol=0.015) or torch.allclose(miss, redraw, atol=0.015)):
            raise _Fail(
                f"on {case}, missing rates {_fmt(miss, 3)}; expected ≈ {_fmt(give_back, 3)} when a modality is given "
                f"back with probability ∝ 1 − r_m (or ≈ {_fmt(redraw, 3)} when empty rows are redrawn). Hint: do not "
                "always give back the same modality."
            )
        return f"no empty rows, missing rates within 0.015 over {n} draws, independent drops, reproducible."

    return _run("presence_mask", body)


def check_token_fill(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(z, present, token)``: fill one modality's missing embeddings with a learned token,

    ``out_i = z_i`` where ``present_i``, else ``t``: ``z`` (B, d), ``present`` (B,) bool, ``token`` (d,) (a
    learned ``[MASK]``-like vector; Devlin et al., BERT, NAACL 2019). Reference: :func:`mmlab.missing.fill_missing`.
    Also checked: gradients reach the token from missing rows only, none reach ``z`` at missing rows, and ``z``
    is not modified in place. Catches an inverted mask, overwriting every row, adding instead of replacing,
    zeros instead of the token, and a mask broadcast along the feature axis instead of per sample.
    """
    from .missing import fill_missing

    def body() -> str:
        gen = _gen(4)
        hint = "torch.where(present[:, None], z, token) — present has one entry per sample, the token one per feature."
        setups = [
            ("z (4, 4), present [T, F, T, F]", 4, 4, [True, False, True, False]),
            ("z (3, 5), present [F, T, T]", 3, 5, [False, True, True]),
            ("z (2, 3), present [T, T]", 2, 3, [True, True]),
        ]
        for case, b, d, pres in setups:
            z = torch.randn(b, d, generator=gen, dtype=torch.float64).requires_grad_(True)
            token = torch.randn(d, generator=gen, dtype=torch.float64).requires_grad_(True)
            present = torch.tensor(pres)
            before = z.detach().clone()
            out = _call(fn, case, z, present.clone(), token)
            got = _to_tensor(out, case, "a (B, d) tensor")
            if not torch.equal(z.detach(), before):
                raise _Fail(f"on {case}, your function changed z in place. Hint: build a new tensor (torch.where).")
            zd, td, p = z.detach(), token.detach(), present
            pm = p[:, None]
            variants = [
                (torch.where(pm, td.expand(b, d), zd), "The mask is inverted: the token went to the *present* rows."),
                (td.expand(b, d), "Every row became the token: only rows with present = False are replaced."),
                (torch.where(pm, zd, zd + td), "You added the token to missing rows: replace them instead."),
                (torch.where(pm, zd, torch.zeros_like(zd)), "Missing rows are zero: that is zero-fill, use the token."),
            ]
            if b == d:
                variants.append(
                    (torch.where(p, zd, td), "The mask was broadcast along the features: use present[:, None].")
                )
            _compare(got, fill_missing(zd, p, td), case, hint, variants)
            w = torch.arange(1.0, b * d + 1, dtype=torch.float64).view(b, d)
            if not (isinstance(out, torch.Tensor) and out.requires_grad):
                raise _Fail(f"on {case}, the output carries no gradient. Hint: no .detach(), .data or torch.no_grad().")
            gz, gt = torch.autograd.grad((out * w).sum(), [z, token], allow_unused=True)
            want_t = (w * (~pm).double()).sum(0)
            if gt is None or not torch.allclose(gt, want_t):
                raise _Fail(
                    f"on {case}, the token's gradient is {_fmt(gt) if gt is not None else 'missing'}, expected "
                    f"{_fmt(want_t)} (the missing rows' upstream gradients). Hint: use the token itself, not .data."
                )
            if gz is not None and not torch.allclose(gz * (~pm).double(), torch.zeros_like(gz)):
                raise _Fail(
                    f"on {case}, gradient reaches z at missing rows. Hint: replace those rows, do not mix them."
                )
        return "replaces exactly the missing rows with the token, and the token learns from them."

    return _run("token_fill", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 4: OGM-GE


def check_ogm_coefficients(fn: Callable[[float, float, float], tuple[float, float]]) -> ExerciseResult:
    """Check ``fn(score_a, score_b, alpha) -> (k_a, k_b)``: OGM's modulation coefficients (Peng et al.,
    "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022, eq. 10).

    With ``ρ = s_a / s_b``: if ρ > 1, ``k_a = 1 − tanh(α·ρ)`` and ``k_b = 1``; if ρ < 1, ``k_b = 1 − tanh(α/ρ)``
    and ``k_a = 1``; equal scores give ``(1, 1)``. Reference: :func:`mmlab.balance.ogm_coefficients` (the
    paper's formula; ``smooth=True`` there is the continuous ``1 − tanh(α·(ρ − 1))`` variant). Catches both
    modalities modulated, the weaker one modulated instead of the leader, ρ inverted, no ``tanh``, the ``ρ − 1``
    variant, ``1 − tanh(α(ρ − 1))`` without the relu (k > 1 for the weaker one), and modulation at equal scores.
    """
    from .balance import ogm_coefficients

    def wrong(sa: float, sb: float, alpha: float) -> Variants:
        rho_a, rho_b = sa / sb, sb / sa
        ka, kb = 1 - math.tanh(alpha * rho_a), 1 - math.tanh(alpha * rho_b)
        lead_a = sa > sb
        k_lead = ka if lead_a else kb

        def pair(k_first: float, k_second: float) -> torch.Tensor:
            return torch.tensor([k_first, k_second], dtype=torch.float64)

        def lead(k: float) -> torch.Tensor:
            return pair(k, 1.0) if lead_a else pair(1.0, k)

        rho = max(rho_a, rho_b)
        if sa == sb:
            return [
                (
                    pair(1 - math.tanh(alpha), 1.0),
                    "Equal scores: ρ = 1, nobody leads, so k = (1, 1) (use ρ > 1, not ≥).",
                ),
                (
                    pair(1.0, 1 - math.tanh(alpha)),
                    "Equal scores: ρ = 1, nobody leads, so k = (1, 1) (use ρ < 1, not ≤).",
                ),
                (pair(ka, kb), "Both modalities are modulated: with equal scores nobody leads, k = (1, 1)."),
            ]
        return [
            (pair(ka, kb), "Both modalities are modulated: only the leader (ρ > 1) gets k < 1; the other keeps 1."),
            (
                pair(1.0, k_lead) if lead_a else pair(k_lead, 1.0),
                "You slowed the *weaker* modality: k < 1 goes to the leader.",
            ),
            (lead(1 - math.tanh(alpha / rho)), "ρ is inverted: the leader's ratio is s_leader / s_other > 1."),
            (lead(1 - alpha * rho), "tanh is missing: k = 1 − tanh(α·ρ) stays in (0, 1]."),
            (
                lead(1 - math.tanh(alpha * (rho - 1))),
                "That is the smooth variant 1 − tanh(α·(ρ − 1)); the paper uses 1 − tanh(α·ρ).",
            ),
            (
                pair(1 - math.tanh(alpha * (rho_a - 1)), 1 - math.tanh(alpha * (rho_b - 1))),
                "tanh without the relu: the weaker modality got k > 1. Only the leader is modulated.",
            ),
        ]

    def body() -> str:
        cases = [(3.0, 1.5, 0.5), (1.0, 4.0, 0.3), (2.0, 2.0, 0.5), (1.2, 1.0, 2.0)]
        hint = "ρ = s_a/s_b; the modality with ρ > 1 (its own ratio) gets 1 − tanh(α·ρ), the other 1; ties (1, 1)."
        for sa, sb, alpha in cases:
            case = f"score_a = {sa}, score_b = {sb}, α = {alpha}"
            out = _call(fn, case, sa, sb, alpha)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise _Fail(f"on {case}, expected a pair (k_a, k_b), got {type(out).__name__} ({_fmt(out)}).")
            got = torch.tensor([_to_float(out[0], case), _to_float(out[1], case)], dtype=torch.float64)
            ref = torch.tensor(ogm_coefficients(sa, sb, alpha), dtype=torch.float64)
            _compare(got, ref, case, hint, wrong(sa, sb, alpha), rtol=1e-6, atol=1e-9)
        case = "scores as 0-d tensors (3.0, 1.5), α = 0.5"
        out = _call(fn, case, torch.tensor(3.0), torch.tensor(1.5), 0.5)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Fail(f"on {case}, expected a pair (k_a, k_b), got {type(out).__name__}.")
        got = torch.tensor([_to_float(out[0], case), _to_float(out[1], case)], dtype=torch.float64)
        _compare(got, torch.tensor(ogm_coefficients(3.0, 1.5, 0.5), dtype=torch.float64), case, hint, rtol=1e-5)
        return "matches mmlab.balance.ogm_coefficients: leader a, leader b, a tie, and tensor scores."

    return _run("ogm_coefficients", body)


def _grad_setup(seed: int) -> tuple[nn.Linear, nn.Parameter, dict[str, torch.Tensor]]:
    gen = _gen(seed)
    layer = nn.Linear(6, 4).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(4, 6, generator=gen, dtype=torch.float64))
        layer.bias.copy_(torch.randn(4, generator=gen, dtype=torch.float64))
    layer.weight.grad = 0.1 * torch.randn(4, 6, generator=gen, dtype=torch.float64)
    layer.bias.grad = 0.1 * torch.randn(4, generator=gen, dtype=torch.float64)
    unused = nn.Parameter(torch.randn(3, generator=gen, dtype=torch.float64))  # no gradient: must be skipped
    snapshot = {"weight": layer.weight.detach().clone(), "bias": layer.bias.detach().clone()}
    return layer, unused, snapshot


def check_gradient_modulation(fn: Callable[..., None]) -> ExerciseResult:
    """Check ``fn(params, k, noise=False)``: OGM-GE's modulation step on one encoder, in place, between
    ``loss.backward()`` and ``optimizer.step()`` (Peng et al., CVPR 2022):

    ``g ← k·g`` for every parameter with a gradient, and with ``noise=True`` also ``g ← k·g + ε``,
    ``ε ~ N(0, std(g)²)`` with each tensor's own gradient std measured *before* scaling (generalisation
    enhancement). Reference: :func:`mmlab.balance.modulate_gradients`. Catches scaling by ``1 − k`` or ``1/k``,
    scaling the parameters instead of their gradients, not working in place, skipping biases (the official code
    touches only 4-D conv weights), failing on a parameter without a gradient, and noise with the wrong std
    (measured after scaling, of the parameters, or a fixed 1).
    """
    from .balance import modulate_gradients

    def body() -> str:
        k = 0.3
        layer, unused, snap = _grad_setup(5)
        g0 = {"weight": layer.weight.grad.clone(), "bias": layer.bias.grad.clone()}
        ref = [nn.Parameter(p.detach().clone()) for p in (layer.weight, layer.bias)]
        for rp, name in zip(ref, ("weight", "bias")):
            rp.grad = g0[name].clone()
        modulate_gradients({"m": ref}, {"m": k})
        case = "a Linear(6, 4) with gradients plus one parameter without a gradient, k = 0.3"
        _call(fn, case, [layer.weight, layer.bias, unused], k)
        if not torch.equal(layer.weight.detach(), snap["weight"]) or not torch.equal(layer.bias.detach(), snap["bias"]):
            raise _Fail(f"on {case}, the parameters changed. Hint: scale p.grad, never p itself (the optimizer steps).")
        if unused.grad is not None:
            raise _Fail(f"on {case}, a parameter without a gradient got one. Hint: skip `p.grad is None`.")
        hint = "for p in params: if p.grad is not None: p.grad.mul_(k) — in place, every parameter, nothing returned."
        unchanged = {
            "weight": "The gradients are unchanged: modify p.grad in place (p.grad.mul_(k)); returning new tensors "
            "does nothing. (Keeping only 4-D conv weights, as the official code does, leaves an MLP untouched.)",
            "bias": "The biases were not modulated: scale every parameter of the encoder, not only the weight "
            "matrices (the official code touches only 4-D conv weights).",
        }
        for name, p, pr in (("weight", layer.weight, ref[0]), ("bias", layer.bias, ref[1])):
            g = g0[name]
            variants = [
                (g, unchanged[name]),
                ((1 - k) * g, "You scaled by 1 − k: the coefficient k itself multiplies the gradient."),
                (g / k, "You divided by k: multiply."),
            ]
            _compare(p.grad.detach(), pr.grad, f"{case} ({name}'s gradient)", hint, variants)

        # generalisation enhancement: the added noise has each tensor's own gradient std, measured before scaling
        gen = _gen(6)
        big = nn.Parameter(0.5 * torch.randn(100, 100, generator=gen, dtype=torch.float64))
        wide = nn.Parameter(0.5 * torch.randn(50, 50, generator=gen, dtype=torch.float64))
        big.grad = 0.05 * torch.randn(100, 100, generator=gen, dtype=torch.float64)
        wide.grad = 2.0 * torch.randn(50, 50, generator=gen, dtype=torch.float64)
        before = [big.grad.clone(), wide.grad.clone()]
        k = 0.25
        case = "noise=True, k = 0.25, gradients of std 0.05 (100×100) and 2.0 (50×50)"
        _call(fn, case, [big, wide], k, noise=True)
        for p, g, label in ((big, before[0], "std 0.05"), (wide, before[1], "std 2.0")):
            eps = p.grad.detach() - k * g
            want, got = float(g.std()), float(eps.std())
            if got < 1e-12:
                raise _Fail(
                    f"on {case}, no noise was added to the {label} tensor. Hint: ε ~ N(0, std(g)²) when noise=True."
                )
            if abs(got - want) <= 0.1 * want and abs(float(eps.mean())) < 0.1 * want:
                continue
            if abs(got - k * want) <= 0.1 * k * want:
                why = "the noise's std is k·std(g): measure std(g) *before* scaling."
            elif abs(got - 1.0) <= 0.1:
                why = "the noise has std 1: use the gradient's own std."
            elif abs(got - float(p.detach().std())) <= 0.1 * float(p.detach().std()):
                why = "the noise has the *parameter's* std: use the gradient's."
            else:
                why = "expected ε ~ N(0, std(g)²) with each tensor's own std(g), measured before scaling."
            raise _Fail(
                f"on {case}, the {label} tensor's noise has mean {_fmt(float(eps.mean()))} and std {_fmt(got)}, "
                f"expected mean ≈ 0 and std ≈ {_fmt(want)}: {why}"
            )
        return "scales every gradient by k in place, skips parameters without one, and adds GE noise of std(g)."

    return _run("gradient_modulation", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 5: distillation and pruning


def check_distillation_loss(fn: Callable[..., torch.Tensor]) -> ExerciseResult:
    """Check ``fn(student_logits, teacher_logits, target, temperature, alpha)``: the distillation loss (Hinton,
    Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015),

    ``L = (1 − α)·CE(z_s, y) + α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))``, KL averaged over the batch
    (``reduction='batchmean'``). Reference: :func:`mmlab.deploy.distillation.distillation_loss`. Catches the
    forgotten ``T²`` (or ``T``), the reversed KL, probabilities where ``kl_div`` wants log-probabilities,
    ``reduction='mean'`` or ``'sum'``, swapped weights, a missing temperature in the softmaxes, cross-entropy on
    softened logits, and a loss that does not backpropagate.
    """
    from .deploy.distillation import distillation_loss

    def variants(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, temp: float, a: float) -> Variants:
        ls, lt = F.log_softmax(s / temp, -1), F.log_softmax(t / temp, -1)
        ce = F.cross_entropy(s, y)
        kl = (lt.exp() * (lt - ls)).sum(-1).mean()
        kl_rev = (ls.exp() * (ls - lt)).sum(-1).mean()
        kl_probs = F.kl_div(ls.exp(), lt.exp(), reduction="batchmean")
        kl_mean = (lt.exp() * (lt - ls)).mean()
        kl_sum = (lt.exp() * (lt - ls)).sum()
        l0s, l0t = F.log_softmax(s, -1), F.log_softmax(t, -1)
        kl_no_t = (l0t.exp() * (l0t - l0s)).sum(-1).mean()
        return [
            ((1 - a) * ce + a * kl, "T² is missing: the soft term's gradient shrinks like 1/T², so multiply it by T²."),
            ((1 - a) * ce + a * temp * kl, "You multiplied by T, not T²."),
            (
                (1 - a) * ce + a * temp**2 * kl_rev,
                "The KL is reversed: it is KL(teacher ‖ student), teacher's probabilities outside.",
            ),
            (
                (1 - a) * ce + a * temp**2 * kl_probs,
                "F.kl_div got probabilities: its first argument must be the student's *log*-probabilities "
                "(log_softmax), and the target log-probabilities need log_target=True.",
            ),
            ((1 - a) * ce + a * temp**2 * kl_mean, "reduction='mean' divides by B·C: use 'batchmean' (divides by B)."),
            (
                (1 - a) * ce + a * temp**2 * kl_sum,
                "The KL is summed over the batch: average it (reduction='batchmean').",
            ),
            (
                a * ce + (1 - a) * temp**2 * kl,
                "The weights are swapped: α weighs the teacher's soft term, 1 − α the labels.",
            ),
            ((1 - a) * ce + a * temp**2 * kl_no_t, "The softmaxes miss the temperature: soften both, softmax(z/T)."),
            (
                (1 - a) * F.cross_entropy(s / temp, y) + a * temp**2 * kl,
                "The cross-entropy uses z/T: the label term uses T = 1.",
            ),
        ]

    def body() -> str:
        gen = _gen(7)
        hint = (
            "(1 − α)·F.cross_entropy(z_s, y) + α·T²·F.kl_div(F.log_softmax(z_s/T, -1), F.log_softmax(z_t/T, -1), "
            "reduction='batchmean', log_target=True)."
        )
        for temp, a in ((4.0, 0.5), (2.0, 1.0), (3.0, 0.7)):
            s = (2 * torch.randn(4, 5, generator=gen, dtype=torch.float64)).requires_grad_(True)
            t = 3 * torch.randn(4, 5, generator=gen, dtype=torch.float64)
            y = torch.randint(0, 5, (4,), generator=gen)
            case = f"4 samples × 5 classes, T = {temp}, α = {a}"
            out = _call(fn, case, s, t.clone(), y.clone(), temp, a)
            got = _to_float(out, case)
            ref = distillation_loss(s.detach(), t, y, temperature=temp, alpha=a)
            with torch.no_grad():
                _compare(got, float(ref), case, hint, [(float(v), m) for v, m in variants(s.detach(), t, y, temp, a)])
            if not (isinstance(out, torch.Tensor) and out.requires_grad):
                raise _Fail(
                    f"on {case}, the value is right but it does not backpropagate. Hint: no .item() or .detach()."
                )
        return "matches mmlab.deploy.distillation_loss for (T, α) = (4, 0.5), (2, 1), (3, 0.7), and backpropagates."

    return _run("distillation_loss", body)


def _pair_setup(seed: int) -> tuple[nn.Linear, nn.Linear]:
    gen = _gen(seed)
    first, second = nn.Linear(5, 8).double(), nn.Linear(8, 3).double()
    with torch.no_grad():  # rows chosen so that L1, L2, columns, outgoing weights and "the first k" all disagree
        first.weight.copy_(
            torch.tensor(
                [
                    [0.1, 0.1, 0.1, 0.1, 0.1],
                    [1.0, 1.0, -1.0, 1.0, 2.0],
                    [3.0, 0.0, 0.0, 0.0, 0.1],
                    [0.2, -0.3, 0.1, 0.2, 0.1],
                    [0.9, -0.9, 0.9, -0.9, 0.9],
                    [2.8, 0.1, 0.0, 0.0, 0.0],
                    [0.5, 0.5, -0.5, 0.5, 0.5],
                    [-0.2, 0.1, 0.3, 0.1, 0.0],
                ],
                dtype=torch.float64,
            )
        )
        first.bias.copy_(torch.rand(8, generator=gen, dtype=torch.float64) + 0.5)  # positive: every unit is active
        second.weight.copy_(torch.randn(3, 8, generator=gen, dtype=torch.float64))
        second.bias.copy_(torch.randn(3, generator=gen, dtype=torch.float64))
    return first, second


def _masked_pair(first: nn.Linear, second: nn.Linear, keep: torch.Tensor, x: torch.Tensor, bias: bool = True):
    """The original pair's output with every unit not in ``keep`` removed (its activation set to 0)."""
    with torch.no_grad():
        mask = torch.zeros(first.out_features, dtype=torch.float64)
        mask[keep] = 1.0
        pre = x @ first.weight.T + (first.bias if bias else 0.0)
        return (torch.relu(pre) * mask) @ second.weight.T + second.bias


def _pruning_variants(first: nn.Linear, second: nn.Linear, x: torch.Tensor, k: int) -> Variants:
    """Outputs of typical wrong prunings of ``first → ReLU → second`` keeping ``k`` units, each with its diagnosis."""
    w1 = first.weight.detach()

    def top(scores: torch.Tensor) -> torch.Tensor:
        return scores.topk(min(k, len(scores))).indices

    def masked(keep: torch.Tensor, bias: bool = True) -> torch.Tensor:
        return _masked_pair(first, second, keep, x, bias)

    out = [(masked(top(w1.abs().sum(1)), bias=False), "The first layer's bias is lost: copy b1[keep].")]
    if k < first.out_features:
        out += [
            (masked(top(-w1.abs().sum(1))), "You kept the *smallest* units: keep the largest L1 norms."),
            (masked(top(w1.abs().sum(0))), "Wrong axis: a unit's incoming weights are a *row* of W1 (dim=1)."),
            (
                masked(top(second.weight.detach().abs().sum(0))),
                "You ranked by the outgoing weights (W2's columns): rank by W1's rows.",
            ),
            (masked(top(w1.pow(2).sum(1))), "You ranked by the L2 norm: the exercise asks for L1, Σ_i |W1[j, i]|."),
            (masked(torch.arange(k)), "You kept the first k units: rank them by L1 norm first."),
        ]
    return out


def check_pruning(fn: Callable[[nn.Linear, nn.Linear, int], tuple[nn.Linear, nn.Linear]]) -> ExerciseResult:
    """Check ``fn(first, second, k) -> (first', second')``: structured pruning of one ``Linear → ReLU → Linear``
    pair that really removes hidden units (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017).

    Keep the ``k`` hidden units with the largest L1 norm of their incoming weights, ``s_j = Σ_i |W1[j, i]|``;
    ``first'`` keeps those rows of ``W1`` and entries of ``b1``, ``second'`` those columns of ``W2`` (and all of
    ``b2``). Then ``second'(relu(first'(x)))`` equals the original pair with the other units' activations set to
    0. Reference: :func:`mmlab.deploy.compression.prune_structured` (``criterion="l1"``). Catches keeping the
    smallest units, ranking by the wrong axis, by L2 or by nothing, a lost first-layer bias, an unsliced second
    layer, and modifying the original layers.
    """
    from .deploy.compression import prune_structured

    def body() -> str:
        hint = (
            "keep = (W1.abs().sum(dim=1)).topk(k).indices; first' = Linear(in, k) with W1[keep], b1[keep]; "
            "second' = Linear(k, out) with W2[:, keep], b2."
        )
        x = torch.randn(10, 5, generator=_gen(9), dtype=torch.float64)
        for k in (3, 1, 8):
            first, second = _pair_setup(8)
            orig = copy.deepcopy((first, second))
            n = first.out_features
            case = f"Linear(5, 8) → ReLU → Linear(8, 3), k = {k}"
            out = _call(fn, case, first, second, k)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise _Fail(f"on {case}, expected a pair (first', second'), got {type(out).__name__}.")
            f2, s2 = out
            if not all(isinstance(m, nn.Linear) for m in (f2, s2)):
                raise _Fail(f"on {case}, expected two nn.Linear layers, got {type(f2).__name__}, {type(s2).__name__}.")
            for old, new in zip(orig, (first, second)):
                if not (torch.equal(old.weight, new.weight) and torch.equal(old.bias, new.bias)):
                    raise _Fail(f"on {case}, the original layers were modified. Hint: build new layers (or copy).")
            if f2.out_features != k:
                raise _Fail(f"on {case}, first' has {f2.out_features} outputs, expected k = {k}. Hint: {hint}")
            if s2.in_features != k:
                raise _Fail(
                    f"on {case}, second' still reads {s2.in_features} inputs, expected k = {k}: slice the next layer's "
                    f"input columns too (W2[:, keep]). Hint: {hint}"
                )
            if (f2.in_features, s2.out_features) != (5, 3):
                raise _Fail(f"on {case}, the pair's input/output widths changed: expected 5 → k → 3. Hint: {hint}")
            pruned_case = f"{case}, output of second'(relu(first'(x))) on 10 inputs"
            try:
                with torch.no_grad():
                    got = s2(torch.relu(f2(x.to(f2.weight.dtype)))).double()
            except Exception as e:  # noqa: BLE001
                raise _Fail(
                    f"on {pruned_case}, running the pruned pair raised {type(e).__name__}: {_short(e)}"
                ) from None
            ref_model = prune_structured(nn.Sequential(first, nn.ReLU(), second), 1 - k / n, criterion="l1")
            with torch.no_grad():
                ref = ref_model(x)

            variants = _pruning_variants(first, second, x, k)
            _compare(got, ref, pruned_case, hint, variants, rtol=1e-6, atol=1e-9)
        return "keeps the top-k units by L1 norm, rebuilds both layers, same function on them (k = 3, 1, 8)."

    return _run("pruning", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 6: data quality


def _ref_small_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log p(y_i | x_i) = −CE(z_i, y_i)``, as :func:`mmlab.quality.small_loss_scores` (kept here, in float64,
    so that importing the checkers does not import scikit-learn)."""
    return -F.cross_entropy(logits, labels, reduction="none")


def _ref_keep_cleanest(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """The ``round(keep·N)`` highest scores, ties broken by position, as
    :func:`mmlab.quality.filter_by_keep_fraction`."""
    order = torch.from_numpy(np.argsort(-scores.detach().cpu().double().numpy(), kind="stable").copy())
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[order[: int(round(keep * len(scores)))]] = True
    return mask


def check_small_loss_scores(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(logits, labels)``: the small-loss quality score of every item, ``ℓ_i = log p(y_i | x_i) =
    −CE(z_i, y_i)``, shape (N,), higher = cleaner (the small-loss criterion of Co-teaching, Han et al., NeurIPS
    2018; networks fit clean items first, Arpit et al., ICML 2017). Reference: the formula of
    :func:`mmlab.quality.small_loss_scores`, in float64. Catches the loss instead of the score (wrong sign), a mean
    over the batch, probabilities instead of log-probabilities (linear instead of log), the predicted class
    instead of the given label, the raw logit, the wrong softmax axis, and ``log(softmax)`` underflowing on
    large logits.
    """

    def variants(z: torch.Tensor, y: torch.Tensor) -> Variants:
        ls = F.log_softmax(z, -1)
        score = ls.gather(1, y[:, None]).squeeze(1)
        naive = torch.log(torch.softmax(z, -1)).gather(1, y[:, None]).squeeze(1)
        return [
            (-score, "That is the loss, CE = −log p: the score is its negative (higher = cleaner)."),
            (score.mean(), "You averaged over the batch: return one score per item (reduction='none')."),
            (-score.mean(), "That is the mean loss: return one score per item, log p(y_i | x_i)."),
            (score.exp(), "Those are probabilities p(y|x): the score is their log (log_softmax)."),
            (ls.max(1).values, "You scored the predicted class: use the *given* label y_i."),
            (z.gather(1, y[:, None]).squeeze(1), "That is the raw logit: normalise with log_softmax first."),
            (
                F.log_softmax(z, 0).gather(1, y[:, None]).squeeze(1),
                "Wrong axis: the softmax runs over classes (dim=-1).",
            ),
            (
                naive,
                "log(softmax(z)) underflowed to −inf: use F.log_softmax (or −F.cross_entropy(..., reduction='none')).",
            ),
        ]

    def body() -> str:
        gen = _gen(10)
        hint = "−F.cross_entropy(logits, labels, reduction='none'), i.e. log_softmax(logits)[i, y_i]."
        cases = [
            (
                "6 items × 4 classes",
                2 * torch.randn(6, 4, generator=gen, dtype=torch.float64),
                torch.tensor([0, 1, 2, 3, 1, 0]),
            ),
            (
                "3 items with logits up to ±400",
                torch.tensor([[400.0, -400.0, 0.0], [0.0, 350.0, -300.0], [1.0, 2.0, 3.0]], dtype=torch.float64),
                torch.tensor([1, 0, 2]),
            ),
        ]
        for case, z, y in cases:
            got = _to_tensor(_call(fn, case, z.clone(), y.clone()), case, "an (N,) tensor")
            _compare(got, _ref_small_loss(z, y), case, hint, variants(z, y))
        return "one log p(y_i | x_i) per item, stable on large logits."

    return _run("small_loss_scores", body)


def check_keep_cleanest(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(scores, keep) -> mask``: keep the ``round(keep·N)`` items with the highest quality scores
    (cleanest first), as a bool mask (N,). The filter of small-loss selection (Han et al., NeurIPS 2018) and of
    score-based data filtering (e.g. LAION's CLIP-score threshold, Schuhmann et al. 2021). Reference: the rule of
    :func:`mmlab.quality.filter_by_keep_fraction`; with ties, any choice among equal scores passes. Catches keeping
    the dirtiest, an off-by-one count (floor/ceil instead of round), comparing scores with ``keep`` as if it were
    a threshold, and returning indices instead of a mask.
    """

    def body() -> str:
        gen = _gen(11)
        s = torch.randn(10, generator=gen, dtype=torch.float64)
        cases = [
            ("10 distinct scores, keep = 0.44", s, 0.44),
            ("10 distinct scores, keep = 0.46", s, 0.46),
            ("scores with ties [3, 1, 2, 2, 0, 2], keep = 0.5", torch.tensor([3.0, 1.0, 2.0, 2.0, 0.0, 2.0]), 0.5),
            ("scores 0.1..0.9 (9 items), keep = 0.3", torch.linspace(0.1, 0.9, 9, dtype=torch.float64), 0.3),
            ("5 scores, keep = 0", s[:5], 0.0),
            ("5 scores, keep = 1", s[:5], 1.0),
        ]
        for case, scores, keep in cases:
            out = _call(fn, case, scores.clone(), keep)
            if not isinstance(out, torch.Tensor):
                raise _Fail(f"on {case}, expected a bool tensor (N,), got {type(out).__name__}. Hint: return a mask.")
            out = out.detach().cpu()
            n, want_n = len(scores), int(round(keep * len(scores)))
            if out.dtype != torch.bool:
                looks_like_idx = out.dim() == 1 and len(out) != n
                raise _Fail(
                    f"on {case}, expected a bool mask, got dtype {out.dtype}"
                    + (" of another length — looks like indices: set mask[idx] = True." if looks_like_idx else ".")
                    + " Hint: mask = torch.zeros(N, dtype=torch.bool); mask[order[:n_keep]] = True."
                )
            if tuple(out.shape) != (n,):
                raise _Fail(f"on {case}, expected shape ({n},), got {tuple(out.shape)}.")
            ref = _ref_keep_cleanest(scores, keep)
            got_n = int(out.sum())
            lowest = torch.zeros(n, dtype=torch.bool)
            lowest[torch.argsort(scores)[:want_n]] = True
            if torch.equal(out, scores >= keep) and not torch.equal(out, ref):
                why = "You compared the scores with `keep`: it is a fraction of items, not a score threshold."
            elif got_n == want_n and want_n and torch.equal(out, lowest) and not torch.equal(out, ref):
                why = "You kept the *lowest* scores, the dirtiest items: higher score = cleaner."
            elif got_n != want_n:
                why = f"You kept {got_n} items, expected round({keep}·{n}) = {want_n}" + (
                    " (off by one: round, not floor or ceil)." if abs(got_n - want_n) == 1 else "."
                )
            elif want_n and want_n < n and float(scores[out].min()) < float(scores[~out].max()):
                why = "Some kept item scores lower than a dropped one: keep the highest scores."
            else:
                continue
            raise _Fail(
                f"on {case} {_fmt(scores, 3)}: expected to keep {_fmt(ref)}, got {_fmt(out)}. {why} Hint: "
                "n_keep = round(keep·N); keep the n_keep highest scores (torch.argsort(scores, descending=True))."
            )
        return "keeps exactly round(keep·N) highest-scoring items on 6 cases (with ties, 0 and 1)."

    return _run("keep_cleanest", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 7: CLIP loss and Recall@K


def check_clip_loss(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> ExerciseResult:
    """Check ``fn(image_emb, text_emb, logit_scale)``: CLIP's symmetric contrastive loss (Radford et al.,
    "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021),

    ``S = exp(t)·Î·T̂ᵀ`` with L2-normalised rows, ``L = ½[CE(S, arange B) + CE(Sᵀ, arange B)]``; with no
    information in the embeddings it equals ``ln B``. Reference: :func:`mmlab.contrastive.clip_loss`. Catches one
    direction only, the sum instead of the mean of the two, no normalisation, dividing by the scale or using ``t``
    itself instead of ``exp(t)``, and a loss that does not backpropagate.
    """
    from .contrastive import clip_loss

    def variants(a: torch.Tensor, b: torch.Tensor, t: float) -> Variants:
        an, bn = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        y = torch.arange(len(a))

        def sym(s: torch.Tensor) -> torch.Tensor:
            return 0.5 * (F.cross_entropy(s, y) + F.cross_entropy(s.T, y))

        cos = an @ bn.T
        return [
            (
                F.cross_entropy(math.exp(t) * cos, y),
                "Only image→text: add the text→image term CE(Sᵀ, arange) and halve.",
            ),
            (
                F.cross_entropy(math.exp(t) * cos.T, y),
                "Only text→image: add the image→text term CE(S, arange) and halve.",
            ),
            (2 * sym(math.exp(t) * cos), "You summed the two directions: CLIP averages them (½)."),
            (sym(math.exp(t) * (a @ b.T)), "The embeddings are not normalised: F.normalize(·, dim=-1) both first."),
            (sym(cos / math.exp(t)), "You divided by the scale: logits are cos·exp(t) (t = ln(1/τ), so ·exp(t) = /τ)."),
            (sym(t * cos), "You used t as the scale: logit_scale is a log, the scale is exp(t)."),
            (sym(cos / t), "You divided by t: the scale is exp(t), and it multiplies."),
            (sym(cos), "The scale is missing: multiply the cosines by exp(t)."),
        ]

    def body() -> str:
        gen = _gen(12)
        hint = "S = exp(t)·normalize(I) @ normalize(T).T; loss = (CE(S, arange(B)) + CE(S.T, arange(B))) / 2."
        a = torch.randn(5, 3, generator=gen) * torch.tensor([[0.5], [2.0], [1.0], [3.0], [0.7]])
        b = torch.randn(5, 3, generator=gen) * torch.tensor([[1.5], [0.4], [2.5], [1.0], [0.9]])
        same = torch.ones(4, 3)
        cases = [
            ("5 pairs of unnormalised 3-d embeddings, t = 1.5", a, b, 1.5),
            ("the same pairs, t = ln(1/0.07)", a, b, math.log(1 / 0.07)),
            ("4 identical embeddings (no information), t = 2; expected ln 4", same, same.clone(), 2.0),
        ]
        for i, (case, x, z, t) in enumerate(cases):
            xi, zi = x.clone().requires_grad_(True), z.clone()
            out = _call(fn, case, xi, zi, torch.tensor(t))
            got = _to_float(out, case)
            with torch.no_grad():
                ref = float(clip_loss(x, z, t))
                _compare(got, ref, case, hint, [(float(v), m) for v, m in variants(x, z, t)], rtol=1e-4, atol=1e-6)
            if i == 0 and not (isinstance(out, torch.Tensor) and out.requires_grad):
                raise _Fail(
                    f"on {case}, the value is right but it does not backpropagate. Hint: no .item() or .detach()."
                )
        return (
            "matches mmlab.contrastive.clip_loss at two temperatures, gives ln B without information, backpropagates."
        )

    return _run("clip_loss", body)


def check_recall_at_k(fn: Callable[[torch.Tensor, int], float]) -> ExerciseResult:
    """Check ``fn(sim, k)``: Recall@K for queries (rows) against a gallery (columns) whose right answer is the
    diagonal, ``R@K = (1/Q) Σ_i [rank_i ≤ K]`` with ``rank_i = 1 + #{j ≠ i : S_ij ≥ S_ii}`` (ties count against
    the query, so scoring everything alike earns nothing). Retrieval metric as used for CLIP (Radford et al.
    2021). Reference: :func:`mmlab.contrastive.retrieval_metrics`. Catches an off-by-one K, columns as queries,
    ties counted in the query's favour, and a count or a percentage instead of a share.
    """
    from .contrastive import retrieval_metrics

    def rank(sim: torch.Tensor, strict: bool) -> torch.Tensor:
        d = sim.diagonal()[:, None]
        off = ~torch.eye(len(sim), dtype=torch.bool)
        beats = (sim > d) if strict else (sim >= d)
        return 1 + (beats & off).sum(1)

    def body() -> str:
        # by rows the right items rank [1, 2, 3, 1, 2, 2] (row 5 ties a rival); by columns [2, 1, 1, 2, 1, 1]
        sim = torch.full((6, 6), 0.1)
        sim[range(6), range(6)] = torch.tensor([0.3, 0.4, 0.5, 0.6, 0.7, 0.95])
        sim[1, 5], sim[2, 4], sim[2, 5], sim[4, 5], sim[5, 3], sim[5, 0] = 0.45, 0.55, 0.6, 0.8, 0.95, 0.5
        flat = torch.full((4, 4), 0.25)
        cases = [("a 6×6 similarity matrix", sim, k) for k in (1, 2, 3)] + [
            ("a 4×4 matrix of equal similarities", flat, 1),
            ("a 4×4 matrix of equal similarities", flat, 4),
        ]
        hint = "rank_i = 1 + number of *other* columns j with sim[i, j] >= sim[i, i]; R@K = mean(rank <= K) over rows."
        for label, s, k in cases:
            case = f"{label}, K = {k}"
            got = _to_float(_call(fn, case, s.clone(), k), case)
            ref = retrieval_metrics(s, ks=(k,))[f"R@{k}"]
            r, r_strict, r_col = rank(s, False), rank(s, True), rank(s.T, False)
            variants = [
                (float((r < k).float().mean()), "Off by one: a hit is rank ≤ K (rank 1 = top), not rank < K."),
                (float((r <= k + 1).float().mean()), "Off by one: you counted the top K + 1."),
                (float((r_col <= k).float().mean()), "Wrong axis: queries are the rows; you ranked within columns."),
                (
                    float((r_strict <= k).float().mean()),
                    "Ties are counted in the query's favour: a wrong item scoring equal must count against it (>=).",
                ),
                (float((r <= k).float().sum()), "That is a count: divide by the number of queries."),
                (100 * ref, "That is a percentage: return a share in [0, 1]."),
            ]
            if s is flat:  # every rank is Q here: any hit came from breaking a tie in the query's favour
                variants.insert(
                    0,
                    (
                        got,
                        "With equal scores every item ties: topk/argsort picked the right one first, "
                        "but a tie must count against the query (>=).",
                    ),
                )
            _compare(got, ref, case, hint, variants, rtol=1e-6, atol=1e-9)
        return "matches mmlab.contrastive.retrieval_metrics for K = 1, 2, 3 and on all-tied similarities."

    return _run("recall_at_k", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 8: the CLIP loss of one rank against the gathered batch


def check_local_clip_loss(
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor],
) -> ExerciseResult:
    """Check ``fn(image_local, text_local, image_all, text_all, logit_scale, rank)``: OpenCLIP's ``local_loss``
    (Cherti et al., "Reproducible scaling laws for contrastive language-image learning", CVPR 2023; the loss of
    Radford et al. 2021), rank ``r``'s ``B`` rows against all ``W·B`` gathered columns,

    ``L_r = ½ [CE(s·Î_r·T̂_allᵀ, r·B + arange B) + CE(s·T̂_r·Î_allᵀ, r·B + arange B)]``, ``s = exp(t)``,

    whose mean over ranks is the full CLIP loss of the concatenated batch. Reference:
    :func:`mmlab.distributed.local_clip_loss`. Catches targets not offset (or offset by ``r`` instead of
    ``r·B``), the per-rank loss that ignores the gathered embeddings, one direction only, the sum of the two,
    no normalisation, ``t`` instead of ``exp(t)``, text against text, and a loss that does not backpropagate.
    """
    from .contrastive import clip_loss
    from .distributed import local_clip_loss

    def variants(a: torch.Tensor, b: torch.Tensor, a_all: torch.Tensor, b_all: torch.Tensor, t: float, r: int):
        an, bn = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        an_all, bn_all = F.normalize(a_all, dim=-1), F.normalize(b_all, dim=-1)
        s, n = math.exp(t), len(a)
        y = torch.arange(n) + r * n

        def both(li: torch.Tensor, lt: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return 0.5 * (F.cross_entropy(li, target) + F.cross_entropy(lt, target))

        return [
            (
                both(s * an @ bn_all.T, s * bn @ an_all.T, torch.arange(n)),
                "The targets are not offset: row i of rank r is pair r·B + i of the gathered batch.",
            ),
            (
                both(s * an @ bn_all.T, s * bn @ an_all.T, torch.arange(n) + r),
                "The offset is r, not r·B: each rank before this one holds B pairs.",
            ),
            (
                clip_loss(a, b, t),
                "That is the per-rank loss of this shard alone: use the gathered embeddings as the columns.",
            ),
            (F.cross_entropy(s * an @ bn_all.T, y), "Only image→text: add the text→image term and halve."),
            (F.cross_entropy(s * bn @ an_all.T, y), "Only text→image: add the image→text term and halve."),
            (2 * both(s * an @ bn_all.T, s * bn @ an_all.T, y), "You summed the two directions: CLIP averages them."),
            (both(s * a @ b_all.T, s * b @ a_all.T, y), "The embeddings are not normalised: F.normalize(·, dim=-1)."),
            (both(t * an @ bn_all.T, t * bn @ an_all.T, y), "You used t as the scale: the scale is exp(t)."),
            (
                both(s * an @ bn_all.T, s * bn @ bn_all.T, y),
                "The text→image logits compare captions with captions: use this rank's captions against all images.",
            ),
        ]

    def body() -> str:
        gen = _gen(8)
        hint = "logits = exp(t)·normalize(local) @ normalize(other modality, all ranks).T; targets r·B + arange(B)."
        w, b, d = 3, 4, 5
        za = torch.randn(w * b, d, generator=gen) * torch.linspace(0.5, 2.5, w * b)[:, None]
        zb = torch.randn(w * b, d, generator=gen) * torch.linspace(1.5, 0.4, w * b)[:, None]
        t = 1.2
        losses = []
        for r in range(w):
            case = f"rank {r} of W = {w}, B = {b} pairs per rank, t = {t}"
            a_loc = za[r * b : (r + 1) * b].clone().requires_grad_(True)
            out = _call(fn, case, a_loc, zb[r * b : (r + 1) * b].clone(), za.clone(), zb.clone(), torch.tensor(t), r)
            got = _to_float(out, case)
            with torch.no_grad():
                a, bb = za[r * b : (r + 1) * b], zb[r * b : (r + 1) * b]
                ref = float(local_clip_loss(a, bb, za, zb, t, r))
                wrong = [(float(v), m) for v, m in variants(a, bb, za, zb, t, r)]
                _compare(got, ref, case, hint, wrong, rtol=1e-4, atol=1e-6)
            if r == 1 and not (isinstance(out, torch.Tensor) and out.requires_grad):
                raise _Fail(f"on {case}, the value is right but it does not backpropagate. Hint: no .item().")
            losses.append(got)
        full = float(clip_loss(za, zb, t))
        return (
            f"matches mmlab.distributed.local_clip_loss on every rank of W = {w}; the mean over ranks "
            f"{sum(losses) / w:.4f} is the full CLIP loss of the {w * b} pairs ({full:.4f})."
        )

    return _run("local_clip_loss", body)


# --------------------------------------------------------------------------------------------------------------
# Lesson 9: the exact expected accuracy under per-modality missing rates


def check_condition_accuracy(fn: Callable[[dict, Sequence[float]], float]) -> ExerciseResult:
    """Check ``fn(pattern_acc, rates) -> float``: the exact expected accuracy of a model whose accuracy on each
    presence pattern ``s`` is ``pattern_acc[s]`` (``s`` a tuple of bools, True = present) when modality ``m``
    goes missing independently with probability ``rates[m]`` and a sample that lost every modality gets one
    back, modality ``m`` with probability ``(1 − r_m) / Σ_k (1 − r_k)`` (ModDrop-style masks, Neverova et al.
    2016, as :func:`mmlab.missing.sample_presence` draws them):

    ``E[acc] = Σ_s P(s)·acc(s)``, ``P(s) = Π_m [s_m (1 − r_m) + (1 − s_m) r_m]``, plus, for a pattern with the
    single modality ``m`` present, ``Π_k r_k · (1 − r_m) / Σ_k (1 − r_k)``. Reference:
    :func:`mmlab.missing.expected_accuracy`. Catches forgetting the samples that lost everything, renormalising
    them away instead of giving one modality back, giving it back uniformly, reading the rates as presence
    probabilities, the plain mean over patterns, the complete pattern only, and a percentage.
    """
    import itertools

    from .missing import expected_accuracy

    def prob(pattern: tuple[bool, ...], rates: Sequence[float]) -> float:
        return math.prod((1 - r) if s else r for s, r in zip(pattern, rates))

    def variants(acc: dict, rates: Sequence[float]) -> Variants:
        empty = math.prod(rates)
        plain = sum(prob(s, rates) * a for s, a in acc.items())
        singles = {s: a for s, a in acc.items() if sum(s) == 1}
        uniform = plain + sum(empty / len(rates) * a for a in singles.values())
        inv = [1 - r for r in rates]
        inverted = sum(prob(s, inv) * a for s, a in acc.items()) + sum(
            math.prod(inv) * rates[s.index(True)] / max(sum(rates), 1e-12) * a for s, a in singles.items()
        )
        full = tuple(True for _ in rates)
        out = [
            (
                plain,
                "Your probabilities sum to 1 − Π_m r_m: the samples that lost every modality are missing. Each gets "
                "one modality back, m with probability (1 − r_m) / Σ_k (1 − r_k).",
            ),
            (
                plain / (1 - empty) if empty < 1 else plain,
                "You renormalised over the patterns with something present: the masks give an emptied sample one "
                "modality back, in proportion to (1 − r_m), not in proportion to each pattern's probability.",
            ),
            (
                uniform,
                "You gave the emptied samples back a modality uniformly (1/M): it is m with (1 − r_m) / Σ(1 − r_k).",
            ),
            (inverted, "The rates are *missing* rates: modality m is present with probability 1 − r_m."),
            (
                float(np.mean(list(acc.values()))),
                "That is the plain mean over patterns: weight each by its probability.",
            ),
            (acc[full], "That is the accuracy with every modality present: the rates must weigh the other patterns."),
            (100 * expected_accuracy(acc, rates), "That is a percentage: return a fraction in [0, 1]."),
        ]
        return out

    def table(m: int, seed: int) -> dict:
        gen = _gen(seed)
        vals = torch.rand(2**m, generator=gen, dtype=torch.float64).tolist()
        pats = [p for p in itertools.product((True, False), repeat=m) if any(p)]
        return {p: round(0.3 + 0.65 * v, 3) for p, v in zip(pats, vals)}

    def body() -> str:
        acc3, acc2 = table(3, 21), table(2, 22)
        cases = [
            ("3 modalities, rates (0.1, 0.3, 0.3)", acc3, [0.1, 0.3, 0.3]),
            ("3 modalities, rates (0.5, 0.8, 0.4)", acc3, [0.5, 0.8, 0.4]),
            ("2 modalities, rates (0.9, 0.6)", acc2, [0.9, 0.6]),
            ("3 modalities, nothing missing (rates 0)", acc3, [0.0, 0.0, 0.0]),
        ]
        hint = (
            "for each pattern s: p = Π_m (1 − r_m if s_m else r_m); if s has one modality m present, add "
            "Π_k r_k · (1 − r_m) / Σ_k (1 − r_k); return Σ_s p · acc[s]."
        )
        for case, acc, rates in cases:
            got = _to_float(_call(fn, case, dict(acc), list(rates)), case)
            ref = expected_accuracy(acc, rates)
            wrong = [(v, msg) for v, msg in variants(acc, rates) if abs(v - ref) > 1e-9]
            _compare(got, ref, case, hint, wrong, rtol=1e-6, atol=1e-9)
        return "matches mmlab.missing.expected_accuracy for 2 and 3 modalities, with and without emptied samples."

    return _run("condition_accuracy", body)
