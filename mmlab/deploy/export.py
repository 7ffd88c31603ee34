"""Export: a trained model as an ONNX file, run by ONNX Runtime on the CPU, with a parity check.

ONNX is a portable graph format (ONNX Runtime, TensorRT, browsers, phones). :func:`export_onnx` uses the dynamo
exporter (``torch.onnx.export(dynamo=True)``, which traces with ``torch.export``: the forward pass must not branch
on tensor values); :func:`onnx_session` and :func:`onnx_run` run the file; :func:`onnx_parity` compares it with
PyTorch on the same inputs: ``max |f_torch(x) - f_onnx(x)|``.
"""

from __future__ import annotations

import copy
import inspect
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..checks import check_tensor
from ..runtime import require_torch
from ..train import eval_mode

__all__ = ["export_onnx", "onnx_session", "onnx_run", "onnx_parity"]


def export_onnx(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: str | Path,
    *,
    input_names: Sequence[str] | None = None,
    output_name: str = "output",
    dynamic_batch: bool = True,
) -> Path:
    """Export ``model`` (a CPU copy in eval mode) to ONNX at ``path`` with ``torch.onnx.export(dynamo=True)``.

    The exporter traces the model with ``torch.export`` (so the forward pass must not branch on tensor
    values) and needs the ``onnx`` and ``onnxscript`` packages. With ``dynamic_batch`` the first dimension
    of every input is symbolic, so one file serves any batch size. The weights are stored inside the file
    (no ``.data`` side file). Returns the path.
    """
    require_torch("export_onnx (torch.onnx.export with dynamo=True and external_data)")
    inputs = tuple(example_inputs)
    for i, x in enumerate(inputs):
        check_tensor(f"example_inputs[{i}]", x, ndim=x.dim() if isinstance(x, torch.Tensor) else None)
    names = list(input_names) if input_names is not None else [f"input_{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(f"input_names has {len(names)} names for {len(inputs)} example_inputs")
    if not all(isinstance(n, str) and n for n in [*names, output_name]):
        raise ValueError(f"input_names and output_name must be non-empty strings, got {names!r} and {output_name!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu_model = copy.deepcopy(model).cpu().eval()
    cpu_inputs = tuple(x.detach().cpu() for x in inputs)
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1)
        dynamic_shapes = tuple({0: batch} for _ in inputs)
        params = list(inspect.signature(cpu_model.forward).parameters.values())
        if params and params[0].kind is params[0].VAR_POSITIONAL:  # forward(*inputs): one entry for the tuple
            dynamic_shapes = (dynamic_shapes,)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed", irrelevant here
    try:
        with warnings.catch_warnings():
            for category in (UserWarning, DeprecationWarning, FutureWarning):
                warnings.filterwarnings("ignore", category=category)
            torch.onnx.export(
                cpu_model,
                cpu_inputs,
                str(path),
                dynamo=True,
                input_names=names,
                output_names=[output_name],
                dynamic_shapes=dynamic_shapes,
                external_data=False,  # one self-contained file (fine below ONNX's 2 GB limit)
                verbose=False,
            )
    finally:
        onnx_logger.setLevel(level)
    return path


def onnx_session(path: str | Path, *, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` on the CPU for the ONNX file at ``path``.

    ``threads`` sets ONNX Runtime's intra-op threads (default: torch's, so that the comparison is fair).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_run(session, *inputs: torch.Tensor) -> torch.Tensor:
    """Run an ONNX Runtime ``session`` on tensors (moved to the CPU) and return its first output as a tensor."""
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise ValueError(f"the ONNX model takes {len(names)} inputs ({', '.join(names)}), got {len(inputs)}")
    feed = {n: x.detach().cpu().numpy() for n, x in zip(names, inputs)}
    return torch.from_numpy(session.run(None, feed)[0])


@torch.inference_mode()
def onnx_parity(model: nn.Module, session, *inputs: torch.Tensor) -> float:
    """``max |f_torch(x) - f_onnx(x)|``: the largest absolute difference between PyTorch (``model`` in eval mode,
    its previous mode restored) and ONNX Runtime on the same ``inputs``."""
    with eval_mode(model):
        ref = model(*inputs).float().cpu()
    got = onnx_run(session, *inputs)
    if got.shape != ref.shape:
        raise ValueError(f"ONNX output has shape {tuple(got.shape)}, PyTorch {tuple(ref.shape)}")
    return float((got - ref).abs().max())
