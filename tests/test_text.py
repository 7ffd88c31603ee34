import pytest
import torch

from mmlab.text import WordTokenizer, bag_of_words, hub_reachable, load_text_encoder


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


def test_hub_failure_falls_back_to_packaged_model(capsys):
    enc = load_text_encoder("bert-base-uncased", offline=False)
    out = capsys.readouterr().out
    assert "could not load 'bert-base-uncased' from the hub" in out
    assert enc.source.startswith("packaged:") and enc.dim == 384


def test_bag_of_words_counts_and_ignores_padding():
    ids = torch.tensor([[2, 3, 2, 0], [1, 0, 0, 0]])
    v = bag_of_words(ids, 5)
    assert v.tolist() == [[0, 0, 2, 1, 0], [0, 1, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"ids must be in \[0, 3\)"):
        bag_of_words(ids, 3)
