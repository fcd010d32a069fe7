"""DDP scale worker (issue 8 item 6), launched by ``bench/grid.py`` under
``python -m torch.distributed.run --nproc-per-node N bench/_ddp_scale.py OUT.json``.

Task: sequence regression with a mid-size LSTM (32 inputs, 256 hidden, 100 steps, linear head),
trained by the shared ``Trainer`` (gloo on CPU when WORLD_SIZE > 1, one torch thread per process).
The same fixed list of batches (``BATCHES`` x ``BATCH`` samples) is one epoch whatever the world
size: the Trainer gives each process every N-th batch, so N processes share the work. Epoch 1 is a
warm-up; rank 0 writes samples/s of the later epochs to OUT.json.
"""
from __future__ import annotations

import json
import sys

import torch
from torch import nn

from rnnkit.nn.registry import make_layer
from rnnkit.train import TrainConfig, Trainer, seed_everything

INPUT, HIDDEN, TIME, BATCH, BATCHES, EPOCHS = 32, 256, 100, 32, 24, 3


class Net(nn.Module):
    """x: (batch, time, INPUT) -> (batch, time, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = make_layer("lstm", INPUT, HIDDEN)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def loss_fn(model, batch, state):
    x, y = batch
    return nn.functional.mse_loss(model(x), y), None


def main(out: str) -> None:
    torch.set_num_threads(1)
    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(BATCHES):
        x = torch.randn(BATCH, TIME, INPUT, generator=g)
        data.append((x, x[..., :1].cumsum(1) / TIME))  # a running sum: needs the recurrence
    trainer = Trainer(Net(), TrainConfig(epochs=EPOCHS, lr=1e-3, device="cpu", progress=False, patience=None),
                      loss_fn)
    hist = trainer.fit(data)
    secs = [r["seconds"] for r in hist.rows]
    timed = secs[-1] - secs[0]  # epochs after the warm-up epoch
    if trainer.dist.is_main:
        world = trainer.dist.world_size
        with open(out, "w") as f:
            json.dump({"world_size": world, "epoch_seconds": [secs[0]] + [b - a for a, b in zip(secs, secs[1:])],
                       "samples_per_s": (EPOCHS - 1) * BATCHES * BATCH / timed,
                       "samples_per_epoch": BATCHES * BATCH, "shape": [BATCH, TIME, INPUT, HIDDEN]}, f)


if __name__ == "__main__":
    main(sys.argv[1])
