"""Train lesson 7's image↔caption dual encoder on AV-Digits across processes: the course's ``torchrun`` entry point.

    torchrun --nproc-per-node 2 -m mmlab.train_distributed --config '{"epochs": 10, "gather": "local"}'
    torchrun --nproc-per-node 1 -m mmlab.train_distributed --config run.json --out runs/one

Each rank joins the group (:func:`mmlab.distributed.init_distributed`: gloo on CPU, NCCL on CUDA, a timeout on
every collective), builds the same model (an MLP on the 8×8 pixels, a bag-of-words caption tower trained from
scratch, 32-d heads; CLIP's learned temperature, clamped after each step), wraps it in DDP and trains on its
shard of each global batch (``global_batch / W`` pairs per rank, :class:`~mmlab.distributed.ShardedLoader`) with
the CLIP loss under ``--gather``: ``none`` (per-rank loss: ``B/W − 1`` negatives), ``all_gather`` or ``local``
(gathered with gradients: exactly the single-process loss and gradient on the global batch), or ``splice``
(OpenCLIP's default: the same loss, tower gradients ``1/W``). Because shards interleave, step ``k``'s global batch
holds the same pairs for every ``W``: a gathered run on 2 ranks retraces the 1-process run.

Every rank appends one JSON line per epoch to ``OUT/rank{r}.log``; rank 0 prints ``PROGRESS {...}`` lines (read by
:func:`mmlab.lessons.scale_out.launch`), evaluates class-level image→text Recall@1 on val each epoch and on test
at the end, and writes ``OUT/metrics.json``. ``--checkpoint PATH`` saves after every epoch (rank 0) and
``--resume`` continues from it on any number of processes. Several machines: the same command on each with
``--nnodes N --node-rank i --rdzv-backend c10d --rdzv-endpoint HOST:PORT`` (not tested here).

:func:`train_simulated` trains the same model in *one* process exactly as ``W`` ranks would (each rank's loss
on its shard, averaged as DDP averages gradients), for sweeps over seeds without a launcher.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .checks import check_choice
from .contrastive import DualEncoder, clip_loss, embed, retrieval_report
from .data import load_avdigits
from .distributed import (
    GATHER_MODES,
    DistEnv,
    DistributedEnvError,
    ShardedLoader,
    allgather_bytes,
    allreduce_bytes,
    barrier,
    cleanup,
    distributed_clip_loss,
    init_distributed,
    load_checkpoint,
    local_clip_loss,
    reduce_metrics,
    save_checkpoint,
    unwrap,
    wrap_ddp,
)
from .models import MLPEncoder, TextBagEncoder, count_parameters
from .runtime import seeded
from .text import WordTokenizer
from .train import fit

__all__ = [
    "Config",
    "parse_config",
    "AVDigitsPairs",
    "load_pairs",
    "build_model",
    "make_optimizer",
    "simulated_loss",
    "train_simulated",
    "recall_at_1",
    "train",
    "main",
    "PROGRESS",
    "R1",
]

PROGRESS = "PROGRESS "  # prefix of rank 0's machine-readable progress lines
R1 = "image→text R@1"
MAX_TOKENS = 8


@dataclass
class Config:
    """A run's settings (``--config`` JSON keys; flags override them). ``global_batch`` is the batch of all ranks
    together: each of ``W`` ranks takes ``global_batch / W`` pairs per step, so ``W`` must divide it."""

    epochs: int = 10
    global_batch: int = 64
    gather: str = "local"
    lr: float = 3e-3
    weight_decay: float = 1e-4
    embed_dim: int = 32
    seed: int = 0
    out: str = "runs/scale_out"
    checkpoint: str | None = None
    resume: bool = False
    timeout_s: float = 60.0
    max_steps: int | None = None  # per epoch, for quick timing runs
    backend: str | None = None

    def validate(self, world_size: int = 1) -> Config:
        check_choice("gather", self.gather, GATHER_MODES)
        for name in ("epochs", "global_batch", "embed_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.timeout_s > 0):
            raise ValueError("lr and timeout_s must be > 0, weight_decay >= 0")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"max_steps must be a positive int or null, got {self.max_steps!r}")
        if self.global_batch % world_size or self.global_batch // world_size < 2:
            raise ValueError(
                f"global_batch {self.global_batch} must be a multiple of the world size {world_size} "
                "with at least 2 pairs per rank"
            )
        if self.resume and not self.checkpoint:
            raise ValueError("resume needs a checkpoint path")
        return self


def parse_config(argv: Sequence[str] | None = None) -> Config:
    """A :class:`Config` from ``--config`` (a JSON file's path or a JSON object) and flags, flags winning."""
    p = argparse.ArgumentParser(prog="python -m mmlab.train_distributed", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="a JSON object, or the path of a JSON file, with Config's keys")
    p.add_argument("--epochs", type=int)
    p.add_argument("--global-batch", type=int)
    p.add_argument("--gather", choices=GATHER_MODES)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--out")
    p.add_argument("--checkpoint")
    p.add_argument("--resume", action="store_true", default=None)
    p.add_argument("--timeout-s", type=float)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--backend", choices=("gloo", "nccl"))
    args = p.parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        text = args.config.strip()
        try:
            values = json.loads(text if text.startswith("{") else Path(text).read_text())
        except (OSError, json.JSONDecodeError) as e:
            p.error(f"--config must be a JSON object or the path of a JSON file: {e}")
        if not isinstance(values, dict):
            p.error("--config must hold a JSON object")
        unknown = set(values) - {f.name for f in fields(Config)}
        if unknown:
            p.error(f"unknown config keys {sorted(unknown)}; known: {[f.name for f in fields(Config)]}")
    for f in fields(Config):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return Config(**values)


@dataclass
class AVDigitsPairs:
    """One AV-Digits split as image↔caption pairs: ``images`` (N, 1, 8, 8), caption token ids ``tokens`` (N, L),
    ``labels`` (N,) (used only to score class-level retrieval)."""

    images: torch.Tensor
    tokens: torch.Tensor
    labels: torch.Tensor


def load_pairs() -> tuple[dict[str, AVDigitsPairs], WordTokenizer]:
    """AV-Digits train / val / test pairs, captions tokenised with a vocabulary built on the training captions."""
    # the raw waveform: the pairs carry no audio, and it skips computing log-mel features (0.3 s per process)
    splits = {s: load_avdigits(s, audio_format="waveform") for s in ("train", "val", "test")}
    tok = WordTokenizer(splits["train"].text)
    pairs = {s: AVDigitsPairs(d.image, tok(d.text, max_len=MAX_TOKENS)[0], d.label) for s, d in splits.items()}
    return pairs, tok


def build_model(vocab_size: int, embed_dim: int = 32, seed: int = 0) -> DualEncoder:
    """Lesson 7's image↔text dual encoder with a from-scratch caption tower, initialised under ``seeded(seed)``."""
    with seeded(seed):
        return DualEncoder(MLPEncoder(64, 64), TextBagEncoder(vocab_size, 64), embed_dim=embed_dim)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and the temperature, as :func:`mmlab.contrastive.train_contrastive`."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ],
        lr=lr,
    )


@torch.no_grad()
def recall_at_1(model: DualEncoder, data: AVDigitsPairs) -> float:
    """Class-level image→text Recall@1 of ``model`` on ``data`` (any caption of the image's digit counts)."""
    z_i, z_t = embed(model.embed_a, data.images), embed(model.embed_b, data.tokens)
    return retrieval_report(z_i, z_t, data.labels, data.labels)[R1]


def simulated_loss(
    z_a: Sequence[torch.Tensor], z_b: Sequence[torch.Tensor], logit_scale: torch.Tensor, gather: str
) -> torch.Tensor:
    """In one process, the loss whose gradient is DDP's average over ``W = len(z_a)`` ranks of
    :func:`mmlab.distributed.distributed_clip_loss`: ``(1/W) Σ_r L_r``, where rank ``r``'s loss ``L_r`` sees the
    other ranks' embeddings as the gather would give them (with their gradient for ``all_gather`` / ``local``,
    detached for ``splice``; not at all for ``none``)."""
    check_choice("gather", gather, GATHER_MODES)
    w = len(z_a)
    if w < 1 or len(z_b) != w:
        raise ValueError("z_a and z_b must hold one (B, D) tensor per simulated rank")
    if gather == "none":
        return sum(clip_loss(a, b, logit_scale) for a, b in zip(z_a, z_b)) / w
    all_a, all_b = torch.cat(list(z_a)), torch.cat(list(z_b))
    if gather == "all_gather":
        return clip_loss(all_a, all_b, logit_scale)
    if gather == "local":
        return sum(local_clip_loss(z_a[r], z_b[r], all_a, all_b, logit_scale, r) for r in range(w)) / w

    def spliced(zs: Sequence[torch.Tensor], r: int) -> torch.Tensor:
        return torch.cat([z if s == r else z.detach() for s, z in enumerate(zs)])

    return sum(clip_loss(spliced(z_a, r), spliced(z_b, r), logit_scale) for r in range(w)) / w


def _epoch_row(epoch: int, loss: float, steps: int, seconds: float, model: DualEncoder, val: AVDigitsPairs) -> dict:
    return {
        "epoch": epoch + 1,
        "loss": loss,
        "steps": steps,
        "ms_per_step": 1000 * seconds / max(steps, 1),
        "val_R@1": recall_at_1(model, val),
        "logit_scale": float(model.logit_scale.detach()),
    }


class _Epochs:
    """:func:`mmlab.train.fit`'s view of the shard loaders. Each pass over it is the next epoch: it moves every
    loader to that epoch first (``DistributedSampler`` reshuffles only through ``set_epoch``), starts the epoch's
    clock and stops after ``max_steps`` batches. With several loaders (ranks simulated in one process) a batch
    is the ranks' batches concatenated in rank order: rank ``r``'s pairs are rows ``r·B … (r+1)·B − 1``."""

    def __init__(self, loaders: Sequence[ShardedLoader], max_steps: int | None, first_epoch: int = 0):
        self.loaders, self.max_steps, self.epoch = list(loaders), max_steps, first_epoch
        self.started = time.perf_counter()

    def __len__(self) -> int:
        n = len(self.loaders[0])
        return n if self.max_steps is None else min(n, self.max_steps)

    def __iter__(self):
        for loader in self.loaders:
            loader.set_epoch(self.epoch)
        self.epoch += 1
        self.started = time.perf_counter()
        for _, parts in zip(range(len(self)), zip(*self.loaders)):
            yield parts[0] if len(parts) == 1 else tuple(torch.cat(ts) for ts in zip(*parts))


class _LossMeter:
    """The mean of the per-step losses of the current epoch (what each rank logs), reset by :meth:`take`."""

    def __init__(self) -> None:
        self.total, self.steps = 0.0, 0

    def add(self, loss: torch.Tensor) -> torch.Tensor:
        self.total, self.steps = self.total + loss.item(), self.steps + 1
        return loss

    def take(self) -> tuple[float, int]:
        mean, steps = self.total / max(self.steps, 1), self.steps
        self.total, self.steps = 0.0, 0
        return mean, steps


def _clamp_temperature(model: torch.nn.Module, batch: Any) -> None:
    unwrap(model).clamp_logit_scale_()


def train_simulated(
    cfg: Config,
    world_size: int,
    *,
    pairs: Mapping[str, AVDigitsPairs] | None = None,
    vocab_size: int | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[DualEncoder, list[dict]]:
    """Train in one process exactly as ``world_size`` DDP ranks would under ``cfg.gather`` (same model, same
    shards from :class:`~mmlab.distributed.ShardedLoader`, the rank losses averaged as DDP averages gradients;
    :func:`simulated_loss`), with :func:`mmlab.train.fit`. Returns the model and one row per epoch (``loss``,
    ``val_R@1``, ...)."""
    cfg.validate(world_size)
    if pairs is None or vocab_size is None:
        loaded, tok = load_pairs()
        pairs, vocab_size = (pairs or loaded), (vocab_size or len(tok))
    model = build_model(vocab_size, cfg.embed_dim, cfg.seed)
    tr, local = pairs["train"], cfg.global_batch // world_size
    loaders = [
        ShardedLoader(tr.images, tr.tokens, batch_size=local, rank=r, world_size=world_size, seed=cfg.seed)
        for r in range(world_size)
    ]
    epochs, meter, rows = _Epochs(loaders, cfg.max_steps), _LossMeter(), []

    def compute_loss(m: DualEncoder, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        # one forward per simulated rank, as each rank runs its own
        z = [m(xa, xb) for xa, xb in zip(batch[0].split(local), batch[1].split(local))]
        return meter.add(simulated_loss([a for a, _ in z], [b for _, b in z], m.logit_scale, cfg.gather))

    def after_epoch(m: DualEncoder, epoch: int) -> dict:
        seconds = time.perf_counter() - epochs.started
        loss, steps = meter.take()
        rows.append(_epoch_row(epoch, loss, steps, seconds, m, pairs["val"]))
        if on_epoch is not None:
            on_epoch(rows[-1])
        return {}

    fit(
        model,
        epochs,
        epochs=cfg.epochs,
        optimizer=make_optimizer(model, cfg.lr, cfg.weight_decay),
        compute_loss=compute_loss,
        after_step=_clamp_temperature,
        after_epoch=after_epoch,
        amp=False,  # float32 everywhere: the simulation must match the ranks' runs to float tolerance
        progress=False,
    )
    return model, rows


def _log(path: Path, row: Mapping[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def train(cfg: Config) -> dict[str, Any] | None:
    """The body of one rank (see the module docstring). Returns the metrics on rank 0, ``None`` on the others."""
    env = init_distributed(cfg.backend, timeout_s=cfg.timeout_s)
    try:
        cfg.validate(env.world_size)
        torch.manual_seed(cfg.seed)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / f"rank{env.rank}.log"
        log_path.write_text("")
        pairs, tok = load_pairs()
        model = wrap_ddp(build_model(len(tok), cfg.embed_dim, cfg.seed), env)
        core: DualEncoder = unwrap(model)
        opt = make_optimizer(core, cfg.lr, cfg.weight_decay)
        tr, local = pairs["train"], cfg.global_batch // env.world_size
        loader = ShardedLoader(tr.images, tr.tokens, batch_size=local, seed=cfg.seed)
        rows: list[dict] = []
        start_epoch = 0
        if cfg.resume and cfg.checkpoint and Path(cfg.checkpoint).is_file():
            state = load_checkpoint(cfg.checkpoint, model, opt, map_location=env.device)
            start_epoch, rows = int(state["epoch"]), list(state["extra"].get("rows", []))
        t_run = time.perf_counter()
        epochs, meter = _Epochs([loader], cfg.max_steps, first_epoch=start_epoch), _LossMeter()

        def compute_loss(m: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            za, zb = m(*batch)  # DDP all-reduces (averages) the gradients in backward
            return meter.add(distributed_clip_loss(za, zb, core.logit_scale, cfg.gather))

        def after_epoch(m: torch.nn.Module, fit_epoch: int) -> dict:
            epoch = start_epoch + fit_epoch
            seconds = time.perf_counter() - epochs.started
            loss, steps = meter.take()
            mine = {"loss": loss, "ms_per_step": 1000 * seconds / steps}
            _log(log_path, {"rank": env.rank, "epoch": epoch + 1, "steps": steps, "local_batch": local, **mine})
            glob = reduce_metrics(mine, count=steps)  # every rank joins the all-reduce
            if env.is_main:
                row = _epoch_row(epoch, glob["loss"], steps, seconds, core, pairs["val"])
                row["ms_per_step"] = glob["ms_per_step"]
                rows.append(row)
                print(PROGRESS + json.dumps({**row, "epochs": cfg.epochs}), flush=True)
            if cfg.checkpoint:
                save_checkpoint(cfg.checkpoint, model, opt, epoch=epoch + 1, extra={"rows": rows})
            return {}

        if start_epoch < cfg.epochs:
            fit(
                model,
                epochs,
                epochs=cfg.epochs - start_epoch,
                optimizer=opt,
                compute_loss=compute_loss,
                after_step=_clamp_temperature,
                after_epoch=after_epoch,
                device=env.device,
                amp=False,  # float32, as train_simulated: the equivalences hold to float tolerance on GPUs too
                progress=env.is_main and sys.stderr.isatty(),  # a bar in a terminal; PROGRESS lines for pipes
                desc=f"rank 0 of {env.world_size}",
            )
        metrics = _final_metrics(cfg, env, core, pairs, rows, local, t_run) if env.is_main else None
        # every rank leaves together: one that tears its group down while rank 0 is still evaluating can abort
        # in gloo's teardown (seen in CI: "terminate called without an active exception", SIGABRT on rank 1)
        barrier()
        return metrics
    finally:
        cleanup()


def _final_metrics(
    cfg: Config,
    env: DistEnv,
    core: DualEncoder,
    pairs: Mapping[str, AVDigitsPairs],
    rows: list[dict],
    local: int,
    t_run: float,
) -> dict:
    """Rank 0's summary of the run (also written to ``OUT/metrics.json``)."""
    out = Path(cfg.out)
    n_params = count_parameters(core, trainable_only=True)
    emb_bytes = 2 * local * cfg.embed_dim * 4  # both towers' float32 embeddings of one rank
    metrics = {
        "config": asdict(cfg),
        "world_size": env.world_size,
        "backend": env.backend,
        "local_batch": local,
        "negatives_per_sample": (local if cfg.gather == "none" else cfg.global_batch) - 1,
        "epochs": rows,
        "val_R@1": rows[-1]["val_R@1"] if rows else float("nan"),
        "test_R@1": recall_at_1(core, pairs["test"]),
        "logit_scale": float(core.logit_scale.detach()),
        "parameters": n_params,
        "param_sum": float(sum(p.detach().double().sum() for p in core.parameters())),
        "ddp_allreduce_bytes_per_step": allreduce_bytes(4 * n_params, env.world_size),
        "gather_bytes_per_step": 0.0 if cfg.gather == "none" else allgather_bytes(emb_bytes, env.world_size),
        "train_seconds": time.perf_counter() - t_run,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: parse the config, train, and turn a missing torchrun environment into one clear line."""
    cfg = parse_config(argv)
    try:
        cfg.validate(1)
        train(cfg)
    except DistributedEnvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
