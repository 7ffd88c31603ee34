"""Tests of mmlab.deploy.export: ONNX export, ONNX Runtime sessions and the parity check."""

from __future__ import annotations

import pytest
import torch
from multimodal_inputs import MODALITIES, mm_inputs
from torch import nn

from mmlab.deploy import export_onnx, onnx_parity, onnx_run, onnx_session


class ThreeInputs(nn.Module):
    """A small multimodal network with one input per modality (``forward(*inputs)``), dropout and an image
    flattened inside: the shape of model the exporter must handle."""

    def __init__(self):
        super().__init__()
        self.towers = nn.ModuleList([nn.Linear(64, 8), nn.Linear(40, 8), nn.Linear(12, 8)])
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(24, 10)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        z = [torch.relu(t(x.flatten(1))) for t, x in zip(self.towers, inputs)]
        return self.head(self.drop(torch.cat(z, -1)))


@pytest.fixture
def mm():
    torch.manual_seed(0)
    return ThreeInputs().eval()


def test_onnx_export_parity_any_batch(mm, tmp_path):
    path = export_onnx(mm, mm_inputs(2), tmp_path / "m.onnx", input_names=list(MODALITIES), output_name="logits")
    assert path.exists() and not (tmp_path / "m.onnx.data").exists()
    session = onnx_session(path)
    assert [i.name for i in session.get_inputs()] == list(MODALITIES)
    for b in (1, 7):
        assert onnx_parity(mm, session, *mm_inputs(b)) < 1e-4
    mm.train()
    assert onnx_parity(mm, session, *mm_inputs(2)) < 1e-4  # compared in eval mode ...
    assert mm.training  # ... and the model's mode is restored
    assert onnx_run(session, *mm_inputs(3)).shape == (3, 10)
    with pytest.raises(ValueError, match="takes 3 inputs"):
        onnx_run(session, *mm_inputs(3)[:2])
    with pytest.raises(ValueError, match="input_names"):
        export_onnx(mm, mm_inputs(2), tmp_path / "x.onnx", input_names=["a"])
    with pytest.raises(ValueError, match="must be non-empty strings"):
        export_onnx(mm, mm_inputs(2), tmp_path / "x.onnx", input_names=[64, 40, 12])


def test_export_names_the_torch_it_needs(monkeypatch, tmp_path):
    monkeypatch.setattr(torch, "__version__", "2.4.0")
    with pytest.raises(RuntimeError, match=r"export_onnx .* needs torch >= 2.6"):
        export_onnx(nn.Linear(2, 1), [torch.zeros(1, 2)], tmp_path / "m.onnx")
