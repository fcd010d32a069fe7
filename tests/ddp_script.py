"""Run by tests/test_ddp.py under ``torch.distributed.run --nproc-per-node 2``: trains a tiny GRU
with the shared Trainer and writes each rank's final weights + losses to OUT_DIR/rank<r>.*."""
from __future__ import annotations

import json
import os
import sys

import torch
from torch import nn

from rnnkit.nn.registry import make_layer
from rnnkit.train import Trainer, TrainConfig, seed_everything
from rnnkit.train.checkpoint import save_tensors


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = make_layer("gru", 1, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def loss_fn(model, batch, state):
    x, y = batch
    return nn.functional.mse_loss(model(x), y), None


def main(out: str) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    seed_everything(100 + rank)  # different init on each rank: DDP must broadcast rank 0's weights
    model = Net()
    g = torch.Generator().manual_seed(0)
    t = torch.rand(64, 1, generator=g) * 6.28 + 0.1 * torch.arange(21)
    s = torch.sin(t).unsqueeze(-1)
    data = torch.utils.data.TensorDataset(s[:, :-1], s[:, 1:])
    train = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True)
    val = [(s[:16, :-1], s[:16, 1:]), (s[16:32, :-1], s[16:32, 1:]), (s[32:48, :-1], s[32:48, 1:])]
    trainer = Trainer(model, TrainConfig(epochs=6, lr=2e-2, device="cpu", progress=True,
                                         out_dir=os.path.join(out, "run"), patience=None), loss_fn)
    first = trainer.evaluate(val)
    h = trainer.fit(train, val)
    save_tensors(os.path.join(out, f"rank{rank}.safetensors"), model.state_dict())
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"first": first, "best": h.best_val_loss, "steps": h.steps, "world": trainer.dist.world_size}, f)


if __name__ == "__main__":
    main(sys.argv[1])
