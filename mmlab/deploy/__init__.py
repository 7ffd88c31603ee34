"""Deployment: make a trained multimodal model smaller and faster, and measure what it costs in accuracy.

One module per concept; every public name is re-exported here, so ``from mmlab.deploy import X`` works for all:

============================  ========================================================================
concept                       module and names
============================  ========================================================================
distillation                  :mod:`mmlab.deploy.distillation`: ``distillation_loss``, ``distill``
                              (Hinton et al. 2015)
compression                   :mod:`mmlab.deploy.compression`: structured pruning that rebuilds smaller
                              layers (``prune_structured``, ``prunable_pairs``, ``unit_importance``:
                              L1 norm, Li et al. 2017, or the rescaling-invariant Taylor score,
                              Molchanov et al. 2017), mask
                              pruning for contrast (``prune_with_masks``), counts
                              (``count_nonzero_parameters``, ``sparsity``, ``model_size_bytes``), dynamic
                              int8 quantization (``quantize_int8``; Jacob et al. 2018)
export                        :mod:`mmlab.deploy.export`: ONNX export and ONNX Runtime (``export_onnx``,
                              ``onnx_session``, ``onnx_run``, ``onnx_parity``)
serving                       :mod:`mmlab.deploy.serving`: batching with padding masks (``pad_sequences``,
                              ``batched_inference``) and an LRU cache keyed by content (``content_key``,
                              ``LRUCache``, ``CachedEncoder``)
timing                        :mod:`mmlab.deploy.timing`: the course's one timing helper
                              (``compare_latency``, ``measure_latency``, ``paired_speedup``, ``Timing``,
                              ``sync``): warm-up, interleaved rounds, medians, paired ratios
============================  ========================================================================

Lesson 5's model, pruning sweep and widget live in :mod:`mmlab.lessons.deployment`.
"""

from __future__ import annotations

from .compression import (
    count_nonzero_parameters,
    model_size_bytes,
    prunable_pairs,
    prune_structured,
    prune_with_masks,
    quantize_int8,
    sparsity,
    unit_importance,
)
from .distillation import distill, distillation_loss
from .export import export_onnx, onnx_parity, onnx_run, onnx_session
from .serving import CachedEncoder, LRUCache, batched_inference, content_key, pad_sequences
from .timing import Timing, compare_latency, measure_latency, paired_speedup, sync

__all__ = [
    "distillation_loss",
    "distill",
    "prunable_pairs",
    "prune_structured",
    "unit_importance",
    "prune_with_masks",
    "count_nonzero_parameters",
    "sparsity",
    "model_size_bytes",
    "quantize_int8",
    "export_onnx",
    "onnx_session",
    "onnx_run",
    "onnx_parity",
    "pad_sequences",
    "batched_inference",
    "content_key",
    "LRUCache",
    "CachedEncoder",
    "Timing",
    "sync",
    "measure_latency",
    "compare_latency",
    "paired_speedup",
]
