"""Measure the seconds of one training step of a classifier architecture (for the budget plan)."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from rnnkit.tasks.classify.network import ClassifierNet, ClassifierNetConfig


def step_seconds(cfg: ClassifierNetConfig, batch: int, T: int, device: torch.device, steps: int = 3) -> float:
    """Median CPU seconds of ``steps`` forward+backward+Adam steps on random inputs (B=batch, T steps),
    after one untimed warm-up step (first-call costs: kernel set-up, allocator).

    CPU time of this process (all its threads), not wall time: on a machine shared with other jobs
    the wall time of a step depends on the neighbours, the CPU time hardly, so the same command
    plans the same training whatever the load. On CUDA it is wall time (the GPU does the work).
    """
    g = torch.Generator().manual_seed(0)
    net = ClassifierNet(cfg).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    if cfg.input_kind == "tokens":
        x = torch.randint(2, max(3, cfg.vocab_size), (batch, T), generator=g)
    else:
        x = torch.randn(batch, T, cfg.n_features, generator=g)
    lengths = torch.full((batch,), T, dtype=torch.long)
    y = torch.randint(0, cfg.n_classes, (batch,), generator=g)
    x, yd = x.to(device), y.to(device)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter() if device.type == "cuda" else time.process_time()
        loss = F.cross_entropy(net(x, lengths.to(device)), yd)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append((time.perf_counter() if device.type == "cuda" else time.process_time()) - t0)
    return sorted(times)[len(times) // 2]
