"""The shared Trainer: learning, early stopping, TBPTT, seeds, schedules, exact resume, stop limits."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

from rnnkit.errors import UserError
from rnnkit.nn.registry import make_layer
from rnnkit.train import Trainer, TrainConfig, seed_everything, to_device
from rnnkit.train.callbacks import LRSchedule

torch.set_num_threads(1)


# ---------------------------------------------------------------- a tiny real problem
class SineNet(nn.Module):
    """x: (batch, time, 1) -> next value of the sine after each step: (batch, time, 1)."""

    def __init__(self, cell: str = "gru", hidden: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = make_layer(cell, 1, hidden)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, state=None):
        y, state = self.rnn(x, state)
        return self.head(self.drop(y)), state


def sine_windows(n: int, t: int = 20, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n windows of sin at random phases: inputs (n, t, 1), targets = values one step (0.1) later."""
    g = torch.Generator().manual_seed(int(offset * 1000) + n)
    start = torch.rand(n, 1, generator=g) * 6.28 + offset
    tt = start + 0.1 * torch.arange(t + 1)
    s = torch.sin(tt).unsqueeze(-1)
    return s[:, :-1], s[:, 1:]


def seq_loss(model, batch, state):
    x, y = batch
    pred, _ = model(x)
    return nn.functional.mse_loss(pred, y), None


def loaders(shuffle: bool = True, n_train: int = 96, batch: int = 16):
    x, y = sine_windows(n_train)
    xv, yv = sine_windows(32, offset=3.0)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=shuffle)
    val = [(xv, yv)]
    return train, val


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, lr=1e-2, progress=False, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict, atol: float = 0.0) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def test_loss_falls_on_sine():
    seed_everything(0)
    model = SineNet("lstm")
    train, val = loaders()
    trainer = Trainer(model, cfg(epochs=15), seq_loss)
    first = trainer.evaluate(val)
    h = trainer.fit(train, val)
    assert h.epochs == 15 and h.steps == 15 * 6 and len(h.rows) == 15
    assert h.best_val_loss < 0.1 * first, (first, h.best_val_loss)
    assert h.best_val_loss < 0.02
    assert h.rows[-1]["train_loss"] < h.rows[0]["train_loss"]


def test_early_stopping_restores_best_weights():
    # Train on y = x, validate on y = -x: val loss rises every epoch, so the best is epoch 1.
    x = torch.linspace(-1, 1, 64).unsqueeze(-1)
    train, val = [(x[i:i + 16], x[i:i + 16]) for i in range(0, 64, 16)], [(x, -x)]

    def make():
        m = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(m.weight)
        return m

    def loss(m, b, s):
        return nn.functional.mse_loss(m(b[0]), b[1]), None

    one = make()
    Trainer(one, cfg(epochs=1, lr=0.05, patience=2), loss).fit(train, val)
    model = make()
    h = Trainer(model, cfg(epochs=50, lr=0.05, patience=2), loss).fit(train, val)
    assert h.stopped_early and h.stop_reason == "early_stopping"
    assert h.epochs == 3 and len(h.rows) == 3
    assert h.rows[1]["val_loss"] > h.rows[0]["val_loss"]
    assert h.best_val_loss == pytest.approx(h.rows[0]["val_loss"]) and h.best_epoch == 1
    assert torch.equal(model.weight, one.weight)  # the epoch-1 weights came back


def test_tbptt_carries_detached_state():
    """A long sequence cut into consecutive chunks; the state flows across batches without
    'backward through the graph a second time' and is reset at each epoch."""
    x, y = sine_windows(4, t=120)
    chunks = [(x[:, i:i + 20], y[:, i:i + 20]) for i in range(0, 120, 20)]
    seen = []

    def loss(model, batch, state):
        seen.append(state)
        pred, new_state = model(batch[0], state)
        return nn.functional.mse_loss(pred, batch[1]), new_state

    seed_everything(0)
    model = SineNet("lstm")
    h = Trainer(model, cfg(epochs=2, carry_state=True), loss).fit(chunks, [chunks[0]])
    assert h.steps == 12
    # training calls: 6 per epoch, then 1 val call (val starts from None too)
    train_calls = seen[0:6] + seen[7:13]
    assert train_calls[0] is None and train_calls[6] is None  # reset at epoch start
    for st in train_calls[1:6] + train_calls[7:]:
        h0, c0 = st
        assert h0.shape == (1, 4, 16) and not h0.requires_grad and not c0.requires_grad
    assert seen[6] is None  # validation starts fresh


def test_same_seed_same_weights_and_other_seed_differs():
    def run(seed):
        seed_everything(seed)
        model = SineNet("gru", dropout=0.2)
        train, val = loaders(shuffle=True)
        Trainer(model, cfg(epochs=2, seed=seed), seq_loss).fit(train, val)
        return weights(model)

    a, b, c = run(1), run(1), run(2)
    assert same(a, b)
    assert not same(a, c)


@pytest.mark.parametrize("how", ["max_steps", "exception"])
def test_resume_continues_exactly(tmp_path, how):
    """Interrupt mid-epoch (max_steps, or a crash after the last checkpoint), resume, and end with
    the same weights as one uninterrupted run (shuffled DataLoader + dropout: RNGs must be restored)."""
    def run(out, max_steps=None, crash_at=None, resume=False):
        seed_everything(0)
        model = SineNet("gru", dropout=0.3)
        train, val = loaders(shuffle=True)  # 6 batches per epoch
        calls = {"n": 0}

        def loss(m, b, s):
            calls["n"] += 1
            if crash_at is not None and calls["n"] == crash_at:
                raise RuntimeError("injected crash")
            return seq_loss(m, b, s)

        c = cfg(epochs=4, out_dir=str(out), max_steps=max_steps, resume=resume, checkpoint_every=4,
                schedule="cosine", warmup_steps=3, patience=None)
        h = Trainer(model, c, loss).fit(train, val)
        return model, h

    full, hf = run(tmp_path / "full")
    out = tmp_path / "cut"
    if how == "max_steps":
        _, h1 = run(out, max_steps=9)  # stops inside epoch 2
        assert h1.stop_reason == "max_steps" and h1.steps == 9
    else:
        with pytest.raises(RuntimeError, match="injected"):
            run(out, crash_at=11)  # step 11 of 24 (epoch 2, batch 5); last checkpoint at step 8
    resumed, h2 = run(out, resume=True)
    assert h2.steps == hf.steps == 24 and h2.epochs == 4
    assert same(weights(full), weights(resumed), atol=1e-6)
    assert [r["val_loss"] for r in h2.rows] == pytest.approx([r["val_loss"] for r in hf.rows], abs=1e-6)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {"epoch", "step", "train_loss", "val_loss", "lr", "seconds"}


def test_resume_carries_tbptt_state(tmp_path):
    x, y = sine_windows(4, t=120)
    chunks = [(x[:, i:i + 20], y[:, i:i + 20]) for i in range(0, 120, 20)]

    def loss(model, batch, state):
        pred, new_state = model(batch[0], state)
        return nn.functional.mse_loss(pred, batch[1]), new_state

    def run(out, **kw):
        seed_everything(0)
        model = SineNet("lstm")
        Trainer(model, cfg(epochs=2, carry_state=True, out_dir=str(out), patience=None, **kw), loss).fit(chunks)
        return weights(model)

    full = run(tmp_path / "a")
    run(tmp_path / "b", max_steps=4)
    assert same(full, run(tmp_path / "b", resume=True), atol=1e-6)


def test_resume_without_checkpoint_starts_fresh_and_needs_out_dir(tmp_path):
    seed_everything(0)
    model = SineNet()
    train, _ = loaders()
    h = Trainer(model, cfg(epochs=1, out_dir=str(tmp_path / "new"), resume=True), seq_loss).fit(train)
    assert h.steps == 6
    with pytest.raises(UserError, match="resume"):
        Trainer(model, cfg(resume=True), seq_loss)


def test_limits_max_steps_and_max_time():
    seed_everything(0)
    train, val = loaders()
    h = Trainer(SineNet(), cfg(epochs=10, max_steps=8), seq_loss).fit(train, val)
    assert (h.steps, h.stop_reason, h.epochs) == (8, "max_steps", 1)
    assert h.rows[-1]["val_loss"] is not None  # the partial epoch is validated too
    h = Trainer(SineNet(), cfg(epochs=10, max_time=0.0), seq_loss).fit(train, val)
    assert (h.steps, h.stop_reason) == (1, "max_time")


def test_schedules():
    s = LRSchedule(1.0, "cosine", warmup_steps=10, total_steps=110, min_lr_ratio=0.1)
    assert s.lr(0) == pytest.approx(0.1) and s.lr(9) == pytest.approx(1.0)
    assert s.lr(60) == pytest.approx(0.55) and s.lr(110) == pytest.approx(0.1)
    assert LRSchedule(0.5).lr(1000) == 0.5
    p = LRSchedule(1.0, "plateau", plateau_patience=1)
    for v in [1.0, 0.5, 0.6, 0.6]:
        p.on_val(v)
    assert p.lr(0) == 0.5
    with pytest.raises(ValueError):
        LRSchedule(1.0, "linear")


def test_plateau_and_adamw_run_in_the_loop():
    seed_everything(0)
    train, val = loaders()
    model = SineNet()
    h = Trainer(model, cfg(epochs=3, schedule="plateau", optimizer="adamw", weight_decay=0.01), seq_loss).fit(train, val)
    assert h.epochs == 3 and all(r["lr"] <= 1e-2 for r in h.rows)


def test_callable_data_gets_epoch_and_dict_batches():
    x, y = sine_windows(32)
    epochs_seen = []

    def data(epoch):
        epochs_seen.append(epoch)
        return [{"x": x[i:i + 8], "y": (y[i:i + 8],)} for i in range(0, 32, 8)]

    def loss(m, b, s):
        return nn.functional.mse_loss(m(b["x"])[0], b["y"][0]), None

    Trainer(SineNet(), cfg(epochs=3), loss).fit(data)
    assert epochs_seen == [0, 1, 2]
    tree = to_device({"a": (torch.ones(1), [torch.zeros(2)]), "n": 3}, torch.device("cpu"))
    assert isinstance(tree["a"], tuple) and isinstance(tree["a"][1], list) and tree["n"] == 3


def test_bad_runs_raise_user_error():
    train, _ = loaders()
    with pytest.raises(UserError, match="no batches"):
        Trainer(SineNet(), cfg(), seq_loss).fit([])

    def nan_loss(m, b, s):
        return seq_loss(m, b, s)[0] * math.nan, None

    with pytest.raises(UserError, match="diverged"):
        Trainer(SineNet(), cfg(log_every=2), nan_loss).fit(train)
    with pytest.raises(UserError, match="optimizer"):
        Trainer(SineNet(), cfg(optimizer="sgd2"), seq_loss)


def test_progress_bar_on_stderr_only_when_enabled(capsys):
    train, val = loaders()
    Trainer(SineNet(), cfg(epochs=1), seq_loss).fit(train, val)
    assert capsys.readouterr().err == ""
    Trainer(SineNet(), cfg(epochs=1, progress=True), seq_loss).fit(train, val)
    out = capsys.readouterr()
    assert "epoch 1/1" in out.err and "val_loss" in out.err and out.out == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_resume_and_model_returns_home(tmp_path):
    def run(out, **kw):
        seed_everything(0)
        model = SineNet("lstm", dropout=0.3)  # dropout on the GPU: the CUDA RNG must be restored too
        train, val = loaders(shuffle=True)
        c = cfg(epochs=3, device="cuda", out_dir=str(out), checkpoint_every=4, patience=None, **kw)
        h = Trainer(model, c, seq_loss).fit(train, val)
        assert next(model.parameters()).device.type == "cpu"  # fit leaves the model where it found it
        return weights(model), h

    full, hf = run(tmp_path / "a")
    assert hf.rows[-1]["val_loss"] < hf.rows[0]["val_loss"]
    run(tmp_path / "b", max_steps=7)
    resumed, _ = run(tmp_path / "b", resume=True)
    assert same(full, resumed, atol=1e-6)


def test_validation_loss_is_a_mean_per_example_over_batches_of_different_sizes():
    """Batches of 31 and 1 windows (a long sequence batched alone) weigh as 31 and 1 examples, not 1:1."""
    model = SineNet()
    xv, yv = sine_windows(32, offset=3.0)
    tr = Trainer(model, cfg(), seq_loss)
    whole = tr.evaluate([(xv, yv)])
    split = tr.evaluate([(xv[:31], yv[:31]), (xv[31:], yv[31:])])
    assert math.isclose(whole, split, rel_tol=1e-6)
