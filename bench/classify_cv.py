"""UEA part of bench/classify.py: settings chosen by k-fold cross-validation on the TRAIN split only.

For each dataset every candidate in ``UEA_CANDIDATES`` is trained on 4/5 of the official training
cases and scored on the held-out 1/5 (stratified 5 folds, seed 0); the candidate with the best
mean CV accuracy (ties: the earlier one in the list) is then trained on ALL training cases as a
5-member seed ensemble (``SequenceClassifier(ensemble=5)``, seeds 0-4) and scored once on the
official test split: each member alone (= the single model of that seed) and the ensemble.
The test split is never used to choose anything.

Run as a script it is the wider JapaneseVowels search (``JV_GRID``, round 2)::

    python bench/classify_cv.py --write-folds bench/results/classify_cv_folds.json
    python bench/classify_cv.py --workers 20 --device mixed --gpu-workers 6 --budget 370 \
        --folds-file bench/results/classify_cv_folds.json --final-seeds 5 --out grid.json
    python bench/classify_cv.py --final CANDIDATE --out bench/results/classify_cv_grid.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find rnnkit

from rnnkit.tasks.autoconfig import CLASSIFY_FIXED_DEFAULTS  # noqa: E402  (pre-issue-14 defaults: nothing auto)

# Fixed-epoch training on all given cases (no early stopping: 32-216 cases cannot spare a
# validation split, and CV scores the same fixed-epoch recipe that the final model uses).
_BASE = dict(CLASSIFY_FIXED_DEFAULTS, cell="gru", hidden_size=64, bidirectional=True, pooling="attention", batch_size=8, lr=3e-3,
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

# Wider JapaneseVowels search (``--grid``): one change at a time from the previous CV winner
# (bi-GRU 64, mean pooling, 60 epochs), plus a few combinations of the single changes that are
# cheap to guess in advance. Scored by the same 5-fold CV on the training split only.
_JV = dict(_BASE, pooling="mean")
JV_GRID = {
    "gru64_mean": _JV,
    "lstm64_mean": dict(_JV, cell="lstm"),
    "gru128_mean": dict(_JV, hidden_size=128),
    "gru256_mean": dict(_JV, hidden_size=256),
    "lstm128_mean": dict(_JV, cell="lstm", hidden_size=128),
    "lstm256_mean": dict(_JV, cell="lstm", hidden_size=256),
    "gru64x2_mean": dict(_JV, num_layers=2),
    "gru128x2_mean_drop0.2": dict(_JV, hidden_size=128, num_layers=2, dropout=0.2),
    "lstm128x2_mean_drop0.2": dict(_JV, cell="lstm", hidden_size=128, num_layers=2, dropout=0.2),
    "gru64_attention": dict(_JV, pooling="attention"),
    "gru64_last": dict(_JV, pooling="last"),
    "gru64_max": dict(_JV, pooling="max"),
    "gru64_mean_conv3": dict(_JV, conv_kernel=3),
    "gru64_mean_conv5": dict(_JV, conv_kernel=5),
    "gru64_mean_drop0.3": dict(_JV, dropout=0.3),
    "gru64_mean_noise0.1": dict(_JV, input_noise=0.1),
    "gru64_mean_noise0.3": dict(_JV, input_noise=0.3),
    "gru64_mean_100ep_cosine": dict(_JV, epochs=100, schedule="cosine"),
    "gru64_mean_60ep_cosine": dict(_JV, schedule="cosine"),
    "gru64_mean_lr1e-3_100ep": dict(_JV, lr=1e-3, epochs=100),
    "gru64_mean_adamw_wd0.01": dict(_JV, optimizer="adamw", weight_decay=0.01),
    "gru64_mean_ls0.1": dict(_JV, label_smoothing=0.1),
    "gru64_mean_bs16": dict(_JV, batch_size=16),
    "gru128_mean_conv3_noise0.1": dict(_JV, hidden_size=128, conv_kernel=3, input_noise=0.1),
    "gru128_mean_drop0.3_noise0.1_cosine": dict(_JV, hidden_size=128, dropout=0.3, input_noise=0.1, schedule="cosine"),
    "lstm128_mean_conv3_noise0.1_cosine": dict(_JV, cell="lstm", hidden_size=128, conv_kernel=3, input_noise=0.1,
                                               schedule="cosine"),
    "gru64_mean_conv3_noise0.1_ls0.1_cosine": dict(_JV, conv_kernel=3, input_noise=0.1, label_smoothing=0.1,
                                                   schedule="cosine"),
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fold_indices(y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified 5 folds of the training labels (seed 0): [(fit_idx, held_idx), ...]."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(np.zeros(len(y)), y))


_WORKER_DEVICE = None


def _init_worker(counter, gpu_workers: int) -> None:
    """Pool initializer for ``--device mixed``: the first ``gpu_workers`` workers use CUDA, the
    rest the CPU, so one pool load-balances over the GPU and the CPU cores."""
    global _WORKER_DEVICE
    with counter.get_lock():
        i = counter.value
        counter.value += 1
    _WORKER_DEVICE = "cuda" if i < gpu_workers else "cpu"


def _worker_device(device: str) -> str:
    import torch

    dev = (_WORKER_DEVICE or "cpu") if device == "mixed" else device
    return "cpu" if dev == "cuda" and not torch.cuda.is_available() else dev


def _fold_job(name: str, cand: str, opts: dict, fold: int, device: str,
              folds_file: str | None = None) -> tuple[str, int, float]:
    """Train one candidate on the other folds of the training split, score on fold ``fold``.

    ``folds_file``: the same folds written by ``--write-folds`` (for a machine without sklearn).
    """
    import torch

    from rnnkit.data.uea import load_uea
    from rnnkit.tasks.classify.task import SequenceClassifier

    torch.set_num_threads(1)
    device = _worker_device(device)
    tr = load_uea(name, "train")
    if folds_file:
        held = np.array(json.loads(open(folds_file).read())[name][fold])
        fit_idx = np.setdiff1d(np.arange(len(tr.y)), held)
    else:
        fit_idx, held = fold_indices(tr.y)[fold]
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
    from rnnkit.tasks.classify.task import SequenceClassifier

    torch.set_num_threads(1)
    tr, te = load_uea(name, "train"), load_uea(name, "test")
    t0 = time.time()
    ens = SequenceClassifier(progress=False, device=device, seed=0, ensemble=members, **opts)
    ens.fit(tr.X, tr.y, tr.lengths)
    per_member = []
    for member in ens.network.members:  # member k alone is the single model of seed k
        single = SequenceClassifier(progress=False, device=device, **opts)
        single.network, single.labels, single.scaler = member, ens.labels, ens.scaler
        per_member.append(float(single.evaluate(te.X, te.y, te.lengths)["accuracy"]))
    rep = ens.evaluate(te.X, te.y, te.lengths)
    _log(f"{name} test: members {per_member}, ensemble {rep['accuracy']:.4f} ({time.time() - t0:.0f} s)")
    return {"config": opts, "seeds": list(range(members)), "accuracy": per_member,
            "accuracy_mean": float(np.mean(per_member)), "accuracy_std": float(np.std(per_member)),
            "ensemble_accuracy": float(rep["accuracy"]), "ensemble_macro_f1": float(rep["macro_f1"]),
            "train_seconds": round(time.time() - t0)}


def _seed_job(name: str, opts: dict, seed: int, device: str) -> tuple[int, list, list]:
    """Single model of ``seed`` on all training cases -> its test-set probabilities.

    Member k of ``SequenceClassifier(ensemble=K, seed=0)`` is exactly this model for seed k, so
    averaging these probabilities reproduces the ensemble (used to run members in parallel).
    """
    import torch

    from rnnkit.data.uea import load_uea
    from rnnkit.tasks.classify.task import SequenceClassifier

    torch.set_num_threads(1)
    device = _worker_device(device)
    tr, te = load_uea(name, "train"), load_uea(name, "test")
    clf = SequenceClassifier(progress=False, device=device, seed=seed, **opts).fit(tr.X, tr.y, tr.lengths)
    return seed, clf.predict_proba(te.X, te.lengths).tolist(), clf.labels


def grid_search(name: str, grid: dict, device: str, workers: int, out: str, folds_file: str | None,
                final_seeds: int = 0, budget: float | None = None, gpu_workers: int = 0) -> dict:
    """5-fold train-split CV of every ``grid`` entry (all folds in parallel); the JSON at ``out`` is
    rewritten after every finished fold so a run cut short still leaves its scores. With
    ``budget`` seconds, candidates not finished by then are dropped (listed under "partial"). With
    ``final_seeds`` > 0 the CV winner is then trained on all training cases with seeds 0..K-1 (in
    parallel) and scored on the test split, per seed and as the probability-averaged ensemble."""
    from concurrent.futures import as_completed

    from rnnkit.data.uea import load_uea

    scores: dict[str, list] = {k: [None] * FOLDS for k in grid}
    result: dict = {"dataset": name, "grid": grid, "device": device, "workers": workers}
    t0 = time.time()

    def dump() -> None:
        done = {k: v for k, v in scores.items() if None not in v}
        result["cv"] = {k: {"fold_accuracy": v, "cv_accuracy": float(np.mean(v))} for k, v in done.items()}
        result["partial"] = {k: v for k, v in scores.items() if None in v}
        result["cv_seconds"] = round(time.time() - t0)
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, out)

    import multiprocessing as mp

    # Candidate by candidate (all 5 folds together), so a budget cut leaves whole candidates.
    order = [(k, f) for k in grid for f in range(FOLDS)]
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(mp.Value("i", 0), gpu_workers))
    jobs = [pool.submit(_fold_job, name, k, grid[k], f, device, folds_file) for k, f in order]
    for job in as_completed(jobs):
        cand, fold, acc = job.result()
        scores[cand][fold] = acc
        dump()
        if budget is not None and time.time() - t0 > budget:
            _log(f"CV budget of {budget:.0f} s reached: dropping unfinished candidates")
            break
    procs = list((pool._processes or {}).values())  # our own workers: stop fits past the budget
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    result["budget_s"] = budget
    ranked = sorted(result["cv"], key=lambda k: (-result["cv"][k]["cv_accuracy"], list(grid).index(k)))
    if not ranked:
        _log("no candidate finished all folds within the budget")
        dump()
        return result
    result["chosen"] = ranked[0]
    for k in ranked:
        _log(f"{name} CV {result['cv'][k]['cv_accuracy']:.4f} {k}")
    if final_seeds:
        te = load_uea(name, "test")
        t1 = time.time()
        with ProcessPoolExecutor(max_workers=final_seeds, initializer=_init_worker,
                                 initargs=(mp.Value("i", 0), gpu_workers)) as pool:
            runs = list(pool.map(_seed_job, [name] * final_seeds, [grid[ranked[0]]] * final_seeds,
                                 range(final_seeds), [device] * final_seeds))
        labels = runs[0][2]
        y = np.array([labels.index(str(v)) for v in te.y])
        probs = np.array([r[1] for r in runs])  # (seeds, n_test, n_classes)
        acc = [float((p.argmax(1) == y).mean()) for p in probs]
        result["final"] = {"config": grid[ranked[0]], "seeds": list(range(final_seeds)), "accuracy": acc,
                           "accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc)),
                           "ensemble_accuracy": float((probs.mean(0).argmax(1) == y).mean()),
                           "seconds": round(time.time() - t1)}
        _log(f"{name} test (chosen {ranked[0]}): {result['final']}")
    dump()
    return result


def _final_into_results(name: str, cand: str, opts: dict, device: str, grid_file: str) -> None:
    """The reported test numbers: the product's ensemble path (``final_ensemble``) on this machine,
    merged into bench/results/classify.json under uea/<name> (the previous round kept as rnn_previous)."""
    import platform
    from datetime import datetime, timezone

    import torch

    torch.set_num_threads(1)
    rnn = final_ensemble(name, opts, device)
    rnn["run"] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machine": f"{platform.machine()} {platform.node()}, 1 torch thread, torch {torch.__version__}, device {device}",
                  "command": " ".join(["python"] + sys.argv)}
    grid = json.loads(Path(grid_file).read_text())
    out = Path(__file__).resolve().parent / "results" / "classify.json"
    result = json.loads(out.read_text())  # read just before writing: other sections stay as they are
    res = result["uea"][name]
    if "rnn_previous" not in res:
        res["rnn_previous"] = res["rnn"]
    res["rnn"] = rnn
    res["cv_grid"] = {"file": grid_file, "chosen": cand, "device": "H100 machine (16 CPU cores + GPU, mixed workers)",
                      "cv_seconds": grid.get("cv_seconds"),
                      "cv_accuracy": {k: v["cv_accuracy"] for k, v in grid["cv"].items()},
                      "device_final": grid.get("final")}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)


def main() -> None:
    ap = argparse.ArgumentParser(description="Wider train-split CV search for one UEA dataset (JV_GRID).")
    ap.add_argument("--dataset", default="JapaneseVowels")
    ap.add_argument("--workers", type=int, default=2, help="parallel processes, one torch thread each")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | mixed (--gpu-workers on CUDA, the rest on CPU)")
    ap.add_argument("--gpu-workers", type=int, default=0, help="with --device mixed: workers that use CUDA")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the CV part; unfinished candidates dropped")
    ap.add_argument("--out", default="bench/results/classify_cv_grid.json")
    ap.add_argument("--only", default=None, help="comma-separated grid names (default: all)")
    ap.add_argument("--epochs", type=int, default=None, help="override epochs (smoke runs only)")
    ap.add_argument("--folds-file", default=None, help="fold indices written by --write-folds (no sklearn needed)")
    ap.add_argument("--write-folds", default=None, help="write the held-out indices of every fold to this JSON and exit")
    ap.add_argument("--final-seeds", type=int, default=0, help="then train the winner with seeds 0..K-1, score on test")
    ap.add_argument("--final", default=None, metavar="CANDIDATE",
                    help="skip CV: train this grid entry on all training cases as SequenceClassifier(ensemble=5) "
                         "on this machine, score on test, merge into bench/results/classify.json")
    args = ap.parse_args()
    if args.final:
        _final_into_results(args.dataset, args.final, JV_GRID[args.final], args.device, args.out)
        return
    if args.write_folds:
        from rnnkit.data.uea import load_uea

        folds = {n: [h.tolist() for _, h in fold_indices(load_uea(n, "train").y)] for n in ("BasicMotions", "JapaneseVowels")}
        Path(args.write_folds).write_text(json.dumps(folds))
        return
    grid = {k: v for k, v in JV_GRID.items() if args.only is None or k in args.only.split(",")}
    if args.epochs:
        grid = {k: dict(v, epochs=args.epochs) for k, v in grid.items()}
    grid_search(args.dataset, grid, args.device, args.workers, args.out, args.folds_file, args.final_seeds,
                args.budget, args.gpu_workers)


if __name__ == "__main__":
    main()
