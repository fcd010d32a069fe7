"""Sine wave, next value: 100 relu units + a linear readout (the tutorial, done right).

An ``rnnkit.nn.RNN(1, 100, nonlinearity="relu")`` with a ``Linear(100, 1)`` readout learns
the next value of sin(t), t = 0 .. 30 in steps of 0.1, from windows of the first 80 % of
the series. The last 20 % is never seen in training (no early stopping on it either);
the one-step RMSE there is the score (goal: <= 0.01). Model and training live in
``rnnkit.tutorials.sine``; ``rnnkit demo`` runs the same code.

    python examples/sine_next_value.py [--epochs N] [--seed S] [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rnnkit.demo.tutorials import plot_sine
from rnnkit.tutorials.sine import SineConfig, run_sine


def main() -> None:
    p = argparse.ArgumentParser(description="Next value of sin(t) with 100 relu units.")
    p.add_argument("--epochs", type=int, default=SineConfig.epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (training only; this model is tiny, cpu is fine)")
    p.add_argument("--out", type=Path, help="folder for the plot sine.png")
    args = p.parse_args()
    torch.set_num_threads(1)  # a 100-unit model: more threads only add overhead
    r = run_sine(SineConfig(epochs=args.epochs, seed=args.seed, device=args.device))
    print(f"one-step RMSE: training stretch {r.rmse_train:.4f}, held-out stretch {r.rmse_holdout:.4f} (goal <= 0.01)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_sine(r, args.out / "sine.png")
        print(f"plot: {args.out / 'sine.png'}")


if __name__ == "__main__":
    main()
