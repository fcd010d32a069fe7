"""``SequenceClassifier(tune=True)`` / ``classify train --tune``: a budgeted random search.

Candidates are scored by stratified k-fold cross-validation on the training data only (never a
test split); the first candidate is the automatic plan itself, so tuning can only replace it with
something that scored better on the folds. Plain random search, not Optuna: the budget pays for a
handful of candidates, where a model-based sampler has nothing to learn from (docs/decisions.md).
"""
from __future__ import annotations

import contextlib
import io
import sys
import time
from typing import Any

import numpy as np

from rnnkit.data.sequences import SequenceData
from rnnkit.tasks.autoconfig import ClassifyStats, classify_architecture


SEARCH_SHARE = 0.6  # of the budget; the rest trains the final model with the winning settings
SPACE = {
    "pooling": ["max", "mean", "attention", "last"],
    "hidden_size": [32, 64, 128],
    "series_norm": [True, False],
    "input_noise": [0.0, 0.05, 0.1, 0.2],
    "label_smoothing": [0.0, 0.1],
    "lr": [1e-3, 3e-3, 1e-2],
    "augment": [False, True],
}
TUNED = tuple(SPACE) + ("conv_kernel",)


def stratified_folds(labels: list[str], k: int, seed: int = 0) -> np.ndarray:
    """(n,) fold id per example; each class is dealt round-robin over the folds after a shuffle."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    fold = np.zeros(len(labels_arr), dtype=np.int64)
    offset = 0
    for c in sorted(set(labels)):
        idx = np.flatnonzero(labels_arr == c)
        rng.shuffle(idx)
        fold[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)  # classes continue where the last one stopped: folds stay balanced in size
    return fold


def sample_candidate(stats: ClassifyStats, rng: np.random.Generator) -> dict:
    cand = {name: values[rng.integers(len(values))] for name, values in SPACE.items()}
    if stats.kind == "tokens":
        cand.update(series_norm=False, input_noise=0.0, augment=False)
        cand["conv_kernel"] = [0, 3, 5][rng.integers(3)]
    else:
        arch = classify_architecture(stats)
        # Long series keep their strided front end (its kernel follows the stride); short ones may vary it.
        cand["conv_kernel"] = arch["conv_kernel"] if arch["conv_stride"] > 1 else [0, 3, 5][rng.integers(3)]
    return cand


def tune(clf: Any, data: SequenceData, stats: ClassifyStats, budget_s: float) -> dict:
    """Random search over ``SPACE`` within ``SEARCH_SHARE * budget_s`` seconds -> the winner's settings."""
    req = clf.requested
    t0 = time.monotonic()
    search_s = SEARCH_SHARE * budget_s
    k = int(max(2, min(5, stats.min_class_count)))
    folds = stratified_folds(data.labels, k, req.seed)
    rng = np.random.default_rng(req.seed)
    # Each fold fit gets an equal slice so that at least 4 candidates x k folds fit the search budget.
    fit_s = search_s / (4 * k)
    base = {name: getattr(req, name) for name in TUNED}  # the user's explicit values stay fixed
    auto_first = {name: None for name in TUNED}
    results: list[tuple[float, int, dict]] = []
    i = 0
    # At least the plan and one alternative, even when the plan's folds overran their share (a loaded
    # machine): a search that tried only the plan would pass for one and could never change anything.
    while time.monotonic() - t0 + k * fit_s <= search_s * 1.05 or i < 2:
        cand = auto_first if i == 0 else sample_candidate(stats, rng)
        cand = {name: (base[name] if base[name] is not None else v) for name, v in cand.items()}
        scores = []
        for f in range(k):
            tr, va = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            opts = {**_fixed_options(req), **{n: v for n, v in cand.items() if v is not None}}
            m = type(clf)(**opts, ensemble=1, val_fraction=0.0, patience=0, max_time=fit_s,
                                   tune=False, progress=False)
            with contextlib.redirect_stderr(io.StringIO()):  # the fold fits' own plan lines and warnings
                m.fit(data.subset(tr))
            scores.append(m.evaluate(data.subset(va))["accuracy"])
        results.append((float(np.mean(scores)), -i, cand))
        if req.progress:
            what = "automatic plan" if i == 0 else ", ".join(f"{n}={v}" for n, v in cand.items() if v is not None)
            print(f"rnnkit: tune: candidate {i} CV accuracy {np.mean(scores):.3f} ({what})", file=sys.stderr)
        i += 1
    score, _, best = max(results, key=lambda r: (r[0], r[1]))  # ties -> the earlier (the plan first)
    print(f"rnnkit: tune: {len(results)} candidates x {k} folds in {time.monotonic() - t0:.0f} s; "
          f"best CV accuracy {score:.3f}", file=sys.stderr)
    return {n: v for n, v in best.items() if v is not None}


def _fixed_options(req) -> dict:
    """The user's settings that are not searched (cell, level, seed, device, ...)."""
    from dataclasses import asdict

    skip = set(TUNED) | {"ensemble", "val_fraction", "patience", "max_time", "tune", "progress", "epochs",
                         "max_steps", "logit_adjust", "logit_adjust_tau"}
    return {k: v for k, v in asdict(req).items() if k not in skip}
