"""mmlab.exercises: every checker passes its solution, greets a stub with "not attempted yet", rejects the
typical wrong answers with a message that names the mistake, and never raises, whatever it is given."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F

# the starters and solutions the lessons ship, read from the notebooks (tests/notebook_exercises.py)
from notebook_exercises import NOTEBOOKS, exercise_cells, namespace
from torch import nn

from mmlab import exercises as ex

CELLS = exercise_cells()
sol, starter = namespace("solution", CELLS), namespace("starter", CELLS)

# ---------------------------------------------------------------------------------------------- wrong answers


def _no_grad_soft_min(a, g):
    return (-g * torch.logsumexp(-a / g, -1)).detach()


def _sdtw(hard=False, border=math.inf, moves=("diag", "up", "left"), last=True):
    """A learner's soft-DTW with one of the usual slips switched on."""

    def fn(cost, gamma):
        n, m = cost.shape
        R = torch.full((n + 1, m + 1), border, dtype=torch.float64)
        R[0, 0] = 0.0
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                prev = {"diag": R[i - 1, j - 1], "up": R[i - 1, j], "left": R[i, j - 1]}
                opts = torch.stack([prev[k] for k in moves])
                best = opts.min() if hard else -gamma * torch.logsumexp(-opts / gamma, 0)
                R[i, j] = cost[i - 1, j - 1] + best
        return R[n, m] if last else R[n - 1, m - 1]

    return fn


def _lmf(one="append", order="product_then_sum", axis=0):
    def fn(features, factors):
        terms = []
        for z, w in zip(features, factors):
            ones = torch.ones(z.shape[0], 1, dtype=z.dtype)
            if one == "append":
                z1, w1 = torch.cat([z, ones], 1), w
            elif one == "prepend":
                z1, w1 = torch.cat([ones, z], 1), w
            else:
                z1, w1 = z, w[:, : z.shape[1]]
            terms.append(torch.einsum("bi,rio->rbo", z1, w1))
        if order == "sum_then_product":
            out = terms[0].sum(0)
            for t in terms[1:]:
                out = out * t.sum(0)
            return out
        if order == "additive":
            return sum(terms).sum(0)
        out = terms[0]
        for t in terms[1:]:
            out = out * t
        return out.sum(axis) if axis == 0 else out.sum(-1).T

    return fn


def _tfn(one="append", reverse=False, flat=True, concat=False):
    def fn(features):
        def with_one(z):
            ones = torch.ones(z.shape[0], 1, dtype=z.dtype)
            return {"append": torch.cat([z, ones], 1), "prepend": torch.cat([ones, z], 1), "none": z}[one]

        zs = [with_one(z) for z in features]
        if concat:
            return torch.cat(zs, 1)
        if reverse:
            zs = zs[::-1]
        t = zs[0]
        for z in zs[1:]:
            t = t.unsqueeze(-1) * z.view(z.shape[0], *([1] * (t.dim() - 1)), -1)
        return t.flatten(1) if flat else t

    return fn


def _mask_no_fix(b, rates, generator):
    return torch.rand(b, len(rates), generator=generator) >= torch.tensor(rates)


def _mask_same_for_batch(b, rates, generator):
    row = sol.sample_presence_mask(1, rates, generator)
    return row.expand(b, -1).clone()


def _mask_inverted(b, rates, generator):
    return torch.rand(b, len(rates), generator=generator, dtype=torch.float64) < torch.tensor(rates)


def _mask_shared_u(b, rates, generator):
    u = torch.rand(b, 1, generator=generator, dtype=torch.float64)
    keep = u >= torch.tensor(rates, dtype=torch.float64)
    keep[~keep.any(1), 0] = True
    return keep


def _mask_no_generator(b, rates, generator):
    return sol.sample_presence_mask(b, rates, torch.Generator().manual_seed(int(torch.randint(0, 10**6, ()))))


def _mask_first_back(b, rates, generator):
    keep = torch.rand(b, len(rates), generator=generator, dtype=torch.float64) >= torch.tensor(rates)
    keep[~keep.any(1), 0] = True
    return keep


def _mask_float(b, rates, generator):
    return sol.sample_presence_mask(b, rates, generator).float()


def _fill_in_place(z, present, token):
    z.data[~present] = token.data
    return z


def _ogm(both=False, inverted=False, weaker=False, no_relu=False, smooth=False, ties=False, no_tanh=False):
    def fn(sa, sb, alpha):
        sa, sb = float(sa), float(sb)
        rho = sa / sb
        if no_relu:
            return 1 - math.tanh(alpha * (rho - 1)), 1 - math.tanh(alpha * (1 / rho - 1))
        if both:
            return 1 - math.tanh(alpha * rho), 1 - math.tanh(alpha / rho)
        lead_a = sa >= sb if ties else sa > sb
        if not lead_a and sa == sb:
            return 1.0, 1.0
        r = rho if lead_a else 1 / rho
        r = 1 / r if inverted else r
        k = 1 - alpha * r if no_tanh else 1 - math.tanh(alpha * ((r - 1) if smooth else r))
        if weaker:
            lead_a = not lead_a
        return (k, 1.0) if lead_a else (1.0, k)

    return fn


def _modulate(kind):
    def fn(params, k, noise=False):
        for p in params:
            if kind != "crash_on_none" and p.grad is None:
                continue
            g = p.grad
            std = g.std()
            if kind == "params":
                p.data.mul_(k)
            elif kind == "copy":
                g = g * k
            elif kind == "one_minus":
                g.mul_(1 - k)
            elif kind == "weights_only":
                if p.dim() >= 2:
                    g.mul_(k)
            else:
                g.mul_(k)
            if noise:
                if kind == "std_after":
                    g.add_(torch.randn_like(g) * g.std())
                elif kind == "unit_noise":
                    g.add_(torch.randn_like(g))
                elif kind == "param_std":
                    g.add_(torch.randn_like(g) * p.detach().std())
                elif kind != "no_noise":
                    g.add_(torch.randn_like(g) * std)

    return fn


def _kd(kind):
    def fn(s, t, y, T, a):
        ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
        ce = F.cross_entropy(s, y)
        if kind == "no_t2":
            return (1 - a) * ce + a * F.kl_div(ls, lt, reduction="batchmean", log_target=True)
        if kind == "reversed":
            return (1 - a) * ce + a * T**2 * F.kl_div(lt, ls, reduction="batchmean", log_target=True)
        if kind == "probs":
            return (1 - a) * ce + a * T**2 * F.kl_div(F.softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean")
        if kind == "mean":
            with warnings.catch_warnings():  # torch warns about exactly this mistake
                warnings.simplefilter("ignore", UserWarning)
                return (1 - a) * ce + a * T**2 * F.kl_div(ls, lt, reduction="mean", log_target=True)
        if kind == "swapped":
            return a * ce + (1 - a) * T**2 * F.kl_div(ls, lt, reduction="batchmean", log_target=True)
        return sol.kd_loss(s, t, y, T, a).item()

    return fn


def _prune(kind):
    def fn(first, second, k):
        w = first.weight.detach()
        scores = {"smallest": -w.abs().sum(1), "wrong_dim": w.abs().sum(0), "l2": w.pow(2).sum(1)}.get(
            kind, w.abs().sum(1)
        )
        keep = scores.topk(k).indices
        if kind == "in_place":
            with torch.no_grad():
                first.weight[0] = 0.0
            return sol.prune_hidden_units(first, second, k)
        f2 = nn.Linear(first.in_features, k, bias=kind != "no_bias", dtype=w.dtype)
        n_in = second.in_features if kind == "no_slice" else k
        s2 = nn.Linear(n_in, second.out_features, dtype=w.dtype)
        with torch.no_grad():
            f2.weight.copy_(w[keep])
            if kind != "no_bias":
                f2.bias.copy_(first.bias[keep])
            s2.weight.copy_(second.weight if kind == "no_slice" else second.weight[:, keep])
            s2.bias.copy_(second.bias)
        return f2, s2

    return fn


def _recall(kind):
    def fn(sim, k):
        s = sim.T if kind == "columns" else sim
        right = s.diagonal()[:, None]
        others = ~torch.eye(len(s), dtype=torch.bool)
        beats = (s > right) if kind == "strict" else (s >= right)
        rank = 1 + (beats & others).sum(1)
        hit = rank < k if kind == "off_by_one" else rank <= k
        return float(hit.sum()) if kind == "count" else float(hit.float().mean())

    return fn


def _recall_topk(sim, k):
    idx = sim.topk(k, dim=1).indices
    return (idx == torch.arange(len(sim))[:, None]).any(1).float().mean().item()


def _clip(kind):
    def fn(a, b, t):
        an, bn = (a, b) if kind == "no_norm" else (F.normalize(a, dim=-1), F.normalize(b, dim=-1))
        scale = {"divide": 1 / t.exp(), "raw_t": t}.get(kind, t.exp())
        s = scale * an @ bn.T
        y = torch.arange(len(s))
        if kind == "one_way":
            return F.cross_entropy(s, y)
        if kind == "sum":
            return F.cross_entropy(s, y) + F.cross_entropy(s.T, y)
        loss = 0.5 * (F.cross_entropy(s, y) + F.cross_entropy(s.T, y))
        return loss.item() if kind == "item" else loss

    return fn


def _local_clip(kind):
    def fn(a, b, a_all, b_all, t, r):
        n = len(a)
        an, bn = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        an_all, bn_all = F.normalize(a_all, dim=-1), F.normalize(b_all, dim=-1)
        target = torch.arange(n) + {"no_offset": 0, "rank_offset": r}.get(kind, r * n)
        if kind == "per_rank":
            an_all, bn_all, target = an, bn, torch.arange(n)
        li, lt = t.exp() * an @ bn_all.T, t.exp() * bn @ (bn_all if kind == "text_text" else an_all).T
        if kind == "one_way":
            return F.cross_entropy(li, target)
        loss = 0.5 * (F.cross_entropy(li, target) + F.cross_entropy(lt, target))
        return loss.item() if kind == "item" else loss

    return fn


def _keep(kind):
    def fn(scores, keep):
        n = {"floor": math.floor, "ceil": math.ceil}.get(kind, round)(keep * len(scores))
        if kind == "threshold":
            return scores >= keep
        order = torch.argsort(scores, descending=kind != "dirtiest")
        if kind == "indices":
            return order[:n]
        mask = torch.zeros(len(scores), dtype=torch.bool)
        mask[order[:n]] = True
        return mask

    return fn


EXPECTED_ACC_SLIPS = {  # slip -> a word the checker's message must contain
    "no_give_back": "lost every modality",
    "renormalised": "renormalised",
    "uniform": "uniformly",
    "inverted": "*missing* rates",
}


def _expected_acc(kind):
    """A learner's expected accuracy under missing rates with one of the usual slips."""

    def fn(acc, rates):
        if kind == "inverted":
            rates = [1 - r for r in rates]
        p_empty = math.prod(rates)
        total = 0.0
        for pattern, a in acc.items():
            p = math.prod((1 - r) if s else r for s, r in zip(pattern, rates))
            if sum(pattern) == 1 and kind in ("inverted", "uniform"):
                m = pattern.index(True)
                p += p_empty * (1 / len(rates) if kind == "uniform" else (1 - rates[m]) / sum(1 - r for r in rates))
            total += p * a
        if kind == "renormalised":
            total /= 1 - p_empty
        return total

    return fn


# ---------------------------------------------------------------------------------------------- the table


@dataclass
class Exercise:
    checker: str
    solution: str
    wrong: dict[str, tuple[object, str]] = field(default_factory=dict)  # mistake -> (function, keyword)


EXERCISES = [
    Exercise(
        "check_std_over_seeds",
        "std_over_seeds",
        {
            "ddof0": (lambda acc: acc.std(axis=0), "ddof = 0"),
            "variance": (lambda acc: acc.var(axis=0, ddof=1), "square root"),
            "wrong_axis": (lambda acc: acc.std(axis=1, ddof=1), "Wrong axis"),
            "all_values": (lambda acc: acc.std(ddof=1), "all values"),
            "torch_ddof0": (lambda acc: torch.tensor(acc).std(0, unbiased=False), "ddof = 0"),
        },
    ),
    Exercise(
        "check_soft_min",
        "soft_min",
        {
            "hard_min": (lambda a, g: a.min(-1).values, "hard minimum"),
            "soft_max": (lambda a, g: g * torch.logsumexp(a / g, -1), "soft *maximum*"),
            "sign": (lambda a, g: g * torch.logsumexp(-a / g, -1), "Wrong sign"),
            "no_gamma": (lambda a, g: -torch.logsumexp(-a, -1), "γ is missing"),
            "gamma_outside_only": (lambda a, g: -g * torch.logsumexp(-a, -1), "only applied outside"),
            "overflow": (lambda a, g: -g * torch.log(torch.exp(-a / g).sum(-1)), "overflowed"),
            "wrong_axis": (lambda a, g: -g * torch.logsumexp(-a / g, 0), "Wrong axis"),
            "detached": (_no_grad_soft_min, "no gradient"),
        },
    ),
    Exercise(
        "check_soft_dtw",
        "soft_dtw_loops",
        {
            "hard_min": (_sdtw(hard=True), "plain DTW"),
            "zero_borders": (_sdtw(border=0.0), "Borders at 0"),
            "off_by_one": (_sdtw(last=False), "Off by one"),
            "no_diagonal": (_sdtw(moves=("up", "left")), "diagonal predecessor"),
            "no_left": (_sdtw(moves=("diag", "up")), "one step left"),
        },
    ),
    Exercise(
        "check_low_rank_fusion",
        "low_rank_fusion_forward",
        {
            "no_one": (_lmf(one="none"), "appended 1 is missing"),
            "prepended_one": (_lmf(one="prepend"), "prepended"),
            "sum_then_product": (_lmf(order="sum_then_product"), "summed over the rank before"),
            "additive": (_lmf(order="additive"), "added the modalities"),
            "wrong_axis": (_lmf(axis=-1), "output units"),
        },
    ),
    Exercise(
        "check_tensor_fusion",
        "tensor_fusion_features",
        {
            "no_one": (_tfn(one="none"), "appended 1 is missing"),
            "prepended_one": (_tfn(one="prepend"), "prepended"),
            "order": (_tfn(reverse=True), "other order"),
            "not_flat": (_tfn(flat=False), "Not flattened"),
            "concat": (_tfn(concat=True), "concatenation"),
        },
    ),
    Exercise(
        "check_presence_mask",
        "sample_presence_mask",
        {
            "can_drop_all": (_mask_no_fix, "every modality missing"),
            "same_for_batch": (_mask_same_for_batch, "same mask"),
            "inverted_rates": (_mask_inverted, "1 − rates"),
            "shared_draw": (_mask_shared_u, "independent"),
            "ignores_generator": (_mask_no_generator, "generator"),
            "always_first_back": (_mask_first_back, "always give back the same modality"),
            "float_mask": (_mask_float, "torch.bool"),
        },
    ),
    Exercise(
        "check_token_fill",
        "fill_with_token",
        {
            "inverted": (lambda z, p, t: torch.where(p[:, None], t, z), "inverted"),
            "everywhere": (lambda z, p, t: t.expand_as(z) + 0 * z, "Every row became the token"),
            "added": (lambda z, p, t: z + (~p[:, None]) * t, "added the token"),
            "zeros": (lambda z, p, t: z * p[:, None], "zero-fill"),
            "feature_axis": (lambda z, p, t: torch.where(p, z, t), "broadcast along the features"),
            "detached_token": (lambda z, p, t: torch.where(p[:, None], z, t.detach()), "token's gradient"),
            "in_place": (_fill_in_place, "in place"),
        },
    ),
    Exercise(
        "check_ogm_coefficients",
        "ogm_coeffs",
        {
            "both": (_ogm(both=True), "Both modalities"),
            "inverted": (_ogm(inverted=True), "ρ is inverted"),
            "weaker": (_ogm(weaker=True), "*weaker*"),
            "no_relu": (_ogm(no_relu=True), "without the relu"),
            "smooth": (_ogm(smooth=True), "smooth variant"),
            "ties": (_ogm(ties=True), "Equal scores"),
            "no_tanh": (_ogm(no_tanh=True), "tanh is missing"),
        },
    ),
    Exercise(
        "check_gradient_modulation",
        "scale_encoder_gradients",
        {
            "params": (_modulate("params"), "parameters changed"),
            "copy": (_modulate("copy"), "unchanged"),
            "one_minus": (_modulate("one_minus"), "1 − k"),
            "weights_only": (_modulate("weights_only"), "biases were not modulated"),
            "crash_on_none": (_modulate("crash_on_none"), "raised AttributeError"),
            "std_after": (_modulate("std_after"), "measure std(g) *before* scaling"),
            "unit_noise": (_modulate("unit_noise"), "std 1"),
            "param_std": (_modulate("param_std"), "*parameter's* std"),
            "no_noise": (_modulate("no_noise"), "no noise"),
        },
    ),
    Exercise(
        "check_distillation_loss",
        "kd_loss",
        {
            "no_t2": (_kd("no_t2"), "T² is missing"),
            "reversed": (_kd("reversed"), "reversed"),
            "probs": (_kd("probs"), "log-probabilities"),
            "mean": (_kd("mean"), "batchmean"),
            "swapped": (_kd("swapped"), "swapped"),
            "item": (_kd("item"), "backpropagate"),
        },
    ),
    Exercise(
        "check_pruning",
        "prune_hidden_units",
        {
            "smallest": (_prune("smallest"), "*smallest*"),
            "wrong_dim": (_prune("wrong_dim"), "Wrong axis"),
            "no_bias": (_prune("no_bias"), "bias is lost"),
            "no_slice": (_prune("no_slice"), "slice the next layer's input columns"),
            "in_place": (_prune("in_place"), "original layers were modified"),
            "l2": (_prune("l2"), "L2"),
        },
    ),
    Exercise(
        "check_small_loss_scores",
        "small_loss_score",
        {
            "loss": (lambda z, y: F.cross_entropy(z, y, reduction="none"), "That is the loss"),
            "mean": (lambda z, y: -F.cross_entropy(z, y), "averaged over the batch"),
            "probs": (lambda z, y: torch.softmax(z, -1).gather(1, y[:, None]).squeeze(1), "probabilities"),
            "argmax": (lambda z, y: F.log_softmax(z, -1).max(1).values, "predicted class"),
            "underflow": (lambda z, y: torch.log(torch.softmax(z, -1))[torch.arange(len(y)), y], "underflowed"),
            "axis": (lambda z, y: F.log_softmax(z, 0)[torch.arange(len(y)), y], "Wrong axis"),
        },
    ),
    Exercise(
        "check_keep_cleanest",
        "keep_cleanest",
        {
            "dirtiest": (_keep("dirtiest"), "*lowest*"),
            "floor": (_keep("floor"), "off by one"),
            "ceil": (_keep("ceil"), "off by one"),
            "threshold": (_keep("threshold"), "fraction of items"),
            "indices": (_keep("indices"), "indices"),
        },
    ),
    Exercise(
        "check_clip_loss",
        "symmetric_clip_loss",
        {
            "one_way": (_clip("one_way"), "Only image→text"),
            "divide": (_clip("divide"), "divided by the scale"),
            "no_norm": (_clip("no_norm"), "not normalised"),
            "raw_t": (_clip("raw_t"), "used t as the scale"),
            "sum": (_clip("sum"), "summed the two directions"),
            "item": (_clip("item"), "backpropagate"),
        },
    ),
    Exercise(
        "check_recall_at_k",
        "recall_at_k",
        {
            "off_by_one": (_recall("off_by_one"), "Off by one"),
            "columns": (_recall("columns"), "Wrong axis"),
            "ties": (_recall("strict"), "Ties"),
            "count": (_recall("count"), "count"),
            "topk": (_recall_topk, "a tie must count against the query"),
        },
    ),
    Exercise(
        "check_local_clip_loss",
        "my_local_clip_loss",
        {
            "no_offset": (_local_clip("no_offset"), "not offset"),
            "rank_offset": (_local_clip("rank_offset"), "not r·B"),
            "per_rank": (_local_clip("per_rank"), "per-rank loss"),
            "one_way": (_local_clip("one_way"), "Only image→text"),
            "text_text": (_local_clip("text_text"), "captions with captions"),
            "item": (_local_clip("item"), "backpropagate"),
        },
    ),
    Exercise(
        "check_condition_accuracy",
        "expected_condition_accuracy",
        {slip: (_expected_acc(slip), keyword) for slip, keyword in EXPECTED_ACC_SLIPS.items()}
        | {
            "mean": (lambda acc, rates: float(np.mean(list(acc.values()))), "plain mean"),
            "complete_only": (lambda acc, rates: acc[(True,) * len(rates)], "every modality present"),
        },
    ),
]

BY_CHECKER = {e.checker: e for e in EXERCISES}
WRONG = [(e.checker, name) for e in EXERCISES for name in e.wrong]


def _garbage(kind):
    def fn(*args, **kwargs):
        if kind == "raises":
            return 1 / 0
        return {
            "none": None,
            "string": "hello",
            "shape": torch.full((7, 3), float("nan")),
            "ints": torch.arange(3),
            "nan": float("nan"),
            "pair": (torch.zeros(2), "x"),
            "array": np.ones((2, 2, 2)),
        }[kind]

    return fn


# ---------------------------------------------------------------------------------------------- the tests


def test_every_public_checker_is_tested_and_has_a_starter_and_a_solution():
    public = {n for n in ex.__all__ if n.startswith("check_")}
    assert public == set(BY_CHECKER)
    for e in EXERCISES:
        assert callable(getattr(sol, e.solution)) and callable(getattr(starter, e.solution))
        assert getattr(ex, e.checker).__doc__
        assert len(e.wrong) >= 3, f"{e.checker} needs at least three wrong answers"


@pytest.mark.parametrize("checker", list(BY_CHECKER))
def test_the_solution_passes(checker, capsys):
    result = getattr(ex, checker)(getattr(sol, BY_CHECKER[checker].solution))
    out = capsys.readouterr().out
    assert result.status == "pass", result.message
    assert result.passed and "✅" in out and "correct" in out and out.count("\n") == 1


@pytest.mark.parametrize("checker", list(BY_CHECKER))
def test_a_stub_is_not_attempted_and_does_not_raise(checker, capsys):
    result = getattr(ex, checker)(getattr(starter, BY_CHECKER[checker].solution))
    out = capsys.readouterr().out
    assert result.status == "not attempted" and not result.passed
    assert "not attempted yet" in out and "Traceback" not in out


@pytest.mark.parametrize("checker,mistake", WRONG, ids=[f"{c[6:]}-{m}" for c, m in WRONG])
def test_a_typical_mistake_fails_with_a_message_that_names_it(checker, mistake, capsys):
    fn, keyword = BY_CHECKER[checker].wrong[mistake]
    result = getattr(ex, checker)(fn)
    out = capsys.readouterr().out
    assert result.status == "fail", result.message
    assert keyword in result.message, result.message
    assert out.strip() == result.message and "❌" in out


@pytest.mark.parametrize("kind", ["none", "string", "shape", "ints", "nan", "pair", "array", "raises"])
@pytest.mark.parametrize("checker", list(BY_CHECKER))
def test_garbage_fails_without_raising(checker, kind):
    result = getattr(ex, checker)(_garbage(kind))
    assert result.status == "fail", result.message
    if kind == "raises":
        assert "ZeroDivisionError" in result.message and " on " in result.message


def test_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    np.random.seed(123)
    ex.check_presence_mask(_mask_no_generator)
    ex.check_gradient_modulation(sol.scale_encoder_gradients)
    ex.check_low_rank_fusion(sol.low_rank_fusion_forward)  # builds a LowRankFusion (random init) for reference
    a, b = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    assert torch.equal(a, torch.rand(3)) and np.array_equal(b, np.random.rand(3))


LESSON_OF = {
    "check_std_over_seeds": "00_setup",
    "check_soft_min": "01_alignment",
    "check_soft_dtw": "01_alignment",
    "check_low_rank_fusion": "02_fusion",
    "check_tensor_fusion": "02_fusion",
    "check_presence_mask": "03_missing_modalities",
    "check_token_fill": "03_missing_modalities",
    "check_ogm_coefficients": "04_imbalance",
    "check_gradient_modulation": "04_imbalance",
    "check_distillation_loss": "05_deployment",
    "check_pruning": "05_deployment",
    "check_small_loss_scores": "06_pitfalls",
    "check_keep_cleanest": "06_pitfalls",
    "check_clip_loss": "07_contrastive",
    "check_recall_at_k": "07_contrastive",
    "check_local_clip_loss": "08_scale_out",
    "check_condition_accuracy": "09_capstone",
}


@pytest.mark.parametrize("checker", list(BY_CHECKER))
def test_the_lesson_ships_a_starter_and_a_hidden_solution_that_passes(checker):
    name, lesson = BY_CHECKER[checker].solution, LESSON_OF[checker]
    starters = [c for c in CELLS if c.kind == "starter" and name in c.functions]
    solutions = [c for c in CELLS if c.kind == "solution" and name in c.functions]
    assert [c.lesson for c in starters] == [lesson], f"{name}: one starter cell, in {lesson}"
    assert [c.lesson for c in solutions] == [lesson], f"{name}: one solution cell, in {lesson}"
    assert "raise NotImplementedError" in starters[0].source and "not attempted yet" not in starters[0].printed
    solution = solutions[0]
    assert solution.source.startswith("# @title Solution"), "Colab shows it as a collapsed form"
    assert f"{checker}({name})" in solution.source and "✅" in solution.printed, solution.printed


def test_solution_cells_are_collapsed_in_the_notebooks_learners_open():
    import nbformat

    for lesson in sorted({c.lesson for c in CELLS if c.kind == "solution"}):
        nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
        assert tagged, f"{lesson}.ipynb lost its solution tags (jupytext cell_metadata_filter)"
        for cell in tagged:
            assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, f"{lesson}: solution not collapsed"


def test_the_result_displays_nothing_more_in_a_notebook():
    result = ex.ExerciseResult("x", "pass", "✅ x")
    assert result._ipython_display_() is None and result.passed
    assert set(ex.STATUSES) == {"not attempted", "pass", "fail"}


def test_mmlab_exercises_never_imports_a_lesson_module():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(ex.__file__).read_text())
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any("lessons" in n for n in names), names
