"""Reference solutions of the course's code exercises, one function per exercise.

Each function's text (from ``def`` to its last line) is what goes into the lesson's hidden solution cell; the
imports a cell needs are listed in /work/brief/exercises_integration.md. tests/test_exercises.py runs every
solution through its checker in ``mmlab.exercises``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------- lesson 0


def std_over_seeds(acc):
    """Sample standard deviation over seeds, one value per setup: ``acc`` (n_seeds, n_setups) -> (n_setups,)."""
    n = acc.shape[0]
    mean = acc.mean(axis=0)  # one mean per setup (column)
    return (((acc - mean) ** 2).sum(axis=0) / (n - 1)) ** 0.5  # Bessel: divide by n - 1


# ---------------------------------------------------------------------------------------------- lesson 1


def soft_min(a, gamma):
    """Soft minimum over the last axis: ``-γ log Σ_k exp(-a_k / γ)``."""
    return -gamma * torch.logsumexp(-a / gamma, dim=-1)  # logsumexp subtracts the max before exp: no overflow


def soft_dtw_loops(cost, gamma):
    """Soft-DTW value of a cost matrix (N, M) by its recursion, with two loops."""
    n, m = cost.shape
    inf = torch.tensor(float("inf"), dtype=cost.dtype)
    R = [[inf] * (m + 1) for _ in range(n + 1)]  # R[i][j]: best soft cost of a path ending at (i, j)
    R[0][0] = torch.zeros((), dtype=cost.dtype)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            prev = torch.stack([R[i - 1][j - 1], R[i - 1][j], R[i][j - 1]])  # diagonal, up, left
            R[i][j] = cost[i - 1, j - 1] - gamma * torch.logsumexp(-prev / gamma, dim=0)
    return R[n][m]


# ---------------------------------------------------------------------------------------------- lesson 2


def low_rank_fusion_forward(features, factors):
    """LMF: ``h = Σ_r ⊙_m ([z_m; 1] @ W_m^(r))``; features[m] (B, d_m), factors[m] (R, d_m + 1, out)."""
    h = None
    for z, w in zip(features, factors):
        z1 = torch.cat([z, torch.ones(z.shape[0], 1, dtype=z.dtype)], dim=1)  # [z_m; 1]: (B, d_m + 1)
        a = torch.einsum("bi,rio->rbo", z1, w)  # every rank at once: (R, B, out)
        h = a if h is None else h * a  # product over modalities, rank by rank
    return h.sum(dim=0)  # sum over the rank: (B, out)


def tensor_fusion_features(features):
    """TFN's fused vector ``vec([z_1; 1] ⊗ ... ⊗ [z_M; 1])`` per sample: (B, Π(d_m + 1)), last modality fastest."""
    t = None
    for z in features:
        z1 = torch.cat([z, torch.ones(z.shape[0], 1, dtype=z.dtype)], dim=1)
        t = z1 if t is None else (t[:, :, None] * z1[:, None, :]).flatten(1)  # outer product, then flatten
    return t


# ---------------------------------------------------------------------------------------------- lesson 3


def sample_presence_mask(batch_size, rates, generator):
    """Presence mask (B, M), True = present: modality m dropped with probability rates[m]; never an empty row."""
    r = torch.tensor(rates, dtype=torch.float64)
    present = torch.rand(batch_size, len(r), generator=generator, dtype=torch.float64) >= r  # independent drops
    empty = ~present.any(dim=1)
    if empty.any():  # give each empty row one modality back, m with probability ∝ 1 - r_m
        back = torch.multinomial((1 - r).expand(int(empty.sum()), -1), 1, generator=generator).squeeze(1)
        present[empty] = F.one_hot(back, len(r)).bool()
    return present


def fill_with_token(z, present, token):
    """``z`` where the modality is present, the learned ``token`` where it is missing: (B, d)."""
    return torch.where(present[:, None], z, token)  # present (B, 1) against token (d,): one choice per sample


# ---------------------------------------------------------------------------------------------- lesson 4


def ogm_coeffs(score_a, score_b, alpha):
    """OGM's coefficients (k_a, k_b): the leader (ρ > 1) gets 1 - tanh(α·ρ), the other 1."""
    rho_a = float(score_a) / float(score_b)  # discrepancy ratio of a over b
    if rho_a > 1:
        return 1 - math.tanh(alpha * rho_a), 1.0
    if rho_a < 1:
        return 1.0, 1 - math.tanh(alpha / rho_a)  # b leads: its own ratio is 1/ρ_a
    return 1.0, 1.0


def scale_encoder_gradients(params, k, noise=False):
    """OGM-GE's step, in place: g <- k·g (+ N(0, std(g)²) noise with noise=True) for every parameter."""
    for p in params:
        if p.grad is None:  # unused in this step: nothing to modulate
            continue
        std = p.grad.std() if p.grad.numel() > 1 else p.grad.abs()  # measured before scaling
        p.grad.mul_(k)
        if noise:
            p.grad.add_(torch.randn_like(p.grad) * std)


# ---------------------------------------------------------------------------------------------- lesson 5


def kd_loss(student_logits, teacher_logits, target, temperature, alpha):
    """(1 - α)·CE(z_s, y) + α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)), KL averaged over the batch."""
    T = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / T, dim=-1),  # kl_div wants the student's log-probabilities...
        F.log_softmax(teacher_logits.detach() / T, dim=-1),  # ...and, with log_target=True, the teacher's too
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student_logits, target)
    return (1 - alpha) * hard + alpha * T**2 * soft


def prune_hidden_units(first, second, k):
    """Keep the k hidden units of ``first → ReLU → second`` with the largest L1 norm; return two smaller layers."""
    keep = first.weight.abs().sum(dim=1).topk(k).indices.sort().values  # one L1 norm per unit (row of W1)
    new_first = nn.Linear(first.in_features, k, dtype=first.weight.dtype)
    new_second = nn.Linear(k, second.out_features, dtype=second.weight.dtype)
    with torch.no_grad():
        new_first.weight.copy_(first.weight[keep])  # the kept units' incoming weights...
        new_first.bias.copy_(first.bias[keep])  # ...and biases
        new_second.weight.copy_(second.weight[:, keep])  # the next layer reads only the kept units
        new_second.bias.copy_(second.bias)
    return new_first, new_second


# ---------------------------------------------------------------------------------------------- lesson 6


def small_loss_score(logits, labels):
    """Quality score ``log p(y_i | x_i) = -CE(z_i, y_i)`` per item (N,): higher = cleaner."""
    return -F.cross_entropy(logits, labels, reduction="none")


def keep_cleanest(scores, keep):
    """Bool mask (N,) keeping the round(keep·N) items with the highest scores."""
    n_keep = int(round(keep * len(scores)))
    order = torch.argsort(scores, descending=True)  # cleanest first
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[order[:n_keep]] = True
    return mask


# ---------------------------------------------------------------------------------------------- lesson 7


def symmetric_clip_loss(image_emb, text_emb, logit_scale):
    """CLIP: ½[CE(S, arange B) + CE(Sᵀ, arange B)] with S = exp(t)·Î·T̂ᵀ (rows L2-normalised)."""
    i, t = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale.exp() * i @ t.T  # (B, B): row = an image against every caption
    target = torch.arange(len(logits))  # the matching caption sits on the diagonal
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def recall_at_k(sim, k):
    """Recall@K of row queries whose right answer is the diagonal; ties count against the query."""
    right = sim.diagonal()[:, None]
    others = ~torch.eye(len(sim), dtype=torch.bool)
    rank = 1 + ((sim >= right) & others).sum(dim=1)  # 1 = the right item beats every other one
    return (rank <= k).float().mean().item()
