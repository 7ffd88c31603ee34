"""Starter cells of the course's code exercises: signature and docstring, body ``raise NotImplementedError``.

The text of each function is what the lesson's exercise cell shows the learner; tests/test_exercises.py checks
that every checker answers a starter with its "not attempted yet" line instead of an error.
"""

from __future__ import annotations


def std_over_seeds(acc):
    """The sample standard deviation over seeds, one value per setup.

    acc: array (n_seeds, n_setups), e.g. test accuracies; row i = seed i, column j = setup j.
    Returns an array (n_setups,): s_j = sqrt( Σ_i (acc[i, j] - mean_j)² / (n_seeds - 1) ).
    """
    raise NotImplementedError


def soft_min(a, gamma):
    """Soft minimum over the last axis: min_γ(a) = -γ · log Σ_k exp(-a_k / γ).

    a: tensor (..., K); gamma > 0. Returns a tensor (...). Must not overflow for large a / γ, and must stay
    differentiable (no numpy, no .item()).
    """
    raise NotImplementedError


def soft_dtw_loops(cost, gamma):
    """Soft-DTW value of a cost matrix, by its recursion with two loops.

    cost: tensor (N, M); gamma > 0. Fill a table R of size (N+1) × (M+1) with R[0, 0] = 0 and R[i, 0] = R[0, j]
    = ∞ elsewhere, then for i = 1..N, j = 1..M:
        R[i, j] = cost[i-1, j-1] + min_γ(R[i-1, j-1], R[i-1, j], R[i, j-1]).
    Returns R[N, M] (a number or a 0-d tensor).
    """
    raise NotImplementedError


def low_rank_fusion_forward(features, factors):
    """Low-rank fusion (LMF): h = Σ_r ⊙_m ([z_m; 1] @ W_m^(r)).

    features: list of M tensors, features[m] of shape (B, d_m).
    factors: list of M tensors, factors[m] of shape (R, d_m + 1, out); factors[m][r] is W_m^(r) and its last row
    multiplies the appended 1. Returns a tensor (B, out).
    """
    raise NotImplementedError


def tensor_fusion_features(features):
    """Tensor fusion's fused vector: vec([z_1; 1] ⊗ [z_2; 1] ⊗ ... ⊗ [z_M; 1]) for every sample.

    features: list of M tensors, features[m] of shape (B, d_m). Returns a tensor (B, Π_m (d_m + 1)), flattened
    row-major (the last modality's index runs fastest), the layout of TensorFusion.weight.
    """
    raise NotImplementedError


def sample_presence_mask(batch_size, rates, generator):
    """A presence mask for modality dropout: bool tensor (batch_size, M), True = present.

    rates: list of M missing rates; modality m is dropped with probability rates[m], independently per sample
    and modality, with every random number drawn from `generator`. A row that lost every modality gets one back,
    modality m with probability ∝ 1 - rates[m] (torch.multinomial).
    """
    raise NotImplementedError


def fill_with_token(z, present, token):
    """Replace one modality's missing embeddings with a learned token.

    z: tensor (B, d); present: bool tensor (B,), True = present; token: tensor (d,) (an nn.Parameter).
    Returns a new tensor (B, d): row i is z[i] if present[i], else token. Gradients must reach the token.
    """
    raise NotImplementedError


def ogm_coeffs(score_a, score_b, alpha):
    """OGM's modulation coefficients (k_a, k_b) from the two modalities' scores (Peng et al. 2022, eq. 10).

    ρ = score_a / score_b. The leading modality (its own ratio > 1) gets k = 1 - tanh(α · ratio), the other
    keeps k = 1; equal scores give (1, 1). Scores may be floats or 0-d tensors. Returns two floats.
    """
    raise NotImplementedError


def scale_encoder_gradients(params, k, noise=False):
    """OGM-GE's modulation step for one encoder, in place, between loss.backward() and optimizer.step().

    For every parameter p in params that has a gradient: p.grad <- k · p.grad, and with noise=True also add
    Gaussian noise N(0, std(g)²), with std(g) the tensor's own gradient std measured before scaling. Returns None.
    """
    raise NotImplementedError


def kd_loss(student_logits, teacher_logits, target, temperature, alpha):
    """Distillation loss (Hinton et al. 2015): (1 - α)·CE(z_s, y) + α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)).

    student_logits, teacher_logits: (B, C); target: (B,) class ids; temperature T > 0; alpha α in [0, 1].
    The KL is averaged over the batch. Returns a 0-d tensor that backpropagates into the student.
    """
    raise NotImplementedError


def prune_hidden_units(first, second, k):
    """Structured pruning of a Linear → ReLU → Linear pair: keep k hidden units, really removed.

    Keep the k units with the largest L1 norm of their incoming weights (rows of first.weight). Return two new
    nn.Linear layers (first', second'): first' with those rows of the weight and entries of the bias, second'
    with those columns of its weight (and its whole bias). Do not modify first and second.
    """
    raise NotImplementedError


def small_loss_score(logits, labels):
    """Small-loss quality score of every item: log p(y_i | x_i) = -CE(z_i, y_i); higher = cleaner.

    logits: (N, C); labels: (N,) class ids. Returns a tensor (N,).
    """
    raise NotImplementedError


def keep_cleanest(scores, keep):
    """Keep the cleanest fraction: a bool mask (N,) that is True for the round(keep · N) highest scores.

    scores: tensor (N,), higher = cleaner; keep: a fraction in [0, 1].
    """
    raise NotImplementedError


def symmetric_clip_loss(image_emb, text_emb, logit_scale):
    """CLIP's loss: ½ [CE(S, arange(B)) + CE(Sᵀ, arange(B))] with S = exp(t) · Î T̂ᵀ.

    image_emb, text_emb: (B, D), row i of each is a matching pair (not yet normalised); logit_scale: a 0-d
    tensor t = ln(1/τ). Returns a 0-d tensor that backpropagates.
    """
    raise NotImplementedError


def recall_at_k(sim, k):
    """Recall@K: the share of queries (rows of sim) whose right item (the diagonal) ranks in the top K.

    sim: (Q, Q) similarities; rank_i = 1 + number of other columns j with sim[i, j] >= sim[i, i] (ties count
    against the query). Returns a float in [0, 1].
    """
    raise NotImplementedError
