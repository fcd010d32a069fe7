"""Sine wave, next value: an RNN with 100 relu units and a linear readout.

The series is sin(t) for t = 0, 0.1, ..., 30 (301 points). The first 80 % is the
training stretch; the last 20 % is held out (no value in it is ever an input or a
target during training) and the model is scored on one-step predictions there.

Training uses windows: inputs ``s[i : i+W]``, targets ``s[i+1 : i+W+1]``, i.e. the next
value at every step (more signal per window than only the last step). The first
``skip`` steps of each window are left out of the loss because the state has not yet
seen enough of the wave to know the phase (one value does not tell rising from falling).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.synthetic import next_value_windows, sine_series
from rnnkit.nn import RNN
from rnnkit.train import Trainer, TrainConfig


@dataclass
class SineConfig:
    hidden: int = 100
    window: int = 20
    holdout: float = 0.2  # last fraction of the series, never seen in training
    skip: int = 3  # first steps of a window left out of the loss (phase unknown yet)
    epochs: int = 100
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    t_end: float = 30.0
    step: float = 0.1
    device: str = "cpu"  # a 100-unit model on 300 values: a GPU only adds transfer time
    progress: bool = True


class NextValueRNN(nn.Module):
    """``RNN(1, hidden, nonlinearity='relu')`` + ``Linear(hidden, 1)``.

    x: (batch, time, 1) -> prediction of the next value at every step, (batch, time, 1).
    """

    def __init__(self, hidden: int = 100):
        super().__init__()
        self.rnn = RNN(1, hidden, nonlinearity="relu", batch_first=True, return_state=False)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x))


@dataclass
class SineResult:
    model: NextValueRNN
    config: SineConfig
    rmse_holdout: float  # one-step RMSE on targets in the held-out stretch
    rmse_train: float  # the same on the training stretch
    t: np.ndarray  # (N,) times
    series: np.ndarray  # (N,) sin(t)
    pred: np.ndarray  # (N,) one-step prediction of series[j] from the W values before it; NaN for j < W
    split: int  # index of the first held-out value
    losses: list[float] = field(default_factory=list)


def _loss_fn(skip: int):
    def loss_fn(model: nn.Module, batch: tuple[Tensor, Tensor], state: Optional[object]):
        x, y = batch
        return F.mse_loss(model(x)[:, skip:], y[:, skip:]), None

    return loss_fn


def _epoch_batches(x: Tensor, y: Tensor, batch_size: int, seed: int):
    """A callable ``epoch -> list of (x, y) batches``, shuffled reproducibly per epoch."""

    def batches(epoch: int) -> list[tuple[Tensor, Tensor]]:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(len(x), generator=g)
        return [(x[perm[i : i + batch_size]], y[perm[i : i + batch_size]]) for i in range(0, len(x), batch_size)]

    return batches


@torch.no_grad()
def one_step_predictions(model: NextValueRNN, series: np.ndarray, window: int) -> np.ndarray:
    """Predict ``series[j]`` from ``series[j-window:j]`` for every j >= window (NaN before)."""
    model.eval()
    x, _ = next_value_windows(series, window, window, len(series))
    out = np.full(len(series), np.nan)
    out[window:] = model(x)[:, -1, 0].double().numpy()
    return out


def run_sine(cfg: SineConfig = SineConfig()) -> SineResult:
    """Train on the first stretch of the wave, score one-step RMSE on the held-out stretch."""
    t, s = sine_series(cfg.t_end, cfg.step)
    split = int(round(len(s) * (1 - cfg.holdout)))
    x_tr, y_tr = next_value_windows(s, cfg.window, cfg.window, split)  # every value < split
    torch.manual_seed(cfg.seed)
    model = NextValueRNN(cfg.hidden)
    # No validation data on purpose: the held-out stretch must not steer training (no early stopping).
    tcfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, schedule="cosine", grad_clip=1.0, patience=None,
                       seed=cfg.seed, device=cfg.device, progress=cfg.progress)
    history = Trainer(model, tcfg, _loss_fn(cfg.skip)).fit(_epoch_batches(x_tr, y_tr, cfg.batch_size, cfg.seed))
    losses = [row["train_loss"] for row in history.rows]
    pred = one_step_predictions(model, s, cfg.window)

    def rmse(lo: int, hi: int) -> float:
        return float(np.sqrt(np.mean((pred[lo:hi] - s[lo:hi]) ** 2)))

    return SineResult(model, cfg, rmse(split, len(s)), rmse(cfg.window, split), t, s, pred, split, losses)
