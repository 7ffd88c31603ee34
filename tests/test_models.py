import pytest
import torch
from torch import nn

from mmlab.models import (
    AudioCNN,
    ImageCNN,
    MLPEncoder,
    MultimodalClassifier,
    TextBagEncoder,
    count_parameters,
    masked_mean,
    mlp,
)


def test_encoders_shapes_and_errors():
    assert MLPEncoder(64, 16)(torch.randn(5, 1, 8, 8)).shape == (5, 16)
    assert ImageCNN(16)(torch.randn(5, 1, 8, 8)).shape == (5, 16)
    audio = AudioCNN(32, 16)
    x = torch.randn(3, 20, 32)
    full = audio(x, torch.tensor([20, 20, 20]))
    assert full.shape == (3, 16)
    # padded frames must not change the embedding
    x2 = torch.cat([x, torch.randn(3, 5, 32) * 100], 1)
    assert torch.allclose(audio(x2, torch.tensor([20, 20, 20])), full, atol=1e-5)
    text = TextBagEncoder(10, 16)
    assert text(torch.tensor([[2, 3, 0], [4, 0, 0]])).shape == (2, 16)
    with pytest.raises(ValueError, match=r"image must have shape \(B, 1, \*, \*\)"):
        ImageCNN(16)(torch.randn(5, 3, 8, 8))
    with pytest.raises(ValueError, match="audio must have shape"):
        audio(torch.randn(3, 32, 20))
    with pytest.raises(ValueError, match="ids must be in"):
        text(torch.tensor([[11]]))
    with pytest.raises(ValueError, match="x must have 64 features"):
        MLPEncoder(64, 16)(torch.randn(2, 65))


def test_multimodal_classifier():
    m = MultimodalClassifier({"image": MLPEncoder(64, 8), "audio": AudioCNN(32, 8)}, num_classes=10)
    out = m(torch.randn(4, 1, 8, 8), (torch.randn(4, 10, 32), torch.tensor([10, 5, 3, 10])))
    assert out.shape == (4, 10)
    with pytest.raises(ValueError, match="expected 2 inputs"):
        m(torch.randn(4, 64))


def test_masked_mean():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(x, torch.tensor([[True, True, False]])).item() == 2.0


def test_mlp_builder_layers_and_init_order():
    m = mlp(10, [32, 16], 4, dropout=0.1, final_activation=True, flatten=True)
    kinds = [type(layer).__name__ for layer in m]
    assert kinds == ["Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU"]
    assert m(torch.randn(3, 2, 5)).shape == (3, 4)
    assert count_parameters(m) == (10 * 32 + 32) + (32 * 16 + 16) + (16 * 4 + 4)
    # same layers written by hand from the same seed: same parameters (numbers in lessons do not move)
    torch.manual_seed(0)
    built = mlp(6, 8, 3, final_activation=True)
    torch.manual_seed(0)
    by_hand = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.ReLU())
    for a, b in zip(built.state_dict().values(), by_hand.state_dict().values()):
        assert torch.equal(a, b)
    assert [type(layer).__name__ for layer in mlp(4, [], 2)] == ["Linear"]
    assert isinstance(mlp(4, 8, 2, activation=nn.GELU)[1], nn.GELU)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"in_dim": 0, "hidden": 4, "out_dim": 2}, "in_dim must be a positive int"),
        ({"in_dim": 3, "hidden": [4, -1], "out_dim": 2}, r"hidden\[1\] must be a positive int"),
        ({"in_dim": 3, "hidden": 4, "out_dim": 2.0}, "out_dim must be a positive int"),
        ({"in_dim": 3, "hidden": 4, "out_dim": 2, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_mlp_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mlp(**kwargs)


def test_audio_cnn_ignores_frames_past_each_length():
    """Each clip's own length: frames after it (however loud) never change its embedding."""
    torch.manual_seed(0)
    enc = AudioCNN(8, 4)
    x = torch.randn(3, 12, 8)
    lengths = torch.tensor([12, 7, 1])
    ref = enc(x, lengths)
    noisy = x.clone()
    for i, n in enumerate(lengths.tolist()):
        noisy[i, n:] = 1e3 * torch.randn(12 - n, 8)
    assert torch.allclose(enc(noisy, lengths), ref, atol=1e-4)
    # and the last real frame does count
    changed = x.clone()
    changed[1, 6] += 5.0
    assert not torch.allclose(enc(changed, lengths)[1], ref[1])
