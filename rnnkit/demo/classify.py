"""Demo section: which language is a surname from? A character GRU on the shipped names data."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def names_demo(out_dir: Path, quick: bool) -> str:
    """Train on the names train split, report test accuracy/macro-F1, a few predictions and
    the confusion matrix (``classify_confusion.png``). quick: ~20 s of training, full: ~90 s."""
    import torch

    from rnnkit.data.names import load_names, split_names
    from rnnkit.metrics.classify import plot_confusion
    from rnnkit.tasks.classify.task import SequenceClassifier

    train, val, test = split_names(load_names(), val=0.1, test=0.1, seed=0)
    budget = 15.0 if quick else 90.0
    if quick:  # every 3rd training name: a few epochs fit in the quick budget
        train = train[::3]
    print(f"classify: {len(train)} train / {len(val)} val / {len(test)} test names, "
          f"training a bidirectional GRU for up to {budget:.0f} s", file=sys.stderr)
    clf = SequenceClassifier(cell="gru", hidden_size=64 if quick else 128, bidirectional=True, embed_size=32,
                             pooling="mean", batch_size=64, epochs=40, lr=3e-3, patience=3,
                             max_time=budget, seed=0, device="cpu", progress=True)
    with torch.random.fork_rng():
        clf.fit([n for n, _ in train], [l for _, l in train], val=([n for n, _ in val], [l for _, l in val]))
    names, truth = [n for n, _ in test], [l for _, l in test]
    report = clf.evaluate(names, truth)
    majority = max(set(l for _, l in train), key=[l for _, l in train].count)
    maj_acc = float(np.mean([t == majority for t in truth]))
    png = out_dir / "classify_confusion.png"
    plot_confusion(np.array(report["confusion"]), report["labels"], png, title="Names by language (test split)")

    examples = ["Kowalski", "Nakamura", "O'Brien", "Rossi", "Schmidt", "Papadopoulos", "Dubois", "Ivanov"]
    proba = clf.predict_proba(examples)
    lines = []
    for name, p in zip(examples, proba):
        top = np.argsort(-p)[:3]
        lines.append(f"| {name} | " + ", ".join(f"{clf.labels[i]} {p[i]:.2f}" for i in top) + " |")
    h = clf.history
    return "\n".join([
        f"A bidirectional character GRU (mean pooling over real steps) trained for {h.steps} steps ({h.epochs} full epochs, "
        f"stopped by {h.stop_reason}) on {len(train)} surnames in {len(clf.labels)} languages "
        "(`rnnkit.data.names`, stratified 80/10/10 split).",
        "",
        f"Test ({report['n']} names): accuracy **{report['accuracy']:.3f}**, macro-F1 **{report['macro_f1']:.3f}** "
        f"(majority class '{majority}': accuracy {maj_acc:.3f}). Full benchmark with the n-gram baseline: "
        "`docs/bench/classify.md`.",
        "",
        "| name | top 3 (probability) |",
        "|---|---|",
        *lines,
        "",
        f"![confusion matrix]({png.name})",
    ])
