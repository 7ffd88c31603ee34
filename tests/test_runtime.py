import random

import numpy as np
import pytest
import torch

import mmlab
from mmlab.runtime import amp_dtype, autocast, require_torch, resolve_device, seeded


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


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None) == mmlab.get_device()
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("not-a-device")


def test_seeded_reproduces_seed_everything_and_restores_the_callers_state():
    mmlab.seed_everything(3)
    inside_ref = (torch.rand(2), np.random.rand(), random.random())
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    with seeded(3) as gen:
        inside = (torch.rand(2), np.random.rand(), random.random())
        assert isinstance(gen, torch.Generator) and gen.initial_seed() == 3
    assert torch.equal(inside[0], inside_ref[0]) and inside[1:] == inside_ref[1:]
    assert torch.equal(torch.get_rng_state(), before[0])
    assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]
    with pytest.raises(RuntimeError), seeded(1):  # restored on errors too
        torch.rand(1)
        raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), before[0])
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        with seeded(-1):
            pass


def test_require_torch_names_the_feature(monkeypatch):
    require_torch("anything")  # the installed torch meets the course's floor
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(RuntimeError, match=r"export needs torch >= 2.6, found 2.5.1"):
        require_torch("export")
    monkeypatch.setattr(torch, "__version__", "2.10.0")
    require_torch("export")  # 2.10 > 2.6: compared as numbers, not strings
