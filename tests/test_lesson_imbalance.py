import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from mmlab.balance import (
    GradNorm,
    UncertaintyWeighting,
    gradient_norms,
    inverse_norm_weights,
    modality_logits,
    modality_scores,
    modulate_gradients,
    ogm_coefficients,
    weighted_sum,
)
from mmlab.lessons.imbalance import (
    BALANCERS,
    IMBALANCE_METHODS,
    OPTIMIZERS,
    ImbalanceData,
    MultitaskData,
    imbalance_experiment,
    imbalance_widget_figure,
    load_imbalance_data,
    load_multitask_data,
    per_epoch,
    plot_rho_k,
    probe_modality,
    train_imbalance,
    train_multitask,
)
from mmlab.models import MultimodalClassifier
from mmlab.runtime import seeded


@pytest.fixture(scope="module")
def data():
    return load_imbalance_data(0.3)


@pytest.fixture(scope="module")
def small(data):
    """200 training and 100 test rows: enough to exercise every code path in a fraction of a second."""
    return ImbalanceData(
        {m: x[:200] for m, x in data.train.items()},
        {m: x[:100] for m, x in data.val.items()},
        {m: x[:100] for m, x in data.test.items()},
        data.y_train[:200],
        data.y_val[:100],
        data.y_test[:100],
        data.image_noise,
    )


def test_constants_name_what_they_are():
    assert IMBALANCE_METHODS == ("baseline", "ogm", "ogm_ge", "aux", "inverse_norm", "alone")
    assert OPTIMIZERS == ("sgd", "adam") and BALANCERS == ("fixed", "uncertainty", "gradnorm")


def test_imbalance_data_shapes_and_standardised_audio(data):
    assert data.dims == {"image": 64, "audio": 40} and data.num_modalities == 2
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        assert list(x) == ["image", "audio"] and {t.shape[1] for t in x.values()} == {64, 40}
        assert len(y) == len(x["image"]) == len(x["audio"]) and len(y) > 300
    assert data.train["audio"].mean(0).abs().max() < 1e-4
    assert data.val["audio"].mean(0).abs().max() > 1e-3  # val is standardised with training statistics, not its own
    assert not torch.equal(data.val["image"][:300], data.test["image"][:300])
    with pytest.raises(ValueError, match="split must be one of"):
        data.split("dev")


def test_train_imbalance_records_diagnostics_and_alpha_zero_equals_baseline(small):
    base = train_imbalance(small, "baseline", epochs=2, progress=False, device="cpu")
    steps = 2 * math.ceil(len(small.y_train) / 64)
    assert len(base.rho) == steps and len(base.k["audio"]) == steps and set(base.k["image"]) == {1.0}
    assert len(base.half_train_acc["image"]) == 2 and 0.0 <= base.test_acc <= 1.0 and 0.0 <= base.val_acc <= 1.0
    with torch.no_grad():
        val_pred = base.model(*small.val.values()).argmax(-1)
    assert base.val_acc == pytest.approx(float((val_pred == small.y_val).float().mean()))
    assert not base.model.training
    same = train_imbalance(small, "ogm", alpha=0.0, epochs=2, progress=False, device="cpu")
    assert same.test_acc == base.test_acc and same.rho == base.rho
    ogm = train_imbalance(small, "ogm", alpha=1.0, epochs=2, progress=False, device="cpu")
    assert min(ogm.k["audio"] + ogm.k["image"]) < 1.0
    inv = train_imbalance(small, "inverse_norm", epochs=1, progress=False, device="cpu")
    assert min(min(inv.k[m]) for m in inv.k) == pytest.approx(1.0) and max(inv.k["image"] + inv.k["audio"]) > 1.0
    alone = train_imbalance(small, "alone", epochs=1, progress=False, device="cpu")
    assert alone.model.modalities == ["image"] and not alone.rho
    aux = train_imbalance(small, "aux", modality="audio", epochs=1, progress=False, device="cpu")
    with pytest.raises(ValueError, match="recorded no ρ"):
        plot_rho_k({"aux": aux})
    with pytest.raises(ValueError, match="method must be one of"):
        train_imbalance(small, "gradnorm")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_imbalance(small, "ogm", optimizer="rmsprop")
    with pytest.raises(ValueError, match="modality must be one of"):
        train_imbalance(small, "alone", modality="visual")
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train_imbalance(small, "baseline", epochs=0)


def test_trainers_leave_the_callers_random_state_alone(small):
    mt = load_multitask_data(0.0).head(128)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    train_imbalance(small, "ogm_ge", epochs=1, progress=False, device="cpu")
    train_multitask(mt, "gradnorm", epochs=1, progress=False, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)


def _reference_imbalance(data: ImbalanceData, method: str, seed: int, epochs: int, alpha: float = 1.0):
    """The lesson's training loop as it was first written by hand (SGD, batch 64): fit must reproduce it."""
    with seeded(seed) as gen:
        names = list(data.train)
        encoders = {
            m: nn.Sequential(nn.Linear(data.dims[m], 64), nn.ReLU(), nn.Linear(64, 16), nn.ReLU()) for m in names
        }
        model = MultimodalClassifier(encoders, 10, fused_dim=32)
        aux = nn.ModuleDict({m: nn.Linear(16, 10) for m in names}) if method == "aux" else None
        params = list(model.parameters()) + (list(aux.parameters()) if aux is not None else [])
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
        groups = {m: list(model.encoders[m].parameters()) for m in names}
        x_tr, y_tr = [data.train[m] for m in names], data.y_train
        rho, k_audio, half = [], [], []
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(y_tr), generator=gen).split(64):
                feats = model.features(*[x[idx] for x in x_tr])
                loss = F.cross_entropy(model.head(torch.cat(feats, -1)), y_tr[idx])
                if aux is not None:
                    loss = loss + sum(F.cross_entropy(aux[m](h), y_tr[idx]) for m, h in zip(names, feats))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if method != "aux":
                    s = modality_scores(feats, model.head, y_tr[idx])
                    rho.append(float(s[1] / s[0].clamp_min(1e-12)))
                    if method in ("ogm", "ogm_ge"):
                        coeffs = dict(zip(names, ogm_coefficients(s[0], s[1], alpha)))
                        modulate_gradients(groups, coeffs, noise=method == "ogm_ge")
                    elif method == "inverse_norm":
                        coeffs = inverse_norm_weights(gradient_norms(groups))
                        modulate_gradients(groups, coeffs)
                    else:
                        coeffs = dict.fromkeys(names, 1.0)
                    k_audio.append(coeffs["audio"])
                opt.step()
            model.eval()
            with torch.no_grad():
                outs = modality_logits(model.features(*x_tr), model.head)
                half.append(float((outs[0].argmax(-1) == y_tr).float().mean()))
        with torch.no_grad():
            acc = float((model(*data.test.values()).argmax(-1) == data.y_test).float().mean())
    return acc, rho, k_audio, half


@pytest.mark.parametrize("method", ["ogm_ge", "inverse_norm", "aux"])
def test_train_imbalance_through_fit_reproduces_the_hand_written_loop(small, method):
    acc, rho, k_audio, half = _reference_imbalance(small, method, seed=3, epochs=2)
    run = train_imbalance(small, method, seed=3, epochs=2, progress=False, device="cpu")
    assert run.test_acc == acc and run.rho == rho and run.k["audio"] == k_audio
    assert run.half_train_acc["image"] == half


def test_probe_modality_and_experiment_cache():
    run = imbalance_experiment("baseline", seed=0, epochs=1)
    assert imbalance_experiment("baseline", seed=0, epochs=1, alpha=2.0) is run  # alpha unused: one cache entry
    assert imbalance_experiment("ogm", seed=0, epochs=1, alpha=2.0) is not imbalance_experiment(
        "ogm", seed=0, epochs=1, alpha=2.0, lr=0.02
    )
    assert 0.0 <= run.image_probe <= 1.0 and 0.0 <= run.image_probe_val <= 1.0
    data = load_imbalance_data(0.3)
    assert run.image_probe == probe_modality(run, data, "image")
    both = probe_modality(run, data, "image", splits=("val", "test"))
    assert both == {"val": run.image_probe_val, "test": run.image_probe}
    with pytest.raises(ValueError, match="splits must be a sequence"):
        probe_modality(run, data, "image", splits="val")
    with pytest.raises(ValueError, match="method must be one of"):
        imbalance_experiment("fixed")


def test_per_epoch():
    assert per_epoch([1, 3, 5, 7], 2).tolist() == [2.0, 6.0]
    with pytest.raises(ValueError, match="not a multiple"):
        per_epoch([1, 2, 3], 2)


@pytest.fixture(scope="module")
def mt_small():
    return load_multitask_data(0.0).head(256)


def test_multitask_data_splits_widths_and_ink_units():
    d = load_multitask_data(0.0)
    img = load_imbalance_data(0.0)
    for split in ("train", "val", "test"):
        x, y, ink = d.split(split)
        assert x.shape == (len(y), 64) and ink.shape == (len(y),)  # the trunk's input width: 8×8 pixels
        assert torch.equal(x, img.split(split)[0]["image"]) and torch.equal(y, img.split(split)[1])
        assert torch.allclose(ink, x.sum(1) * 16)  # clean images: the ink is the raw 0–16 pixel sum
    assert 200 < float(d.ink_train.mean()) < 400
    small = d.head(10)
    assert len(small.x_train) == 10 and torch.equal(small.x_val, d.x_val) and torch.equal(small.ink_test, d.ink_test)


def test_train_multitask_every_method_runs_and_records_weights(mt_small):
    assert mt_small.ink_train.mean() > 100  # raw units: the two losses differ by orders of magnitude
    for method in BALANCERS:
        run = train_multitask(mt_small, method, epochs=2, progress=False, device="cpu")
        assert len(run.weights) == 2 and len(run.weights[0]) == 2 and np.isfinite(run.test_rmse)
        assert len(run.losses) == 2 and run.losses[0][1] > 100 * run.losses[0][0]
        assert 0.0 <= run.val_acc <= 1.0 and np.isfinite(run.val_rmse)
    assert run.weights[-1] != [1.0, 1.0] and sum(run.weights[-1]) == pytest.approx(2.0)  # GradNorm renormalises
    with pytest.raises(ValueError, match="method must be one of"):
        train_multitask(mt_small, "pcgrad")


def _reference_multitask(data: MultitaskData, method: str, seed: int, epochs: int, weight_lr: float):
    """The multi-task loop as first written by hand (GradNorm's own backward): fit must reproduce it."""
    with seeded(seed) as gen:
        trunk = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        heads = nn.ModuleList([nn.Linear(32, 10), nn.Linear(32, 1)])
        with torch.no_grad():
            heads[1].bias.fill_(float(data.ink_train.mean()))
        balancer = {"fixed": None, "uncertainty": UncertaintyWeighting(2), "gradnorm": GradNorm(2)}[method]
        groups = [{"params": list(trunk.parameters()) + list(heads.parameters()), "lr": 0.01}]
        if balancer is not None:
            groups.append({"params": list(balancer.parameters()), "lr": weight_lr})
        opt = torch.optim.Adam(groups)
        x, y, ink = data.x_train, data.y_train, data.ink_train
        for _ in range(epochs):
            for idx in torch.randperm(len(y), generator=gen).split(64):
                h = trunk(x[idx])
                losses = torch.stack(
                    [F.cross_entropy(heads[0](h), y[idx]), F.mse_loss(heads[1](h).squeeze(-1), ink[idx])]
                )
                opt.zero_grad(set_to_none=True)
                if isinstance(balancer, GradNorm):
                    balancer.backward(losses, trunk[2].weight)
                elif isinstance(balancer, UncertaintyWeighting):
                    balancer(losses).backward()
                else:
                    weighted_sum(losses, (1.0, 1.0)).backward()
                opt.step()
                if isinstance(balancer, GradNorm):
                    balancer.renormalize()
        with torch.no_grad():
            h = trunk(data.x_test)
            acc = float((heads[0](h).argmax(-1) == data.y_test).float().mean())
            rmse = float((heads[1](h).squeeze(-1) - data.ink_test).pow(2).mean().sqrt())
    return acc, rmse, balancer.weights.tolist() if balancer is not None else [1.0, 1.0]


@pytest.mark.parametrize("method", BALANCERS)
def test_train_multitask_through_fit_reproduces_the_hand_written_loop(mt_small, method):
    acc, rmse, weights = _reference_multitask(mt_small, method, seed=2, epochs=2, weight_lr=0.05)
    run = train_multitask(mt_small, method, seed=2, epochs=2, lr=0.01, weight_lr=0.05, progress=False, device="cpu")
    assert (run.test_acc, run.test_rmse) == (acc, rmse)
    # the weights may differ in the last float32 bit (exp over a 2-element tensor vs element by element)
    assert run.weights[-1] == pytest.approx(weights, rel=1e-6, abs=0)


def test_widget_figure_has_labels_and_changes_with_alpha():
    f1 = imbalance_widget_figure(alpha=1.0, epochs=2)
    f2 = imbalance_widget_figure(alpha=0.0, epochs=2)
    assert isinstance(f1, Figure) and f1.get_suptitle()
    for ax in f1.axes:
        assert ax.get_title() and ax.get_ylabel()
    assert "image" in f1.axes[0].get_ylabel() and f1.axes[0].get_xlabel() == "epoch"
    arrays = []
    for f in (f1, f2):
        canvas = FigureCanvasAgg(f)
        canvas.draw()
        arrays.append(np.asarray(canvas.buffer_rgba()))
    assert arrays[0].shape == arrays[1].shape and not np.array_equal(arrays[0], arrays[1])
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        imbalance_widget_figure(alpha=-1.0)
    with pytest.raises(ValueError, match="image_noise must be a finite number >= 0"):
        imbalance_widget_figure(image_noise=float("nan"))
