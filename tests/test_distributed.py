"""mmlab.distributed on real 2-process gloo groups: DDP and gathered-CLIP equivalences, sharding, checkpoints.

One spawned group (``torch.multiprocessing``, a free loopback port, a timeout on the group and on the join) runs
every 2-rank computation once and saves what each rank saw; the tests compare that with one process on the
concatenated batch, to float tolerance. Children use one thread each (2 torch processes on 2 cores otherwise
spin against each other).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from mmlab.contrastive import clip_loss
from mmlab.distributed import (
    ENV_VARS,
    GATHER_MODES,
    DistributedEnvError,
    ShardedLoader,
    allgather_bytes,
    allreduce_bytes,
    distributed_clip_loss,
    gather_splice_local,
    gather_with_grad,
    init_distributed,
    load_checkpoint,
    local_clip_loss,
    missing_env,
    reduce_metrics,
)
from mmlab.lessons.scale_out import DIM, Towers, ce_model  # the models lesson 8's equivalence check uses

WORLD, B, D = 2, 4, DIM  # 2 ranks, 4 pairs per rank, DIM-d embeddings (Towers)
JOIN_TIMEOUT_S = 60
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------------------- models
def data():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, WORLD * B, 6, generator=g)  # two steps of a global batch of W·B
    y = torch.randint(0, 5, (2, WORLD * B), generator=g)
    xa, xb = torch.randn(WORLD * B, 6, generator=g), torch.randn(WORLD * B, 5, generator=g)
    return x, y, xa, xb


def shard(t: torch.Tensor, rank: int) -> torch.Tensor:
    return t[rank * B : (rank + 1) * B]


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}


# ---------------------------------------------------------------------------------------------------------- worker
def _worker(rank: int, port: int, out: str, fail: bool) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    import torch.distributed as dist

    from mmlab.distributed import cleanup, save_checkpoint, wrap_ddp

    env = init_distributed("gloo", timeout_s=30)
    try:
        if fail:
            if rank == 1:
                raise RuntimeError("rank 1 fails on purpose")
            dist.all_reduce(torch.ones(1))  # rank 0 waits here for a peer that is gone
            return
        res: dict = {"env": (env.rank, env.world_size, env.backend)}
        x, y, xa, xb = data()
        # 1. DDP, cross-entropy: two Adam steps on shards of B; checkpoint after the first
        model = wrap_ddp(ce_model(), env)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for step in range(2):
            opt.zero_grad()
            F.cross_entropy(model(shard(x[step], rank)), shard(y[step], rank)).backward()
            if step == 0:
                res["ce_grads"] = grads(model.module)
            opt.step()
            if step == 0:
                save_checkpoint(Path(out) / "ckpt.pt", model, opt, epoch=1, extra={"note": "after step 1"})
        res["ce_params"] = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
        # 2. CLIP losses under each gathering strategy
        towers = wrap_ddp(Towers(), env)
        for mode in GATHER_MODES:
            towers.zero_grad()
            za, zb, t = towers(shard(xa, rank), shard(xb, rank))
            loss = distributed_clip_loss(za, zb, t, mode)
            loss.backward()
            res[f"clip_{mode}"] = (reduce_metrics({"loss": loss.item()})["loss"], grads(towers.module))
        # 3. the gathers themselves, forward
        v = torch.full((2, 3), float(rank))
        res["gathered"] = (gather_with_grad(v).clone(), gather_splice_local(v).clone())
        # 4. sampler shards with the group's rank and world size, epochs 0 and 1
        loader = ShardedLoader(torch.arange(10), batch_size=2, seed=3)
        shards = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            shards.append(loader.indices())
        res["shards"] = shards
        # 5. a weighted mean over ranks
        res["reduced"] = reduce_metrics({"a": rank + 1.0}, count=rank + 1)
        torch.save(res, Path(out) / f"rank{rank}.pt")
    finally:
        cleanup()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(out: Path, fail: bool = False) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the children
    ctx = mp.spawn(_worker, args=(_free_port(), str(out), fail), nprocs=WORLD, join=False)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not ctx.join(timeout=1):  # raises as soon as a rank fails (and terminates the others)
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise TimeoutError(f"the 2-rank group did not finish within {JOIN_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[list[dict], Path]:
    out = tmp_path_factory.mktemp("dist")
    _spawn(out)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], out


# ----------------------------------------------------------------------------------------------------------- tests
def test_group_joined_with_gloo(ranks):
    res, _ = ranks
    assert [r["env"] for r in res] == [(0, 2, "gloo"), (1, 2, "gloo")]


def test_ddp_two_ranks_equal_one_process_double_batch(ranks):
    """DDP averages gradients over ranks: 2 ranks × B == 1 process × 2B (gradients and two Adam steps)."""
    res, _ = ranks
    x, y, _, _ = data()
    model = ce_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x[step]), y[step]).backward()
        if step == 0:
            want = grads(model)
        opt.step()
    for r in res:
        for k, g in want.items():
            torch.testing.assert_close(r["ce_grads"][k], g, atol=1e-6, rtol=1e-5)
        for k, p in model.state_dict().items():
            torch.testing.assert_close(r["ce_params"][k], p, atol=1e-6, rtol=1e-5)


def _single_process_clip():
    _, _, xa, xb = data()
    towers = Towers()
    za, zb, t = towers(xa, xb)
    loss = clip_loss(za, zb, t)
    loss.backward()
    return loss.item(), grads(towers)


@pytest.mark.parametrize("mode", ["all_gather", "local"])
def test_gathered_clip_loss_and_grads_equal_single_process(ranks, mode):
    res, _ = ranks
    loss, want = _single_process_clip()
    for r in res:
        got_loss, got = r[f"clip_{mode}"]
        assert got_loss == pytest.approx(loss, abs=1e-5)
        for k, g in want.items():
            torch.testing.assert_close(got[k], g, atol=1e-6, rtol=1e-5)


def test_splice_gathers_same_loss_but_tower_grads_over_w(ranks):
    """Plain all_gather + the local slice spliced back: the same loss, the towers' gradient divided by W (each
    rank's loss reaches only its own slice), the temperature's gradient whole (every rank computes it fully)."""
    res, _ = ranks
    loss, want = _single_process_clip()
    for r in res:
        got_loss, got = r["clip_splice"]
        assert got_loss == pytest.approx(loss, abs=1e-5)
        for k, g in want.items():
            scale = 1.0 if k == "logit_scale" else 1.0 / WORLD
            torch.testing.assert_close(got[k], scale * g, atol=1e-6, rtol=1e-5)


def test_ungathered_clip_loss_differs(ranks):
    """Per-rank CLIP losses see B−1 negatives, not W·B−1: a different loss and different gradients."""
    res, _ = ranks
    loss, want = _single_process_clip()
    _, _, xa, xb = data()
    towers = Towers()
    per_rank = [clip_loss(*towers(shard(xa, r), shard(xb, r))[:2], towers.logit_scale).item() for r in range(WORLD)]
    for r in res:
        got_loss, got = r["clip_none"]
        assert got_loss == pytest.approx(sum(per_rank) / WORLD, abs=1e-5)  # the mean of the per-rank losses
        assert abs(got_loss - loss) > 1e-2
        assert (got["a.weight"] - want["a.weight"]).abs().max() > 1e-3


def test_gathers_forward(ranks):
    res, _ = ranks
    want = torch.cat([torch.zeros(2, 3), torch.ones(2, 3)])
    for r in res:
        for got in r["gathered"]:
            torch.testing.assert_close(got, want)


def test_sampler_shards_disjoint_cover_and_reshuffle(ranks):
    res, _ = ranks
    for epoch in range(2):
        a, b = (set(r["shards"][epoch]) for r in res)
        assert not a & b and a | b == set(range(10)) and len(a) == len(b) == 5
    assert res[0]["shards"][0] != res[0]["shards"][1], "set_epoch must reshuffle"


def test_reduce_metrics_weighted_mean(ranks):
    res, _ = ranks
    for r in res:
        assert r["reduced"]["a"] == pytest.approx((1 * 1 + 2 * 2) / 3)


def test_checkpoint_from_two_ranks_resumes_on_one(ranks):
    """Saved by rank 0 of 2 after step 1; loaded in 1 process, step 2 on the whole batch == the 2-rank step 2."""
    res, out = ranks
    x, y, _, _ = data()
    model = ce_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    state = load_checkpoint(out / "ckpt.pt", model, opt)
    assert state["epoch"] == 1 and state["world_size"] == 2 and state["extra"] == {"note": "after step 1"}
    assert not any(k.startswith("module.") for k in state["model"])
    opt.zero_grad()
    F.cross_entropy(model(x[1]), y[1]).backward()
    opt.step()
    for k, p in model.state_dict().items():
        torch.testing.assert_close(res[0]["ce_params"][k], p, atol=1e-6, rtol=1e-5)


def test_failing_rank_fails_fast(tmp_path):
    """Rank 1 raises; the run fails at once (whichever rank reports first: rank 1's error, or rank 0's collective
    finding its peer gone), long before the group's 30 s timeout."""
    start = time.monotonic()
    peer_gone = "Connection (closed|reset) by peer|Broken pipe"  # gloo's words for "the other rank is gone"
    with pytest.raises(mp.ProcessRaisedException, match=f"rank 1 fails on purpose|{peer_gone}"):
        _spawn(tmp_path, fail=True)
    assert time.monotonic() - start < 25


# ------------------------------------------------------------------------------------------- without a process group
def test_clean_error_without_env():
    assert missing_env({}) == list(ENV_VARS)
    with pytest.raises(DistributedEnvError, match="RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT"):
        init_distributed(environ={})
    with pytest.raises(DistributedEnvError, match="MASTER_PORT") as e:
        init_distributed(environ={"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "x"})
    assert "torchrun" in str(e.value)
    full = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    with pytest.raises(ValueError, match="timeout_s"):
        init_distributed(environ=full, timeout_s=0)
    with pytest.raises(DistributedEnvError, match="inconsistent"):
        init_distributed(environ={**full, "RANK": "3"})


def test_entry_point_without_torchrun_names_missing_variables():
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    p = subprocess.run(
        [sys.executable, "-m", "mmlab.train_distributed", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    assert p.returncode != 0
    assert "missing environment variable(s) RANK, WORLD_SIZE" in p.stderr
    assert "Traceback" not in p.stderr, "a clean message, not a traceback"


def test_single_process_fallbacks_equal_clip_loss():
    _, _, xa, xb = data()
    za, zb = xa @ torch.randn(6, D), xb @ torch.randn(5, D)
    want = clip_loss(za, zb, 2.0)
    for mode in GATHER_MODES:
        assert distributed_clip_loss(za, zb, 2.0, mode).item() == pytest.approx(want.item(), abs=1e-6)
    assert local_clip_loss(za, zb, za, zb, 2.0, rank=0).item() == pytest.approx(want.item(), abs=1e-6)
    assert reduce_metrics({"a": 2}) == {"a": 2.0}


def test_local_clip_loss_rows_average_to_full_loss():
    """Each row of the full loss lives on exactly one rank: the mean of the W local losses is the full loss."""
    g = torch.Generator().manual_seed(5)
    za, zb = torch.randn(WORLD * B, D, generator=g), torch.randn(WORLD * B, D, generator=g)
    parts = [local_clip_loss(shard(za, r), shard(zb, r), za, zb, 1.5, rank=r) for r in range(WORLD)]
    assert (sum(parts) / WORLD).item() == pytest.approx(clip_loss(za, zb, 1.5).item(), abs=1e-6)


def test_fsdp_helpers_outside_a_group_leave_the_model_whole():
    from mmlab.distributed import full_tensors, local_parameter_count, wrap_fsdp

    model = wrap_fsdp(ce_model())
    assert isinstance(model, nn.Sequential)
    assert local_parameter_count(model) == sum(p.numel() for p in model.parameters())
    state = model.state_dict()
    assert all(torch.equal(full_tensors(state)[k], v) for k, v in state.items())
    with pytest.raises(TypeError, match="nn.Module"):
        wrap_fsdp("not a model")


def test_bad_input_raises():
    z = torch.randn(4, D)
    with pytest.raises(ValueError, match="gather must be one of"):
        distributed_clip_loss(z, z, 1.0, "ring")
    with pytest.raises(ValueError, match="multiple of the local batch"):
        local_clip_loss(z, z, torch.randn(6, D), torch.randn(6, D), 1.0, rank=0)
    with pytest.raises(ValueError, match="rank must be"):
        local_clip_loss(z, z, torch.randn(8, D), torch.randn(8, D), 1.0, rank=2)
    with pytest.raises(ValueError, match="shape"):
        distributed_clip_loss(z, torch.randn(3, D), 1.0)
    with pytest.raises(ValueError, match="rank must be"):
        ShardedLoader(torch.arange(10), batch_size=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="exceeds the shard size"):
        ShardedLoader(torch.arange(10), batch_size=6, rank=0, world_size=2)
    with pytest.raises(ValueError, match="share their first dimension"):
        ShardedLoader(torch.arange(10), torch.arange(9), batch_size=2, rank=0, world_size=1)
    with pytest.raises(ValueError, match="world_size"):
        allreduce_bytes(10, 0)
    with pytest.raises(ValueError, match="count"):
        reduce_metrics({"a": 1.0}, count=0)
    with pytest.raises(FileNotFoundError):
        load_checkpoint("/nonexistent/ckpt.pt", nn.Linear(2, 2))


def test_sharded_loader_in_one_process_matches_distributed_sampler_layout():
    """Shards interleave, so step k's global batch is positions kB…(k+1)B−1 of the epoch's permutation for any W."""
    n, global_batch = 24, 8
    x = torch.arange(n)
    one = ShardedLoader(x, batch_size=global_batch, rank=0, world_size=1, seed=7)
    two = [ShardedLoader(x, batch_size=global_batch // 2, rank=r, world_size=2, seed=7) for r in range(2)]
    for epoch in range(2):
        for loader in (one, *two):
            loader.set_epoch(epoch)
        for (b1,), (b2a,), (b2b,) in zip(one, *two):
            assert sorted(b1.tolist()) == sorted(b2a.tolist() + b2b.tolist())
    assert len(one) == 3 and len(two[0]) == 3


def test_communication_volumes():
    assert allreduce_bytes(1000, 1) == 0 and allreduce_bytes(1000, 2) == 1000 and allreduce_bytes(1000, 4) == 1500
    assert allgather_bytes(100, 1) == 0 and allgather_bytes(100, 4) == 300
