"""TEMPORARY tiny loop with the shared Trainer's loss_fn protocol; replaced by rnnkit.train.Trainer."""
from __future__ import annotations

import torch


def fit(model, loss_fn, train_data, epochs: int, lr: float, seed: int = 0, grad_clip: float = 1.0, schedule: str = "constant"):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs) if schedule == "cosine" else None
    losses = []
    for epoch in range(epochs):
        data = train_data(epoch) if callable(train_data) else train_data
        tot, n = 0.0, 0
        for batch in data:
            loss, _ = loss_fn(model, batch, None)
            opt.zero_grad()
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            tot, n = tot + float(loss.detach()), n + 1
        if sched:
            sched.step()
        losses.append(tot / max(n, 1))
    return losses
