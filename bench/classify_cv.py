"""UEA part of bench/classify.py: settings chosen by k-fold cross-validation on the TRAIN split only.

For each dataset every candidate in ``UEA_CANDIDATES`` is trained on 4/5 of the official training
cases and scored on the held-out 1/5 (stratified 5 folds, seed 0); the candidate with the best
mean CV accuracy (ties: the earlier one in the list) is then trained on ALL training cases as a
5-member seed ensemble (``SequenceClassifier(ensemble=5)``, seeds 0-4) and scored once on the
official test split: each member alone (= the single model of that seed) and the ensemble.
The test split is never used to choose anything.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

# Fixed-epoch training on all given cases (no early stopping: 32-216 cases cannot spare a
# validation split, and CV scores the same fixed-epoch recipe that the final model uses).
_BASE = dict(cell="gru", hidden_size=64, bidirectional=True, pooling="attention", batch_size=8, lr=3e-3,
             epochs=60, patience=0, val_fraction=0.0)
UEA_CANDIDATES = {
    "bigru64_attention": _BASE,  # the earlier config (chosen on BasicMotions test before)
    "bigru64_mean": dict(_BASE, pooling="mean"),
    "bigru128_attention_drop0.3": dict(_BASE, hidden_size=128, dropout=0.3),
    "bigru64_attention_conv3": dict(_BASE, conv_kernel=3),
    "bigru64_attention_100ep_cosine": dict(_BASE, epochs=100, schedule="cosine"),
}
FOLDS = 5
MEMBERS = 5


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fold_job(name: str, cand: str, opts: dict, fold: int, device: str) -> tuple[str, int, float]:
    """Train one candidate on the other folds of the training split, score on fold ``fold``."""
    import torch
    from sklearn.model_selection import StratifiedKFold

    from rnnkit.data.uea import load_uea
    from rnnkit.tasks.classify import SequenceClassifier

    torch.set_num_threads(1)
    tr = load_uea(name, "train")
    fit_idx, held = list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(tr.X, tr.y))[fold]
    clf = SequenceClassifier(progress=False, device=device, seed=0, **opts)
    clf.fit(tr.X[fit_idx], tr.y[fit_idx], tr.lengths[fit_idx])
    return cand, fold, float(clf.evaluate(tr.X[held], tr.y[held], tr.lengths[held])["accuracy"])


def choose_by_cv(name: str, device: str, quick: bool, workers: int = 2) -> dict:
    """Mean 5-fold CV accuracy of every candidate on ``name``'s training split; picks the best."""
    cands = {k: (dict(v, epochs=5) if quick else v) for k, v in UEA_CANDIDATES.items()}
    if quick:
        cands = dict(list(cands.items())[:2])
    scores: dict[str, list] = {k: [None] * FOLDS for k in cands}
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(_fold_job, name, k, v, f, device) for k, v in cands.items() for f in range(FOLDS)]
        for job in jobs:
            cand, fold, acc = job.result()
            scores[cand][fold] = acc
    out = {k: {"fold_accuracy": v, "cv_accuracy": float(np.mean(v))} for k, v in scores.items()}
    best = max(cands, key=lambda k: (out[k]["cv_accuracy"], -list(cands).index(k)))
    for k in cands:
        _log(f"{name} CV {k}: {out[k]['cv_accuracy']:.4f} {'<- chosen' if k == best else ''}")
    return {"candidates": out, "chosen": best, "chosen_config": cands[best], "cv_seconds": round(time.time() - t0)}


def final_ensemble(name: str, opts: dict, device: str, members: int = MEMBERS) -> dict:
    """Train ``opts`` on all training cases as a seed ensemble; test accuracy per member + ensemble."""
    import torch

    from rnnkit.data.uea import load_uea
    from rnnkit.tasks.classify import SequenceClassifier

    torch.set_num_threads(1)
    tr, te = load_uea(name, "train"), load_uea(name, "test")
    t0 = time.time()
    ens = SequenceClassifier(progress=False, device=device, seed=0, ensemble=members, **opts)
    ens.fit(tr.X, tr.y, tr.lengths)
    per_member = []
    for member in ens.net.members:  # member k alone is the single model of seed k
        single = SequenceClassifier(progress=False, device=device, **opts)
        single.net, single.labels, single.scaler = member, ens.labels, ens.scaler
        per_member.append(float(single.evaluate(te.X, te.y, te.lengths)["accuracy"]))
    rep = ens.evaluate(te.X, te.y, te.lengths)
    _log(f"{name} test: members {per_member}, ensemble {rep['accuracy']:.4f} ({time.time() - t0:.0f} s)")
    return {"config": opts, "seeds": list(range(members)), "accuracy": per_member,
            "accuracy_mean": float(np.mean(per_member)), "accuracy_std": float(np.std(per_member)),
            "ensemble_accuracy": float(rep["accuracy"]), "ensemble_macro_f1": float(rep["macro_f1"]),
            "train_seconds": round(time.time() - t0)}
