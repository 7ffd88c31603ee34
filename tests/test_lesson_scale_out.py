"""Lesson 8's drivers: torchrun launched from Python (progress, metrics, no process left behind), the simulated
ranks against real ones, the equivalence check, the widget figure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from matplotlib.figure import Figure

from mmlab.lessons.scale_out import (
    batch_clip_loss,
    group_alive,
    launch,
    negatives_per_sample,
    scale_out_figure,
    single_process_reference,
    sweep,
)
from mmlab.train_distributed import Config, load_pairs, parse_config, simulated_loss, train_simulated

QUICK = dict(epochs=2, global_batch=32, max_steps=4)


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run2")
    rows: list[dict] = []
    log: list[str] = []
    metrics = launch(
        Config(**QUICK, gather="local", out=str(out)),
        2,
        progress=False,
        on_progress=rows.append,
        log=log,
        timeout_s=120,
    )
    return metrics, rows, log, out


def test_launch_two_ranks_writes_metrics_and_per_rank_logs(two_rank_run):
    metrics, rows, log, out = two_rank_run
    assert metrics["world_size"] == 2 and metrics["local_batch"] == 16 and metrics["negatives_per_sample"] == 31
    assert [r["epoch"] for r in rows] == [1, 2] and len(metrics["epochs"]) == 2
    for r in range(2):
        lines = [json.loads(x) for x in (out / f"rank{r}.log").read_text().splitlines()]
        assert [x["rank"] for x in lines] == [r, r] and all(x["steps"] == 4 for x in lines)
    assert any(line.startswith("PROGRESS ") for line in log)
    assert metrics["gather_bytes_per_step"] == 2 * 16 * 32 * 4  # (W−1) × both towers' float32 embeddings
    assert 0 <= metrics["test_R@1"] <= 1


def test_two_gathered_ranks_retrace_the_simulation(two_rank_run):
    """The same global batches, the gathered loss: 2 real ranks == 1 process, epoch by epoch."""
    metrics, _, _, _ = two_rank_run
    _, rows = train_simulated(Config(**QUICK, gather="local"), 1)
    for real, sim in zip(metrics["epochs"], rows):
        assert real["loss"] == pytest.approx(sim["loss"], abs=1e-4)
        assert real["val_R@1"] == pytest.approx(sim["val_R@1"], abs=1e-6)


def test_simulated_none_equals_real_none(tmp_path):
    metrics = launch(Config(**QUICK, gather="none", out=str(tmp_path)), 2, progress=False, timeout_s=120)
    _, rows = train_simulated(Config(**QUICK, gather="none"), 2)
    assert metrics["negatives_per_sample"] == 15 and metrics["gather_bytes_per_step"] == 0
    for real, sim in zip(metrics["epochs"], rows):
        assert real["loss"] == pytest.approx(sim["loss"], abs=1e-4)


def test_equivalence_check_under_torchrun(tmp_path):
    assert launch(Config(), 2, module="mmlab.lessons.scale_out", args=[str(tmp_path)], timeout_s=120) is None
    ranks = torch.load(tmp_path / "ranks.pt", weights_only=False)
    ref = single_process_reference()
    for k, g in ref["ce"].items():
        torch.testing.assert_close(ranks["ce"][k], g, atol=1e-6, rtol=1e-5)
    for mode in ("all_gather", "local"):
        loss, grads = ranks[f"clip_{mode}"]
        assert loss == pytest.approx(ref["clip"][0], abs=1e-5)
        for k, g in ref["clip"][1].items():
            torch.testing.assert_close(grads[k], g, atol=1e-6, rtol=1e-5)
    assert ranks["clip_none"][0] == pytest.approx(ref["clip_per_shard"], abs=1e-5)
    assert abs(ranks["clip_none"][0] - ref["clip"][0]) > 1e-2
    # FSDP: the gradient of 1 process × 2B, gathered whole from the shards; each rank stores about half
    for k, g in ref["ce"].items():
        torch.testing.assert_close(ranks["fsdp"]["grads"][k], g, atol=1e-6, rtol=1e-5)
    total = sum(g.numel() for g in ref["ce"].values())
    per_rank = ranks["fsdp"]["values_per_rank"]
    assert sum(per_rank) == total and all(0 < n < 0.6 * total for n in per_rank)


def test_interrupt_leaves_no_process_behind(tmp_path):
    """A KeyboardInterrupt in the cell (here: raised by the progress callback) kills torchrun and every rank."""
    groups: list[int] = []

    def interrupt(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        launch(
            Config(epochs=50, global_batch=32, out=str(tmp_path)),
            2,
            progress=False,
            on_start=groups.append,
            on_progress=interrupt,
        )
    assert len(groups) == 1
    assert not group_alive(groups[0]), "torchrun or a rank survived the interrupt"
    assert not (tmp_path / "metrics.json").exists()


def test_failed_run_raises_with_output(tmp_path):
    with pytest.raises(RuntimeError, match="global_batch 33 must be a multiple"):
        launch(Config(epochs=1, global_batch=33, out=str(tmp_path)), 2, progress=False, timeout_s=120)


def test_launch_rejects_bad_input():
    with pytest.raises(ValueError, match="nproc"):
        launch(Config(), 0)
    with pytest.raises(ValueError, match="timeout_s"):
        launch(Config(), 1, timeout_s=0)
    assert not group_alive(2**22 + 12345)


def test_parse_config_json_and_flags(tmp_path):
    cfg = parse_config(["--config", '{"epochs": 3, "gather": "none"}', "--epochs", "4"])
    assert cfg.epochs == 4 and cfg.gather == "none"
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"global_batch": 16}))
    assert parse_config(["--config", str(path)]).global_batch == 16
    with pytest.raises(SystemExit):
        parse_config(["--config", '{"epoch": 3}'])
    with pytest.raises(ValueError, match="multiple of the world size"):
        Config(global_batch=6).validate(4)
    with pytest.raises(ValueError, match="gather must be one of"):
        Config(gather="ring").validate()


def test_simulated_loss_modes_agree_on_value_and_gradient_scale():
    g = torch.Generator().manual_seed(0)
    base_a, base_b = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    t = torch.tensor(2.0)
    grads = {}
    for mode in ("all_gather", "local", "splice", "none"):
        a = base_a.clone().requires_grad_(True)
        za, zb = list(a.split(4)), list(base_b.split(4))
        loss = simulated_loss(za, zb, t, mode)
        loss.backward()
        grads[mode] = (loss.item(), a.grad)
    assert grads["local"][0] == pytest.approx(grads["all_gather"][0], abs=1e-6)
    torch.testing.assert_close(grads["local"][1], grads["all_gather"][1])
    torch.testing.assert_close(grads["splice"][1], grads["all_gather"][1] / 2)
    assert abs(grads["none"][0] - grads["all_gather"][0]) > 1e-2


def test_sweep_and_figure():
    cfg = Config(epochs=2, global_batch=16, max_steps=3)
    runs = sweep(cfg, [1, 4], [0, 1], gather="none", progress=False)
    assert set(runs) == {1, 4} and all(len(v) == 2 and len(v[0]) == 2 for v in runs.values())
    assert {"test_R@1", "val_clip_loss"} <= set(runs[4][0][-1])
    curves = {(w, w == 1): [[r["val_R@1"] for r in run] for run in v] for w, v in runs.items()}
    fig = scale_out_figure(4, False, curves=curves, global_batch=16)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[1].get_legend().get_texts()[1].get_text() == "per-rank loss, W = 4"
    fig2 = scale_out_figure(4, True, curves=curves, global_batch=16)
    assert len(fig2.axes[1].get_lines()) == 1
    with pytest.raises(ValueError, match="no curves"):
        scale_out_figure(8, False, curves=curves, global_batch=16)
    assert negatives_per_sample(64, 2, True) == 63 and negatives_per_sample(64, 2, False) == 31
    with pytest.raises(ValueError, match="divide"):
        negatives_per_sample(64, 3, False)


def test_batch_clip_loss_after_one_step():
    pairs, tok = load_pairs()
    cfg = Config(epochs=1, global_batch=16, max_steps=1)
    model, _ = train_simulated(cfg, 1, pairs=pairs, vocab_size=len(tok))
    loss = batch_clip_loss(model, pairs["val"], 16)
    assert 0 < loss < 2 * torch.log(torch.tensor(16.0)).item()
    with pytest.raises(ValueError, match="exceeds"):
        batch_clip_loss(model, pairs["val"], 10_000)


def test_module_usage_message():
    p = subprocess.run([sys.executable, "-m", "mmlab.lessons.scale_out"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "usage" in p.stderr
