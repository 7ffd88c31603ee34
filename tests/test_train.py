import pytest
import torch
from torch import nn

from mmlab import seed_everything
from mmlab.train import History, accuracy, evaluate, fit, make_loader, predict


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
