import numpy as np
import pytest
from scipy import stats as sps

from mmlab.stats import format_spread, paired_bootstrap, sample_std, sign_count, spread


def test_spread_uses_ddof_1():
    v = [0.80, 0.82, 0.86, 0.84]
    s = spread(v)
    assert s.std == pytest.approx(np.std(v, ddof=1)) and s.n == 4 and (s.min, s.max) == (0.80, 0.86)
    assert format_spread(v, 100, "%") == "83.0 ± 2.6% (80.0–86.0, n = 4)"
    assert np.isnan(sample_std([0.5])) and "n/a" in format_spread([0.5])
    assert np.allclose(sample_std(np.array([[1.0, 2.0], [3.0, 6.0]])), [np.sqrt(2), np.sqrt(8)])
    with pytest.raises(ValueError, match=r"values must be one value per seed"):
        spread(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        spread([0.1, float("nan")])


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(1)
    b = rng.normal(0.7, 0.05, size=200)
    a = b + 0.02 + rng.normal(0, 0.01, size=200)  # a beats b by 2 points on every paired unit, with noise
    ci = paired_bootstrap(a, b, seed=3)
    assert ci.low < 0.02 < ci.high and ci.low > 0.015 and ci.excludes_zero()
    # close to the t interval for the mean difference on many units
    t_lo, t_hi = sps.t.interval(0.95, 199, loc=(a - b).mean(), scale=sps.sem(a - b))
    assert ci.low == pytest.approx(t_lo, abs=5e-4) and ci.high == pytest.approx(t_hi, abs=5e-4)
    assert paired_bootstrap(a, b, seed=3) == ci, "deterministic for a seed"
    same = paired_bootstrap([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert (same.low, same.high) == (0.5, 0.5)
    assert not paired_bootstrap([1.0, 0.0], [0.0, 1.0]).excludes_zero()
    text = same.format(100, " pts")
    assert text.startswith("+50.0 [+50.0, +50.0] pts (95% paired bootstrap CI, n = 3)"), text
    assert text.count("pts") == 1, "the unit is printed once"
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 2"):
        paired_bootstrap([1.0], [0.0])


def test_sign_count_with_margin():
    assert sign_count([0.9, 0.8, 0.7], [0.85, 0.8, 0.5], margin=0.01) == 2
    assert sign_count([0.9, 0.8, 0.7], [0.85, 0.8, 0.5], margin=0.1) == 1
