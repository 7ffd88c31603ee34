"""Training across processes with ``torch.distributed``: process groups, DDP, sharded data, gathered CLIP losses.

One process per device (a *rank*, ``0 … W-1`` of a *world* of ``W`` processes), launched by ``torchrun``, which
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each process's environment.
:func:`init_distributed` reads them and joins the group — gloo on CPU, NCCL on CUDA — with a timeout on every
collective, so that a rank that dies makes the others fail instead of waiting forever.

**Data parallelism (DDP).** Every rank holds a full copy of the model and a disjoint shard of each global batch
(:class:`ShardedLoader`, built on ``DistributedSampler``). After ``backward`` DDP all-reduces the parameter
gradients and divides by ``W`` (Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel
Training", VLDB), so every rank takes the same step:

    g = (1/W) Σ_r ∇_θ L_r(θ; shard_r)

For a loss that is a *mean over samples* (cross-entropy), ``L(global batch) = (1/W) Σ_r L_r`` when shards are
equal, so 2 ranks × batch ``B`` give exactly the update of 1 process × batch ``2B``.

**Contrastive losses are not a mean over samples.** The CLIP loss (Radford et al. 2021) of a batch compares each
image with every caption *of the batch*; computed per rank, each sample sees only ``B_local − 1`` negatives
instead of ``W·B_local − 1`` — a different, easier objective. The fix is to gather the embeddings of all ranks
before the loss (OpenCLIP, Ilharco et al. 2021, ``gather_features``):

- :func:`gather_with_grad` uses ``torch.distributed.nn.functional.all_gather``, which is differentiable: its
  backward sums the gradients that every rank's loss sends to each slice. With the full ``WB × WB`` loss on
  every rank (``gather="all_gather"``), or with :func:`local_clip_loss` — the local rows against all columns,
  targets offset by ``rank·B`` (OpenCLIP's ``local_loss``, ``gather="local"``, ``B × WB`` logits per rank
  instead of ``WB × WB``) — DDP's average gives exactly the single-process gradient on the concatenated batch.
- :func:`gather_splice_local` uses a plain ``dist.all_gather`` (no backward) and splices the local tensor back,
  so only the local slice carries a gradient (OpenCLIP's default, ``gather="splice"``). Each rank's loss then
  reaches only its own embeddings, and DDP's average is ``1/W`` of the single-process gradient for the towers
  (a learning-rate scale, which Adam largely undoes) — but not for the temperature, whose gradient every rank
  computes in full.

Checkpoints are written by rank 0 only and hold no trace of the world size (the model without DDP's
``module.`` prefix, the optimizer, the epoch), so a run saved on 2 ranks resumes on 1 or 4
(:func:`save_checkpoint`, :func:`load_checkpoint`). :func:`reduce_metrics` averages logged numbers over ranks.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from .checks import check_choice, check_tensor
from .contrastive import similarity_logits

__all__ = [
    "ENV_VARS",
    "GATHER_MODES",
    "DEFAULT_TIMEOUT_S",
    "DistributedEnvError",
    "DistEnv",
    "missing_env",
    "init_distributed",
    "cleanup",
    "process_group",
    "is_initialized",
    "get_rank",
    "get_world_size",
    "wrap_ddp",
    "unwrap",
    "wrap_fsdp",
    "local_parameter_count",
    "full_tensors",
    "ShardedLoader",
    "gather_with_grad",
    "gather_splice_local",
    "local_clip_loss",
    "distributed_clip_loss",
    "reduce_metrics",
    "save_checkpoint",
    "load_checkpoint",
    "allreduce_bytes",
    "allgather_bytes",
]

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
GATHER_MODES = ("none", "all_gather", "local", "splice")
DEFAULT_TIMEOUT_S = 60.0


class DistributedEnvError(RuntimeError):
    """Raised when a process meant to join a group lacks the environment that ``torchrun`` sets."""


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: its ``rank`` in ``0 … world_size-1``, its ``local_rank`` on this machine, the
    ``backend`` ("gloo" or "nccl") and the ``device`` it computes on."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that writes files and prints."""
        return self.rank == 0


def missing_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The variables of :data:`ENV_VARS` that ``environ`` (default ``os.environ``) lacks."""
    env = os.environ if environ is None else environ
    return [k for k in ENV_VARS if not env.get(k)]


def _int_env(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise DistributedEnvError(f"{name} must be an integer, got {env[name]!r}") from None


def init_distributed(
    backend: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
) -> DistEnv:
    """Join the process group described by ``torchrun``'s environment and return this process's :class:`DistEnv`.

    ``backend`` defaults to NCCL when CUDA is available (each rank then uses ``cuda:LOCAL_RANK``) and gloo
    otherwise. ``timeout_s`` bounds every collective of the group (``init_process_group(timeout=...)``): a rank
    waiting for a peer that crashed raises after that long instead of hanging. Raises
    :class:`DistributedEnvError` naming the missing variables when the process was not started by ``torchrun``
    (or ``torch.multiprocessing`` with the variables set), and ``ValueError`` for a bad backend or timeout.
    """
    env = os.environ if environ is None else environ
    missing = missing_env(env)
    if missing:
        raise DistributedEnvError(
            f"not launched as a distributed job: missing environment variable(s) {', '.join(missing)}. "
            "Start it with torchrun, e.g. `torchrun --nproc-per-node 2 -m mmlab.train_distributed`, "
            "which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each process."
        )
    if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    rank, world, local = (_int_env(env, k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if world < 1 or not 0 <= rank < world or local < 0:
        raise DistributedEnvError(f"inconsistent environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    check_choice("backend", backend, ("gloo", "nccl"))
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ValueError("backend 'nccl' needs CUDA; use 'gloo' on CPU")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            backend,
            init_method=f"tcp://{env['MASTER_ADDR']}:{env['MASTER_PORT']}",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=timeout_s),
        )
    return DistEnv(rank, world, local, backend, device)


def cleanup() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(backend: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[DistEnv]:
    """``with process_group() as env:`` joins the group (:func:`init_distributed`) and always leaves it, also
    when the body raises (so that the exception, not a hang, is what the launcher sees)."""
    env = init_distributed(backend, timeout_s=timeout_s)
    try:
        yield env
    finally:
        cleanup()


def barrier() -> None:
    """Wait until every rank of the group reaches this point (a no-op outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def is_initialized() -> bool:
    """True inside a process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank, 0 outside a process group."""
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """The number of processes, 1 outside a process group."""
    return dist.get_world_size() if is_initialized() else 1


def wrap_ddp(model: nn.Module, env: DistEnv | None = None) -> nn.Module:
    """``model`` moved to this rank's device and wrapped in ``DistributedDataParallel`` (Li et al. 2020).

    DDP broadcasts rank 0's parameters and buffers at construction, so all ranks start identical, and after each
    ``backward`` all-reduces the gradients in buckets (overlapping communication with the rest of the backward)
    and divides them by ``W``. Outside a process group the model is returned unwrapped (a 1-process run)."""
    model, device = _on_rank_device(model, env)
    if not is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _on_rank_device(model: nn.Module, env: DistEnv | None) -> tuple[nn.Module, torch.device]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    device = env.device if env is not None else torch.device("cpu")
    return model.to(device), device


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (``model.module``), or ``model`` itself (also an FSDP-sharded one, which
    ``fully_shard`` changes in place)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def wrap_fsdp(model: nn.Module, env: DistEnv | None = None) -> nn.Module:
    """``model`` moved to this rank's device and fully sharded with FSDP2's ``fully_shard`` (Zhao et al. 2023, the
    ZeRO-3 idea of Rajbhandari et al. 2020): every submodule that owns parameters, then the root.

    Each rank keeps ``1/W`` of every parameter (a ``DTensor`` shard), its gradient and its optimizer state, so the
    training state per rank is ``(P + G + O)/W`` instead of DDP's ``P + G + O``. The price is communication: each
    forward and backward all-gathers a layer's parameters just before it runs, and the gradients are
    reduce-scattered (averaged over ranks, as DDP averages), ``3·(W−1)/W·P`` values per step against DDP's
    ``2·(W−1)/W·P``. The update is the same as DDP's. Outside a process group the model is returned unsharded.
    A sharded model's ``state_dict`` holds shards: use :func:`full_tensors` before saving it in one piece."""
    model, _ = _on_rank_device(model, env)
    if not is_initialized():
        return model
    from torch.distributed.fsdp import fully_shard

    for module in list(model.modules())[1:]:
        if any(True for _ in module.parameters(recurse=False)):
            fully_shard(module)
    fully_shard(model)
    return model


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def local_parameter_count(model: nn.Module) -> int:
    """Parameter values this rank stores: its shards under :func:`wrap_fsdp`, all of them otherwise."""
    return sum(_local(p).numel() for p in model.parameters())


def full_tensors(tensors: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor | None]:
    """``{name: whole tensor}`` from a dict of possibly sharded tensors (FSDP's ``state_dict()`` or gradients): each
    ``DTensor`` all-gathered (a collective: every rank must call it), plain tensors as they are."""
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in tensors.items()}


class ShardedLoader:
    """Mini-batches of this rank's shard of in-memory tensors, drawn by ``torch.utils.data.DistributedSampler``.

    Each epoch the sampler shuffles ``0 … N-1`` with a generator seeded ``seed + epoch`` — the same permutation
    on every rank — drops the tail so that ``W`` divides it, and gives rank ``r`` the positions ``r, r+W,
    r+2W, …``: the shards are disjoint and together cover all but ``N mod W`` items. Call :meth:`set_epoch`
    before each epoch, or every epoch repeats the same order. Batches of ``batch_size`` (per rank) are fetched
    with one indexing operation per tensor; the last incomplete one is dropped when ``drop_last``.

    Because shards interleave, step ``k``'s global batch (all ranks together) is the same set of items for any
    ``W`` with ``W × batch_size`` fixed: positions ``kB … (k+1)B-1`` of the epoch's permutation.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ):
        if not tensors:
            raise ValueError("ShardedLoader needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor) or t.dim() == 0:
                raise ValueError(f"tensors[{i}] must be a tensor with a first (sample) dimension")
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"tensors must share their first dimension, got sizes {[len(t) for t in tensors]}")
        world = get_world_size() if world_size is None else world_size
        rank = get_rank() if rank is None else rank
        if not isinstance(world, int) or world < 1:
            raise ValueError(f"world_size must be an int >= 1, got {world!r}")
        if not isinstance(rank, int) or not 0 <= rank < world:
            raise ValueError(f"rank must be an int in [0, {world}), got {rank!r}")
        n = sizes.pop()
        if n < world:
            raise ValueError(f"{n} samples cannot give each of {world} ranks a non-empty shard")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if drop_last and n // world < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the shard size {n // world} ({n} samples / {world})")
        self.tensors, self.batch_size, self.drop_last = tensors, batch_size, drop_last
        self.rank, self.world_size = rank, world
        # drop_last=True in the sampler: no padding by repeated items, so shards stay disjoint
        self.sampler = DistributedSampler(
            range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=True
        )

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation (``seed + epoch``), the same on every rank."""
        self.sampler.set_epoch(epoch)

    def indices(self) -> list[int]:
        """This rank's shard for the current epoch, in order."""
        return list(iter(self.sampler))

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        idx = torch.tensor(self.indices(), dtype=torch.long)
        for b in range(len(self)):
            sel = idx[b * self.batch_size : (b + 1) * self.batch_size]
            yield tuple(t[sel.to(t.device)] for t in self.tensors)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` (B, …) concatenated in rank order, (W·B, …), differentiably.

    ``torch.distributed.nn.functional.all_gather``'s backward sends each rank the sum, over all ranks' losses,
    of the gradient with respect to its slice — so a loss computed on the gathered tensor trains every rank's
    encoder as if the whole batch were in one process (OpenCLIP's ``gather_with_grad=True``). All ranks must
    pass the same shape. Outside a process group, returns ``x``."""
    check_tensor("x", x, ndim=None)
    if not is_initialized() or get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # torch 2.13 points to a private successor; this public one still works
        warnings.filterwarnings("ignore", "torch.distributed.nn.functional.all_gather is deprecated", FutureWarning)
        return torch.cat(all_gather(x), dim=0)


def gather_splice_local(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` (B, …) concatenated in rank order, where only this rank's slice keeps its gradient.

    A plain ``dist.all_gather`` has no backward; putting the local tensor back at position ``rank`` lets the loss
    reach this rank's encoder through its own slice (OpenCLIP's default, ``gather_with_grad=False``). Each rank
    then back-propagates only ``∂L/∂x_rank``; averaged by DDP, the encoders get ``1/W`` of the single-process
    gradient. Outside a process group, returns ``x``."""
    check_tensor("x", x, ndim=None)
    if not is_initialized() or get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[get_rank()] = x
    return torch.cat(parts, dim=0)


def local_clip_loss(
    image_local: torch.Tensor,
    text_local: torch.Tensor,
    image_all: torch.Tensor,
    text_all: torch.Tensor,
    logit_scale: float | torch.Tensor,
    rank: int,
) -> torch.Tensor:
    """OpenCLIP's ``local_loss``: this rank's ``B`` rows against all ``W·B`` columns, targets ``rank·B + arange(B)``:

        L_r = ½ [CE(s·I_r·T_allᵀ, rank·B + i) + CE(s·T_r·I_allᵀ, rank·B + i)]

    Two ``B × WB`` logit matrices per rank instead of one ``WB × WB``. Each row of the full CLIP loss appears on
    exactly one rank, so ``(1/W) Σ_r L_r`` is the full loss on the concatenated batch (Radford et al. 2021), and
    with :func:`gather_with_grad` DDP's gradient average is the single-process gradient."""
    sizes: dict[str, int] = {}
    check_tensor("image_local", image_local, ("B", "D"), dtype="float", sizes=sizes)
    check_tensor("text_local", text_local, ("B", "D"), dtype="float", sizes=sizes)
    check_tensor("image_all", image_all, ("N", "D"), dtype="float", sizes=sizes)
    check_tensor("text_all", text_all, ("N", "D"), dtype="float", sizes=sizes)
    b, n = sizes["B"], sizes["N"]
    if n % b:
        raise ValueError(f"the gathered batch ({n}) must be a multiple of the local batch ({b})")
    if not isinstance(rank, int) or not 0 <= rank < n // b:
        raise ValueError(f"rank must be an int in [0, {n // b}), got {rank!r}")
    target = rank * b + torch.arange(b, device=image_local.device)
    logits_i = similarity_logits(image_local, text_all, logit_scale)
    logits_t = similarity_logits(text_local, image_all, logit_scale)
    return 0.5 * (F.cross_entropy(logits_i, target) + F.cross_entropy(logits_t, target))


def distributed_clip_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: float | torch.Tensor,
    gather: str = "local",
) -> torch.Tensor:
    """The CLIP loss of this rank's pairs ``image_emb``, ``text_emb`` (B, D) under a gathering strategy:

    - ``"none"``: :func:`mmlab.contrastive.clip_loss` of the local batch only — ``B − 1`` negatives per sample
      (the tempting recipe; not the loss of the global batch);
    - ``"all_gather"``: the full ``WB × WB`` CLIP loss of the :func:`gather_with_grad` embeddings on every rank;
    - ``"local"``: :func:`local_clip_loss` on :func:`gather_with_grad` embeddings (same gradients, ``B × WB``
      logits);
    - ``"splice"``: the full loss on :func:`gather_splice_local` embeddings (same value; encoder gradients
      ``1/W`` of the single-process ones after DDP's average).

    With every strategy but ``"none"`` each sample has ``W·B − 1`` negatives. Outside a process group all four
    equal ``clip_loss``."""
    from .contrastive import clip_loss

    check_choice("gather", gather, GATHER_MODES)
    sizes: dict[str, int] = {}
    check_tensor("image_emb", image_emb, ("B", "D"), dtype="float", sizes=sizes)
    check_tensor("text_emb", text_emb, ("B", "D"), dtype="float", sizes=sizes)
    if gather == "none":
        return clip_loss(image_emb, text_emb, logit_scale)
    if gather == "splice":
        return clip_loss(gather_splice_local(image_emb), gather_splice_local(text_emb), logit_scale)
    img_all, txt_all = gather_with_grad(image_emb), gather_with_grad(text_emb)
    if gather == "all_gather":
        return clip_loss(img_all, txt_all, logit_scale)
    return local_clip_loss(image_emb, text_emb, img_all, txt_all, logit_scale, get_rank())


def reduce_metrics(values: Mapping[str, float], count: int | float = 1) -> dict[str, float]:
    """The mean of each metric over ranks, weighted by each rank's ``count`` (e.g. its number of samples):
    ``Σ_r count_r·v_r / Σ_r count_r``, by one ``all_reduce`` (SUM) in float64. Every rank gets the result.
    Outside a process group, returns ``values`` as floats."""
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping of metric names to numbers, got {type(values).__name__}")
    if not count > 0:
        raise ValueError(f"count must be > 0, got {count}")
    keys = list(values)
    out = {k: float(values[k]) for k in keys}
    if not is_initialized() or get_world_size() == 1:
        return out
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    buf = torch.tensor([count * out[k] for k in keys] + [float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    total = float(buf[-1])
    return {k: float(buf[i]) / total for i, k in enumerate(keys)}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    epoch: int,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Rank 0 writes ``{"model", "optimizer", "epoch", "world_size", "extra"}`` to ``path``; all ranks then wait
    at a barrier, so that no rank reads a half-written file. The model is saved unwrapped (no DDP ``module.``
    prefix) and the optimizer state has nothing per-rank (DDP keeps the replicas identical), so the file resumes
    on any world size (:func:`load_checkpoint`); ``world_size`` is stored for information only. Written to a
    temporary name and renamed, so a crash leaves the previous checkpoint intact."""
    if not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
    path = Path(path)
    if get_rank() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "epoch": epoch,
            "world_size": get_world_size(),
            "extra": dict(extra or {}),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
    if is_initialized():
        dist.barrier()
    return path


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a :func:`save_checkpoint` file into ``model`` (wrapped in DDP or not; a ``module.`` prefix in the file
    is stripped too) and ``optimizer``, on every rank and any world size. Returns the file's dict (``epoch``: the
    number of epochs done, so training resumes at that epoch). Raises ``FileNotFoundError`` for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ValueError(f"{path} is not a checkpoint written by mmlab.distributed.save_checkpoint")
    weights = {k.removeprefix("module."): v for k, v in state["model"].items()}
    unwrap(model).load_state_dict(weights)
    if optimizer is not None:
        if state.get("optimizer") is None:
            raise ValueError(f"{path} holds no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    return state


def allreduce_bytes(n_bytes: int | float, world_size: int) -> float:
    """Bytes each rank sends in a ring all-reduce of a buffer of ``n_bytes``: ``2(W−1)/W · n_bytes``
    (a reduce-scatter then an all-gather, each moving ``(W−1)/W`` of the buffer; Patarasuk & Yuan 2009).
    DDP's gradient all-reduce moves this per step, ``n_bytes`` = the trainable parameters' size."""
    _check_world(world_size)
    if n_bytes < 0:
        raise ValueError(f"n_bytes must be >= 0, got {n_bytes}")
    return 2 * (world_size - 1) / world_size * float(n_bytes)


def allgather_bytes(n_bytes_per_rank: int | float, world_size: int) -> float:
    """Bytes each rank receives in an all-gather of ``n_bytes_per_rank`` from every rank: ``(W−1) · n_bytes``
    (the same in the backward of :func:`gather_with_grad`). Grows with ``W``, unlike the all-reduce."""
    _check_world(world_size)
    if n_bytes_per_rank < 0:
        raise ValueError(f"n_bytes_per_rank must be >= 0, got {n_bytes_per_rank}")
    return (world_size - 1) * float(n_bytes_per_rank)


def _check_world(world_size: int) -> None:
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
