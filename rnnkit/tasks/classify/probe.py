"""Measure the seconds of one training step of a classifier architecture (for the budget plan)."""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.tasks.classify.network import ClassifierNet, ClassifierNetConfig


def clock(device: torch.device) -> float:
    """The clock a budget is planned and spent in: this thread's CPU seconds (wall on CUDA)."""
    return time.perf_counter() if device.type == "cuda" else time.thread_time()


def step_seconds(cfg: ClassifierNetConfig, batch: int, T: int, device: torch.device, steps: int = 6) -> float:
    """Median seconds of ``steps`` training steps on random inputs (B=batch, T steps) as the Trainer
    runs them (input noise, forward, backward, clipping, Adam), after one untimed warm-up step.

    CPU time of the calling thread (``time.thread_time``), not wall time: on a machine shared with
    other jobs the wall time of a step depends on the neighbours, the thread's CPU time hardly, so
    the same command plans the same training whatever the load (torch's intra-op workers run in
    step with this thread, so on an idle machine it is close to wall time). On CUDA: wall time.
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
        t0 = clock(device)
        xb = x + 0.1 * torch.randn_like(x) if cfg.input_kind == "numeric" else x
        loss = F.cross_entropy(net(xb, lengths.to(device)), yd)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(clock(device) - t0)
    return sorted(times)[len(times) // 2]


def epoch_step_seconds(lengths: np.ndarray, batch: int, at: Callable[[int], float], tail: float = 2.0,
                       reach: int = 16) -> float:
    """Mean seconds per training step over an epoch, each shuffled batch padded to its own longest
    sequence. ``at(T)``: measured seconds of a step at length T. lengths: (n,).

    Probing at one typical length (the 90th percentile) misses a long tail: with 2,000 recordings of
    40 steps plus one of 60,000, the probe said 6.4 ms per step, but the batch holding the long one
    costs 215 ms. A batch's cost follows its longest member, and the ``ceil(n / batch)`` longest sequences are roughly the
    epoch's batch maxima (the rare long ones each land in a different batch), so the step time is the
    mean of ``c(T)`` over them, with ``c`` linear in T through a second probe at up to ``reach`` times
    the typical length. Lengths within ``tail`` x the typical one: the single probe, as before.
    """
    lengths = np.sort(np.asarray(lengths, dtype=np.int64))[::-1]
    T0 = max(1, int(np.quantile(lengths, 0.9)))
    c0 = at(T0)
    if lengths[0] <= tail * T0:
        return c0
    T1 = int(min(lengths[0], reach * T0))
    slope = max(0.0, (at(T1) - c0) / (T1 - T0))
    maxima = lengths[: max(1, math.ceil(len(lengths) / batch))]
    return float(np.mean(c0 + slope * np.maximum(maxima - T0, 0)))
