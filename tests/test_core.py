import numpy as np
import pytest
import torch

import mmlab
from mmlab.checks import check_choice, check_fraction, check_same_batch, check_tensor
from mmlab.runtime import amp_dtype, autocast


def test_get_device_cpu_fallback_and_override(monkeypatch):
    monkeypatch.delenv("MMLAB_DEVICE", raising=False)
    dev = mmlab.get_device()
    assert dev.type in ("cpu", "cuda", "mps")
    assert mmlab.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("MMLAB_DEVICE", "cpu")
    assert mmlab.get_device() == torch.device("cpu")


def test_seed_everything_is_reproducible():
    g1 = mmlab.seed_everything(3)
    a = (torch.rand(3), np.random.rand(), torch.rand(2, generator=g1))
    g2 = mmlab.seed_everything(3)
    b = (torch.rand(3), np.random.rand(), torch.rand(2, generator=g2))
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(ValueError, match="seed"):
        mmlab.seed_everything(-1)


def test_no_amp_on_cpu():
    assert amp_dtype("cpu") is None
    with autocast("cpu"):
        x = torch.ones(2, 2) @ torch.ones(2, 2)
    assert x.dtype == torch.float32


def test_check_tensor_errors_name_argument_and_shape():
    x = torch.zeros(4, 3)
    assert check_tensor("x", x, ("B", 3)) is x
    with pytest.raises(ValueError, match=r"features must have shape \(B, 5\), got \(4, 3\)"):
        check_tensor("features", x, ("B", 5))
    with pytest.raises(TypeError, match="features must be a torch.Tensor"):
        check_tensor("features", [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        check_tensor("x", torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="dtype int"):
        check_tensor("ids", x, dtype="int")
    sizes: dict = {}
    check_tensor("a", torch.zeros(2, 5), ("B", "D"), sizes=sizes)
    with pytest.raises(ValueError, match="B=2"):
        check_tensor("b", torch.zeros(3, 5), ("B", "D"), sizes=sizes)


def test_small_checks():
    assert check_same_batch(a=torch.zeros(2), b=torch.zeros(2, 3)) == 2
    with pytest.raises(ValueError, match="a=2, b=3"):
        check_same_batch(a=torch.zeros(2), b=torch.zeros(3))
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        check_fraction("rate", 1.0, closed_right=False)
    with pytest.raises(ValueError, match="mode must be one of"):
        check_choice("mode", "x", ["a", "b"])
