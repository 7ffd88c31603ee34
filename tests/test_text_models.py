import pytest
import torch

from mmlab.models import AudioCNN, ImageCNN, MLPEncoder, MultimodalClassifier, TextBagEncoder, masked_mean
from mmlab.text import WordTokenizer, hub_reachable, load_text_encoder


def test_word_tokenizer_pads_and_masks():
    tok = WordTokenizer(["a handwritten seven", "the digit 7"])
    ids, mask = tok(["a seven zebra", "the"])
    assert ids.shape == mask.shape == (2, 3)
    assert ids[0, 2] == 1 and mask.tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(TypeError, match="list of strings"):
        tok("a seven")
    with pytest.raises(ValueError, match="non-empty"):
        WordTokenizer([])


def test_hub_is_not_reached_offline():
    assert hub_reachable() is False


def test_text_encoder_offline_fallback_says_which_model(capsys):
    enc = load_text_encoder("bert-base-uncased")
    assert enc.source.startswith("packaged:all-MiniLM-L6-v2") and "bert-base-uncased" in enc.source
    assert "packaged:all-MiniLM-L6-v2" in capsys.readouterr().out
    emb = enc.encode(["a handwritten seven", "the digit 7", "a red circle"])
    assert emb.shape == (3, 384)
    e = torch.nn.functional.normalize(emb, dim=-1)
    assert e[0] @ e[1] > e[0] @ e[2], "pretrained embeddings put paraphrases closer than unrelated text"
    with pytest.raises(TypeError, match="list of strings"):
        enc(["ok", "fine"][0])


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


def test_hub_failure_falls_back_to_packaged_model(capsys):
    enc = load_text_encoder("bert-base-uncased", offline=False)
    out = capsys.readouterr().out
    assert "could not load 'bert-base-uncased' from the hub" in out
    assert enc.source.startswith("packaged:") and enc.dim == 384
