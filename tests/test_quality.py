import math

import numpy as np
import pytest
import torch

from mmlab.quality import (
    PairScorer,
    agreement_scores,
    auroc,
    filter_by_keep_fraction,
    filter_by_threshold,
    filter_report,
    inject_noise,
    precision_recall_curve,
    small_loss_scores,
    soft_weights,
    warmup_scores,
    weighted_cross_entropy,
)


def _labels(n=200, c=10, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, c, n))


# ---------------------------------------------------------------------------------------------- noise injection


@pytest.mark.parametrize("mismatch,label_noise", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.25), (0.5, 0.4), (1.0, 1.0)])
def test_inject_noise_exact_fractions_and_records(mismatch, label_noise):
    y = _labels(200)
    noise = inject_noise(y, mismatch=mismatch, label_noise=label_noise, num_classes=10, seed=3)
    assert int(noise.mismatched.sum()) == round(mismatch * 200)
    assert int(noise.wrong_label.sum()) == round(label_noise * 200)
    # every recorded change is real, and nothing else changed
    changed = noise.partner != torch.arange(200)
    assert torch.equal(changed, noise.mismatched)
    assert (y[noise.partner[noise.mismatched]] != y[noise.mismatched]).all(), "a partner has another class"
    assert torch.equal(noise.labels != y, noise.wrong_label)
    assert torch.equal(noise.clean_labels, y)
    assert torch.equal(noise.noisy, noise.mismatched | noise.wrong_label)
    assert noise.labels.min() >= 0 and noise.labels.max() < 10


def test_inject_noise_rounds_and_is_deterministic():
    y = _labels(7)
    noise = inject_noise(y, mismatch=0.3, label_noise=0.5, num_classes=10, seed=1)
    assert int(noise.mismatched.sum()) == 2 and int(noise.wrong_label.sum()) == 4  # round(2.1), round(3.5)
    again = inject_noise(y, mismatch=0.3, label_noise=0.5, num_classes=10, seed=1)
    assert torch.equal(noise.partner, again.partner) and torch.equal(noise.labels, again.labels)
    other = inject_noise(_labels(200), mismatch=0.3, seed=2)
    assert not torch.equal(other.partner, inject_noise(_labels(200), mismatch=0.3, seed=3).partner)


def test_pair_applies_the_partner():
    y = _labels(50)
    noise = inject_noise(y, mismatch=0.4, seed=0)
    x = torch.arange(50).float()[:, None].repeat(1, 3)
    assert torch.equal(noise.pair(x)[:, 0].long(), noise.partner)
    with pytest.raises(ValueError, match=r"x must have shape \(50, \*\)"):
        noise.pair(torch.zeros(49, 3))


@pytest.mark.parametrize("kwargs,name", [({"mismatch": 1.2}, "mismatch"), ({"label_noise": -0.1}, "label_noise")])
def test_inject_noise_rejects_fractions_outside_unit_interval(kwargs, name):
    with pytest.raises(ValueError, match=rf"{name} must be in \[0, 1\]"):
        inject_noise(_labels(), **kwargs)


def test_inject_noise_other_errors():
    with pytest.raises(ValueError, match="labels must have shape"):
        inject_noise(torch.zeros(4, 2, dtype=torch.long), mismatch=0.5)
    with pytest.raises(TypeError, match="labels must have dtype int"):
        inject_noise(torch.zeros(4), mismatch=0.5)
    with pytest.raises(ValueError, match="at least two classes"):
        inject_noise(torch.zeros(10, dtype=torch.long), mismatch=0.5)
    with pytest.raises(ValueError, match="num_classes"):
        inject_noise(torch.tensor([0, 5]), label_noise=0.5, num_classes=3)


# ---------------------------------------------------------------------------------------------- scores and filters


def test_agreement_scores_is_row_cosine():
    a = torch.randn(6, 4)
    assert torch.allclose(agreement_scores(a, 3 * a), torch.ones(6), atol=1e-6)
    assert torch.allclose(agreement_scores(a, -a), -torch.ones(6), atol=1e-6)
    with pytest.raises(ValueError, match=r"emb_b must have shape \(N, D\) with N=6"):
        agreement_scores(a, torch.randn(5, 4))


def test_small_loss_scores_is_log_likelihood():
    z, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    assert torch.allclose(small_loss_scores(z, y), torch.log_softmax(z, -1)[torch.arange(5), y])
    with pytest.raises(ValueError, match=r"labels must have shape \(5\)"):
        small_loss_scores(z, y[:4])


def test_auroc_extremes_ties_and_reference():
    noisy = torch.tensor([True, True, False, False, False])
    assert auroc(torch.tensor([0.0, 0.1, 0.5, 0.6, 0.9]), noisy) == 1.0
    assert auroc(torch.tensor([0.9, 0.8, 0.1, 0.2, 0.3]), noisy) == 0.0
    assert auroc(torch.ones(5), noisy) == 0.5
    rng = np.random.default_rng(0)
    bad = rng.random(300) < 0.3
    s = rng.normal(size=300) + 1.0 * ~bad
    s[:20] = np.round(s[:20])  # some ties
    # reference: the definition, over all clean/noisy pairs
    diff = s[~bad][:, None] - s[bad][None, :]
    ref = ((diff > 0) + 0.5 * (diff == 0)).mean()
    assert auroc(torch.from_numpy(s), torch.from_numpy(bad)) == pytest.approx(ref, abs=1e-12)


def test_scores_of_wrong_length_are_rejected():
    s = torch.randn(10)
    with pytest.raises(ValueError, match=r"noisy must have shape \(10\)"):
        auroc(s, torch.zeros(9, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"noisy must have shape \(10\)"):
        precision_recall_curve(s, torch.zeros(11, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"noisy must have shape \(10\)"):
        filter_report(torch.ones(10, dtype=torch.bool), torch.zeros(12, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"scores must have shape \(\*\)"):
        filter_by_threshold(torch.randn(10, 2), 0.0)
    with pytest.raises(ValueError, match="both clean and noisy"):
        auroc(s, torch.zeros(10, dtype=torch.bool))


def test_precision_recall_curve_matches_brute_force():
    rng = np.random.default_rng(1)
    bad = torch.from_numpy(rng.random(60) < 0.4)
    s = torch.from_numpy(np.round(rng.normal(size=60), 1))  # ties: one point per distinct score
    pr = precision_recall_curve(s, bad)
    assert len(pr["threshold"]) == len(torch.unique(s))
    assert (np.diff(pr["threshold"]) > 0).all() and (np.diff(pr["recall"]) >= 0).all()
    for t, p, r in zip(pr["threshold"], pr["precision"], pr["recall"]):
        flagged = s <= t
        assert p == pytest.approx(float((flagged & bad).sum()) / float(flagged.sum()))
        assert r == pytest.approx(float((flagged & bad).sum()) / float(bad.sum()))
    assert pr["recall"][-1] == 1.0 and pr["precision"][-1] == pytest.approx(float(bad.float().mean()))
    with pytest.raises(ValueError, match="at least one noisy"):
        precision_recall_curve(s, torch.zeros(60, dtype=torch.bool))


def test_auroc_agrees_with_scikit_learn_sign_convention():
    """Clean items score high: a score that ranks every clean item above every noisy one has AUROC 1."""
    rng = np.random.default_rng(2)
    bad = torch.from_numpy(rng.random(100) < 0.3)
    s = torch.randn(100, dtype=torch.float64) + 2.0 * (~bad)
    assert auroc(s, bad) == pytest.approx(1 - auroc(-s, bad))
    assert auroc(s, bad) > 0.8


def test_filter_at_minus_infinity_keeps_everything():
    s = torch.randn(100) * 1e6
    assert filter_by_threshold(s, -math.inf).all()
    assert not filter_by_threshold(s, math.inf).any()
    assert torch.equal(filter_by_threshold(s, 0.0), s >= 0)
    with pytest.raises(ValueError, match="threshold"):
        filter_by_threshold(s, float("nan"))


def test_filter_by_keep_fraction_keeps_the_top_items():
    s = torch.tensor([0.3, 0.9, 0.1, 0.5, 0.7])
    assert filter_by_keep_fraction(s, 0.4).tolist() == [False, True, False, False, True]
    assert filter_by_keep_fraction(s, 1.0).all() and not filter_by_keep_fraction(s, 0.0).any()
    with pytest.raises(ValueError, match=r"keep must be in \[0, 1\]"):
        filter_by_keep_fraction(s, 1.5)


def test_filter_report():
    keep = torch.tensor([True, True, True, False, False])
    noisy = torch.tensor([False, False, True, True, False])
    rep = filter_report(keep, noisy)
    assert rep["kept_precision"] == pytest.approx(2 / 3) and rep["kept_recall"] == pytest.approx(2 / 3)
    assert rep["noise_precision"] == pytest.approx(1 / 2) and rep["noise_recall"] == pytest.approx(1 / 2)
    assert rep["kept"] == pytest.approx(3 / 5)
    assert math.isnan(filter_report(torch.zeros(5, dtype=torch.bool), noisy)["kept_precision"])


def test_soft_weights_approach_the_hard_filter():
    s = torch.linspace(-1, 1, 21)
    w = soft_weights(s, 0.05, 1e-4)
    assert torch.equal(w > 0.5, filter_by_threshold(s, 0.05))
    assert ((w < 1e-6) | (w > 1 - 1e-6)).all()
    with pytest.raises(ValueError, match="temperature"):
        soft_weights(s, 0.0, 0.0)


def test_weighted_cross_entropy():
    z, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    plain = torch.nn.functional.cross_entropy(z, y)
    assert torch.allclose(weighted_cross_entropy(z, y, torch.full((6,), 0.3)), plain)
    w = torch.tensor([1.0, 0.0, 2.0, 0.0, 1.0, 0.0])
    ce = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert torch.allclose(weighted_cross_entropy(z, y, w), (ce[0] + 2 * ce[2] + ce[4]) / 4)
    with pytest.raises(ValueError, match="non-negative"):
        weighted_cross_entropy(z, y, -torch.ones(6))
    with pytest.raises(ValueError, match=r"weights must have shape \(B\) with B=6"):
        weighted_cross_entropy(z, y, torch.ones(5))


def _blobs(n=400, seed=0, d=(6, 5)):
    """Two modalities, each a noisy one-hot-ish code of the label (4 classes)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    protos = [torch.randn(4, k, generator=g) * 2 for k in d]
    xs = [p[y] + torch.randn(n, p.shape[1], generator=g) for p in protos]
    return xs, y


def test_warmup_scores_detect_mismatched_pairs_and_wrong_labels():
    xs, y = _blobs(600, seed=1)
    noise = inject_noise(y, mismatch=0.3, label_noise=0.2, num_classes=4, seed=0)
    scores = warmup_scores([xs[0], noise.pair(xs[1])], noise.labels, epochs=6, seed=0, device="cpu", progress=False)
    assert auroc(scores.agreement, noise.mismatched) > 0.8
    assert auroc(scores.loglik, noise.wrong_label) > 0.8
    assert scores.agreement.shape == (600,) and scores.agreement.min() >= 0 and scores.agreement.max() <= 1 + 1e-6


def test_warmup_scores_is_seeded_and_leaves_the_global_rng_alone():
    xs, y = _blobs(120, seed=2)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = warmup_scores(xs, y, epochs=2, seed=5, device="cpu", progress=False)
    assert torch.equal(torch.get_rng_state(), before), "warmup_scores must not reseed the caller's RNG"
    b = warmup_scores(xs, y, epochs=2, seed=5, device="cpu", progress=False)
    assert torch.equal(a.loglik, b.loglik) and torch.equal(a.agreement, b.agreement)
    c = warmup_scores(xs, y, epochs=2, seed=6, device="cpu", progress=False)
    assert not torch.equal(a.loglik, c.loglik)
    assert a.embedding_agreement.shape == (120,) and a.loglik.max() <= 0


def test_warmup_scores_errors():
    xs, y = _blobs(20)
    with pytest.raises(ValueError, match="two tensors"):
        warmup_scores(xs[:1], y, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(N, \*\) with N=20"):
        warmup_scores([xs[0], xs[1][:10]], y, epochs=1, progress=False)


def test_pair_scorer_errors():
    with pytest.raises(ValueError, match="two modalities"):
        PairScorer([3], 2)
    s = PairScorer([3, 4], 2)
    with pytest.raises(ValueError, match=r"x2 must have shape \(B, 4\) with B=5"):
        s(torch.randn(5, 3), torch.randn(6, 4))
