"""Classification metrics: accuracy, macro-F1, confusion matrix (text table and PNG).

Labels are integer class ids ``0..n_classes-1``; ``y_true, y_pred: (n,)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np
from rnnkit.io import save_figure


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; rows = true class, columns = predicted class."""
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float((t == p).mean()) if len(t) else float("nan")


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 per class from a confusion matrix; 0 where precision + recall is 0 (sklearn's zero_division=0)."""
    tp = np.diag(cm).astype(np.float64)
    pred, true = cm.sum(0), cm.sum(1)
    denom = pred + true  # F1 = 2 tp / (2 tp + fp + fn) = 2 tp / (pred + true)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int, present_only: bool = True) -> float:
    """Unweighted mean F1 over classes. ``present_only``: over classes seen in y_true or y_pred
    (sklearn's default when ``labels`` is not given)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    f1 = per_class_f1(cm)
    if present_only:
        seen = (cm.sum(0) + cm.sum(1)) > 0
        return float(f1[seen].mean()) if seen.any() else float("nan")
    return float(f1.mean())


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class F1 and the confusion matrix, JSON-able."""
    n = len(labels)
    cm = confusion_matrix(y_true, y_pred, n)
    return {
        "n": int(len(y_true)),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, n),
        "per_class_f1": {str(l): float(f) for l, f in zip(labels, per_class_f1(cm))},
        "labels": [str(l) for l in labels],
        "confusion": cm.tolist(),
    }


def format_confusion(cm: np.ndarray, labels: Sequence[str], max_label: int = 12, max_classes: int = 30) -> str:
    """Markdown table: rows = true class, columns = predicted class. Over ``max_classes`` classes (a
    500 x 500 table is a megabyte of zeros) the most frequent confusions instead, one row each."""
    if len(labels) > max_classes:
        off = cm.astype(np.int64).copy()
        np.fill_diagonal(off, 0)
        top = [k for k in np.argsort(-off, axis=None, kind="stable")[:15] if off.flat[k]]
        rows = [f"| {str(labels[k // len(labels)])[:40]} | {str(labels[k % len(labels)])[:40]} | {int(off.flat[k])} |"
                for k in top]
        head = f"{len(labels)} classes: the most frequent confusions (the full matrix: metrics.json of evaluate --out)"
        return "\n".join([head, "| true | predicted | count |", "|---|---|---:|", *rows])
    names = [str(l)[:max_label] for l in labels]
    head = "| true \\ pred | " + " | ".join(names) + " |"
    sep = "|---|" + "---:|" * len(names)
    rows = [f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |" for name, row in zip(names, cm)]
    return "\n".join([head, sep, *rows])


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: Union[str, Path], title: str = "Confusion matrix") -> Path:
    """Row-normalised heat map with counts; written atomically (temp file + rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    n = len(labels)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = min(max(4.0, 0.45 * n + 2.0), 24.0)  # uncapped, 500 classes drew a 25,000-pixel square (GBs)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    if n <= 60:  # beyond that the names overlap: the axes count classes in label order
        ax.set_xticks(range(n), [str(l) for l in labels], rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), [str(l) for l in labels], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
