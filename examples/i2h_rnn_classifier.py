"""The classic ``i2h``/``i2o`` RNN of PyTorch's "classifying names" tutorial, done right.

``rnnkit.nn.I2HCell(n_letters, 128, n_classes, log_softmax=True)`` run over each name by
``rnnkit.nn.Recurrent``, trained with NLL on one-hot characters, on the surnames-by-origin
data shipped with rnnkit (22k names, 31 classes; derived from Faker's MIT-licensed lists;
see ``rnnkit/data/datasets/names/``). Differences from the tutorial: padded batches with
``lengths`` (much faster, same result per name), tanh on the state, and a stratified
held-out test split scored against the majority-class baseline.

    python examples/i2h_rnn_classifier.py [--epochs N] [--train-limit N] [--out DIR] [NAME ...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rnnkit.demo.tutorials import plot_i2h
from rnnkit.tutorials.names_i2h import I2HConfig, predict, run_i2h


def main() -> None:
    p = argparse.ArgumentParser(description="Classify surnames by origin with the classic i2h/i2o RNN.")
    p.add_argument("--epochs", type=int, default=I2HConfig.epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (training only; this model is tiny, cpu is fine)")
    p.add_argument("--train-limit", type=int, help="train on only this many names (a quick look)")
    p.add_argument("--out", type=Path, help="folder for the confusion-matrix plot")
    p.add_argument("names", nargs="*", default=["Dovesky", "Jackson", "Satoshi", "Kowalczyk", "Papadopoulos"],
                   help="names to classify after training")
    args = p.parse_args()
    torch.set_num_threads(1)
    r = run_i2h(I2HConfig(epochs=args.epochs, seed=args.seed, device=args.device, train_limit=args.train_limit))
    print(f"test accuracy {r.test_accuracy:.3f} on {r.n_test} held-out names "
          f"(majority class '{r.majority_class}': {r.majority_accuracy:.3f}; {len(r.classes)} classes)")
    for name, origin in zip(args.names, predict(r.model, r.vocab, r.classes, args.names)):
        print(f"  {name:15s} -> {origin}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_i2h(r, args.out / "i2h_confusion.png")
        print(f"plot: {args.out / 'i2h_confusion.png'}")


if __name__ == "__main__":
    main()
