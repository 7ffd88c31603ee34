"""Serving: batched inference with padding masks, and an LRU embedding cache keyed by content.

* :func:`pad_sequences` stacks variable-length items into ``(B, L_max, *F)`` with a mask ``(B, L_max)``;
  :func:`batched_inference` runs a model over a list of items in batches, in ``eval()`` mode under
  ``torch.inference_mode()``, sorting by length so that each batch pads as little as possible.
* :func:`content_key` keys an item by its content (never its identity); :class:`LRUCache` is a bounded mapping
  with least-recently-used eviction and hit/miss counts; :class:`CachedEncoder` wraps a batch encoder with it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_tensor
from ..train import eval_mode, to_device

__all__ = ["pad_sequences", "batched_inference", "content_key", "LRUCache", "CachedEncoder"]


def pad_sequences(seqs: Sequence[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length items ``(L_i, *F)`` into ``padded (B, L_max, *F)`` and ``mask (B, L_max)``.

    ``mask[b, t]`` is True at real positions (``t < L_b``) and False at padding, which holds ``pad_value``.
    Every item must share the trailing shape ``F`` and dtype; nothing is broadcast.
    """
    if isinstance(seqs, torch.Tensor) or not len(seqs):
        raise ValueError("seqs must be a non-empty list of tensors shaped (L, *F)")
    first = seqs[0]
    check_tensor("seqs[0]", first, finite=False)
    if first.dim() < 1:
        raise ValueError("seqs[0] must have shape (L, *F), got a 0-d tensor")
    for i, s in enumerate(seqs):
        check_tensor(f"seqs[{i}]", s, finite=False)
        if s.dim() != first.dim() or s.shape[1:] != first.shape[1:]:
            want = ", ".join(["L", *map(str, first.shape[1:])])
            raise ValueError(
                f"seqs[{i}] has shape {tuple(s.shape)} but seqs[0] has {tuple(first.shape)}: every item must be "
                f"({want})"
            )
        if s.dtype != first.dtype:
            raise TypeError(f"seqs[{i}] has dtype {s.dtype} but seqs[0] has {first.dtype}")
    lengths = torch.tensor([len(s) for s in seqs], device=first.device)
    padded = first.new_full((len(seqs), int(lengths.max()), *first.shape[1:]), pad_value)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    mask = torch.arange(padded.shape[1], device=first.device)[None] < lengths[:, None]
    return padded, mask


def _default_collate(items: Sequence[Any]):
    if all(isinstance(x, torch.Tensor) for x in items):
        if all(x.shape == items[0].shape for x in items):
            return torch.stack(list(items))
        return pad_sequences(items)
    return list(items)


@torch.inference_mode()
def batched_inference(
    model: Callable,
    items: Sequence[Any],
    *,
    batch_size: int = 64,
    collate: Callable[[Sequence[Any]], Any] | None = None,
    sort_by_length: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Run ``model`` over ``items`` in batches, in ``eval()`` mode under ``torch.inference_mode()``.

    ``collate(batch_items)`` builds the model's input; a tuple is passed as ``model(*args)``, a dict as
    ``model(**kwargs)``, anything else as ``model(x)``. The default stacks tensors of one shape (fixed-size
    features), pads tensors of different lengths into ``(padded, mask)`` with :func:`pad_sequences`, and
    passes other items (e.g. strings) as a list; for a sequence model pass ``collate=pad_sequences`` so that
    it always gets a mask, even when a batch happens to hold equal lengths. With ``sort_by_length`` items are
    batched in order of length (less padding to compute) and the outputs are put back in the input order.
    Returns the concatenated outputs on the CPU.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(items, (str, torch.Tensor)) or not len(items):
        raise ValueError("items must be a non-empty sequence (a list of samples)")
    collate = collate or _default_collate
    module = model if isinstance(model, nn.Module) else None
    if device is None and module is not None:
        device = next(module.parameters(), torch.empty(0)).device
    order = list(range(len(items)))
    if sort_by_length:
        order.sort(key=lambda i: len(items[i]) if hasattr(items[i], "__len__") else 0)
    outs = []
    with eval_mode(module):
        for start in range(0, len(order), batch_size):
            x = collate([items[i] for i in order[start : start + batch_size]])
            if device is not None:
                x = to_device(x, torch.device(device))
            y = model(*x) if isinstance(x, tuple) else model(**x) if isinstance(x, dict) else model(x)
            outs.append(y.detach().float().cpu())
    out = torch.cat(outs)
    restored = torch.empty_like(out)
    restored[torch.tensor(order)] = out
    return restored


# --------------------------------------------------------------------------------------------------------------
# Caching: an LRU cache keyed by content
# --------------------------------------------------------------------------------------------------------------


def content_key(x: Any) -> Hashable:
    """A hashable key that depends on an item's content, never on its identity.

    Tensors and arrays: ``(dtype, shape, BLAKE2b-128 digest of the bytes)`` (so equal content gives equal keys
    and an in-place edit gives a new key); str, bytes, int (e.g. a sample id) and None: themselves; tuples and
    lists: the tuple of their items' keys. A tensor's own ``hash`` is its ``id()``: never use a tensor as a key.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous().reshape(-1)
        digest = hashlib.blake2b(t.view(torch.uint8).numpy().tobytes(), digest_size=16).hexdigest()
        return ("tensor", str(x.dtype), tuple(x.shape), digest)
    if isinstance(x, np.ndarray):
        return content_key(torch.from_numpy(np.ascontiguousarray(x)))
    if isinstance(x, (str, bytes, int, float, bool)) or x is None:
        return (type(x).__name__, x)
    if isinstance(x, (tuple, list)):
        return ("seq", tuple(content_key(v) for v in x))
    raise TypeError(f"content_key supports tensors, arrays, str, bytes, numbers and tuples, got {type(x).__name__}")


@dataclass
class LRUCache:
    """A bounded mapping that evicts the least recently used entry when full (``capacity`` entries at most).

    Counts ``hits``, ``misses`` and ``evictions``; ``hit_rate = hits / (hits + misses)``.
    """

    capacity: int
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    _data: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self):
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {self.capacity!r}")

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value stored under ``key`` (and mark it recently used), or ``default``; counts a hit or a miss."""
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        return default

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key``, evicting the least recently used entry if the cache is full."""
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)
            self.evictions += 1

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0

    def clear(self) -> None:
        """Forget every entry and reset the counters."""
        self._data.clear()
        self.hits = self.misses = self.evictions = 0


class CachedEncoder:
    """Wrap a batch encoder ``fn(list_of_items) -> (B, D)`` with an :class:`LRUCache` keyed by ``key_fn(item)``
    (default :func:`content_key`; pass e.g. a sample-id function instead).

    A call looks every item up, encodes only the distinct misses, in one batch, stores their rows and returns
    ``(B, D)`` in the order of the items. Stored rows are detached copies, so editing a returned tensor never
    changes the cache.
    """

    def __init__(self, fn: Callable[[list], torch.Tensor], capacity: int = 1024, key_fn: Callable = content_key):
        self.fn = fn
        self.key_fn = key_fn
        self.cache = LRUCache(capacity)

    def __call__(self, items: Sequence[Any]) -> torch.Tensor:
        if isinstance(items, (str, torch.Tensor)) or not len(items):
            raise ValueError("items must be a non-empty sequence (a list of samples)")
        keys = [self.key_fn(x) for x in items]
        rows: list[torch.Tensor | None] = [self.cache.get(k) for k in keys]
        todo: dict[Hashable, int] = {}
        for i, (k, r) in enumerate(zip(keys, rows)):
            if r is None and k not in todo:
                todo[k] = i
        if todo:
            with torch.inference_mode():
                new = self.fn([items[i] for i in todo.values()])
            check_tensor("fn(items)", new, (len(todo), *([None] * (new.dim() - 1))), finite=False)
            fresh = {k: new[j].detach().clone() for j, k in enumerate(todo)}
            for k, v in fresh.items():
                self.cache.put(k, v)
            rows = [fresh[k] if r is None else r for k, r in zip(keys, rows)]
        return torch.stack(rows)

    @property
    def hit_rate(self) -> float:
        return self.cache.hit_rate
