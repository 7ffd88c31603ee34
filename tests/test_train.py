import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlab import seed_everything
from mmlab.train import History, accuracy, eval_mode, evaluate, fit, make_loader, predict


def _toy(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def _model():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def test_fit_learns_and_records_history():
    seed_everything(0)
    x, y = _toy()
    loader = make_loader(x, y, batch_size=32, shuffle=True)
    model = _model()
    hist = fit(
        model, loader, epochs=15, lr=1e-2, val_loader=make_loader(x, y, batch_size=64), progress=False, device="cpu"
    )
    assert isinstance(hist, History) and hist.epochs == 15
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist.last("val_acc") > 0.9
    assert evaluate(model, make_loader(x, y))["accuracy"] > 0.9
    assert predict(model, make_loader(x, y)).shape == (256, 2)
    assert accuracy(predict(model, make_loader(x, y)), y) > 0.9


def test_checkpoint_resume_reproduces_uninterrupted_run(tmp_path):
    x, y = _toy()

    def run(epochs, ckpt=None, resume=False, model=None):
        loader = make_loader(x, y, batch_size=32, shuffle=True, seed=1)
        if model is None:
            seed_everything(0)
            model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        fit(model, loader, epochs=epochs, optimizer=opt, checkpoint=ckpt, resume=resume, progress=False, device="cpu")
        return model

    straight = run(6)
    run(3, ckpt=tmp_path / "c.pt")
    seed_everything(123)  # disturb every RNG: resume must restore them
    resumed = run(6, ckpt=tmp_path / "c.pt", resume=True, model=_model())
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_clip_grad_norm_and_hook():
    x, y = _toy(64)
    norms = []

    def hook(model, batch, out):
        norms.append(torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item())

    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.mul_(100)
    fit(
        model,
        make_loader(x, y, batch_size=64),
        epochs=1,
        lr=0.0,
        clip_grad_norm=1e-3,
        after_backward=hook,
        progress=False,
        device="cpu",
    )
    assert len(norms) == 1 and norms[0] > 1e-3
    after_clip = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    assert after_clip == pytest.approx(1e-3, rel=1e-3)


def test_fit_errors():
    x, y = _toy(8)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        fit(_model(), make_loader(x, y), epochs=0)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        fit(_model(), make_loader(x, y), epochs=1, resume=True, checkpoint="/nonexistent/c.pt")
    with pytest.raises(ValueError, match="share their first dimension"):
        make_loader(x, y[:3])
    with pytest.raises(FloatingPointError, match="loss became"):
        bad = nn.Linear(4, 2)
        fit(bad, make_loader(x * float("inf"), y), epochs=1, progress=False, device="cpu")


def test_resume_rejects_foreign_checkpoint(tmp_path):
    x, y = _toy(8)
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(KeyError, match="lacks"):
        fit(_model(), make_loader(x, y), epochs=1, resume=True, checkpoint=tmp_path / "other.pt", device="cpu")


def test_make_loader_orders_come_from_its_own_generator():
    x, y = _toy(10)
    torch.manual_seed(0)
    global_before = torch.get_rng_state()
    loader = make_loader(x, y, batch_size=4, shuffle=True, seed=7)
    batches = list(loader)
    assert torch.equal(torch.get_rng_state(), global_before), "the loader must not touch the global RNG"
    order = torch.randperm(10, generator=torch.Generator().manual_seed(7))
    assert [len(b[0]) for b in batches] == [4, 4, 2] and len(loader) == 3
    assert torch.equal(torch.cat([b[1] for b in batches]), y[order]), "same order as randperm(seeded generator)"
    second = torch.cat([b[1] for b in loader])
    assert not torch.equal(second, torch.cat([b[1] for b in batches])), "a new permutation each epoch"
    sequential = list(make_loader(x, y, batch_size=4))
    assert torch.equal(torch.cat([b[0] for b in sequential]), x)
    dropped = list(make_loader(x, y, batch_size=4, shuffle=True, drop_last=True))
    assert [len(b[0]) for b in dropped] == [4, 4]


def test_make_loader_weighted_draws():
    x = torch.arange(6).float()[:, None]
    w = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 3.0])
    drawn = torch.cat([b[0] for b in make_loader(x, batch_size=50, weights=w, num_samples=4000, seed=1)]).squeeze(1)
    assert set(drawn.tolist()) == {2.0, 5.0}
    assert 0.70 < (drawn == 5).float().mean() < 0.80, "drawn with probability proportional to the weights"
    with pytest.raises(ValueError, match="weights must be >= 0"):
        make_loader(x, weights=-w)
    with pytest.raises(ValueError, match=r"weights must have shape \(6\)"):
        make_loader(x, weights=w[:3])
    with pytest.raises(ValueError, match="num_samples only applies"):
        make_loader(x, num_samples=3)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        make_loader(x, batch_size=0)
    with pytest.raises(TypeError, match=r"tensors\[1\] must be a torch.Tensor"):
        make_loader(x, [1, 2])


def test_eval_mode_restores_each_submodule_also_on_error():
    model = _model()
    model.train()
    model[2].eval()  # a submodule deliberately left in eval mode (e.g. a frozen part)
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert model.training and not model[2].training
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model, None):
        raise RuntimeError("boom")
    assert model.training and not model[2].training
    with pytest.raises(TypeError, match="nn.Module"):
        with eval_mode("model"):
            pass


def test_predict_on_tensors_in_batches_restores_mode():
    x, _ = _toy(70)
    model = _model().train()
    out = predict(model, x, batch_size=32)
    assert out.shape == (70, 2) and model.training
    with eval_mode(model), torch.no_grad():
        assert torch.allclose(out, model(x))
    two = predict(model, [x, x], fn=lambda a, b: model(a) + model(b), batch_size=25)
    assert torch.allclose(two, 2 * out, atol=1e-6)
    with pytest.raises(ValueError, match=r"data\[1\] must have 70 rows"):
        predict(model, [x, x[:5]])


def test_history_counts_epochs_and_steps():
    x, y = _toy(100)
    hist = fit(_model(), make_loader(x, y, batch_size=32), epochs=3, log_steps=True, progress=False, device="cpu")
    assert hist.epochs == 3 and len(hist["train_loss"]) == 3
    assert hist.steps == 12 and len(hist.steps_log["loss"]) == 12  # 4 batches x 3 epochs
    with pytest.raises(KeyError, match="was not logged"):
        hist["nope"]


def test_compute_loss_and_hooks():
    """A custom objective with extra scalars, gradient work after backward, and epoch metrics."""
    x, y = _toy(64)
    model = _model()
    calls = {"after_backward": 0, "after_step": 0}

    def compute_loss(model, batch):
        xb, yb = batch
        logits = model(xb)
        ce = F.cross_entropy(logits, yb)
        return {"loss": 2 * ce, "ce": ce, "logits": logits.detach().mean(), "_features": logits}

    def after_backward(model, batch, result):
        assert set(result) == {"loss", "ce", "logits", "_features"} and result["_features"].shape == (16, 2)
        assert all(p.grad is not None for p in model.parameters())
        calls["after_backward"] += 1

    def after_step(model, batch):
        calls["after_step"] += 1

    hist = fit(
        model,
        make_loader(x, y, batch_size=16),
        epochs=2,
        compute_loss=compute_loss,
        after_backward=after_backward,
        after_step=after_step,
        after_epoch=lambda model, epoch: {"epoch_plus_one": epoch + 1},
        progress=False,
        device="cpu",
    )
    assert calls == {"after_backward": 8, "after_step": 8}
    assert hist["epoch_plus_one"] == [1.0, 2.0]
    assert hist["train_loss"][0] == pytest.approx(2 * hist["ce"][0], rel=1e-5)
    assert "train_acc" not in hist  # no class outputs on the compute_loss path
    assert "_features" not in hist, "underscore entries ride along to the hooks, unlogged"
    with pytest.raises(KeyError, match="'loss' key"):
        fit(_model(), make_loader(x, y), epochs=1, compute_loss=lambda m, b: {"ce": 1.0}, progress=False)
