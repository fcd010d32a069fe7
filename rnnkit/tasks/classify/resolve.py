"""Resolving a ``ClassifierConfig``: the user's values, the rest from the automatic plan
(``rnnkit.tasks.autoconfig.classify_plan``, with a measured step time), printed in one line.

``resolve_or_resume`` is what ``SequenceClassifier.fit`` calls; a resumed run reuses the plan saved in
its output folder.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from rnnkit.data.ragged import pooled_lengths
from rnnkit.data.sequences import SequenceData
from rnnkit.errors import UserError
from rnnkit.tasks.autoconfig import DEFAULT_BUDGET_S, classify_plan, classify_stats
from rnnkit.tasks.classify.data import tokenize
from rnnkit.tasks.classify.network import ClassifierNetConfig, check_net_config
from rnnkit.tasks.classify.probe import epoch_step_seconds, step_seconds
from rnnkit.train.distributed import pick_device


PLAN_FILE = "resolved_config.json"  # in the training out_dir: the plan a --resume continues

# Fields that None leaves to the automatic configuration (rnnkit.tasks.autoconfig.ClassifyPlan).
AUTO_FIELDS = ("hidden_size", "bidirectional", "pooling", "dropout", "label_smoothing", "input_noise", "augment",
               "conv_kernel", "conv_stride", "conv_channels", "conv_layers", "pool_len", "series_norm", "ensemble", "val_fraction", "batch_size",
               "epochs", "max_steps", "lr", "schedule", "patience")


def check_given(req: Any) -> None:
    """One clear error for an impossible explicit value, before anything is planned or trained."""
    positive_ints = ("hidden_size", "ensemble", "batch_size", "epochs", "max_steps", "conv_stride", "conv_layers")
    for name in positive_ints:
        v = getattr(req, name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise UserError(f"{name} must be an integer >= 1, got {v!r}")
    for name in ("conv_kernel", "conv_channels", "pool_len"):
        v = getattr(req, name)
        if v is not None and (not isinstance(v, int) or v < 0):
            raise UserError(f"{name} must be an integer >= 0, got {v!r}")
    if req.lr is not None and not req.lr > 0:
        raise UserError(f"lr must be > 0, got {req.lr!r}")
    if req.max_time is not None and not req.max_time > 0:
        raise UserError(f"max_time must be > 0 seconds, got {req.max_time!r}")
    if req.label_smoothing is not None and not 0 <= req.label_smoothing < 1:
        raise UserError(f"label_smoothing must be in [0, 1), got {req.label_smoothing!r}")
    if req.val_fraction is not None and not 0 <= req.val_fraction < 1:
        raise UserError(f"validation fraction must be in [0, 1), got {req.val_fraction}")


def resolve_or_resume(clf: Any, data: SequenceData, val_data: Optional[SequenceData],
                      out_dir: Optional[Union[str, Path]], resume: bool) -> Any:
    """A resumed run reuses the plan of the run it continues (a new probe could plan other steps)."""
    from rnnkit.train.checkpoint import atomic_write_json, read_json

    saved = Path(out_dir) / PLAN_FILE if out_dir is not None else None
    if resume and saved is not None and saved.is_file():
        plan = read_json(saved)
        req = clf.requested
        # The saved plan fills only what this call leaves automatic (e.g. --epochs 2 --resume extends).
        chosen = {f: plan[f] for f in AUTO_FIELDS if getattr(req, f) is None and f in plan}
        if req.epochs is not None:
            chosen["max_steps"] = req.max_steps
        return replace(req, **chosen)
    cfg = resolve(clf, data, val_data)
    if saved is not None and int(os.environ.get("RANK", "0")) == 0:
        saved.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(saved, asdict(cfg))
    return cfg


def resolve(clf: Any, data: SequenceData, val_data: Optional[SequenceData]) -> Any:
    """The config actually used: the user's values, the rest from ``classify_plan`` (printed)."""
    req = clf.requested
    check_given(req)
    lengths = (data.lengths if data.kind == "numeric"
               else [max(1, len(tokenize(t.strip(), req.level, req.lowercase, line_ends=False))) for t in data.texts])
    if req.max_len:
        lengths = np.minimum(np.asarray(lengths), req.max_len)
    n_feat = data.n_features
    stats = classify_stats(lengths, data.labels, data.kind, n_feat)
    fixed = {f: getattr(req, f) for f in AUTO_FIELDS}
    budget = req.max_time
    if req.tune:
        from rnnkit.tasks.classify.tune import tune

        t0 = time.monotonic()
        total = DEFAULT_BUDGET_S if req.max_time is None else float(req.max_time)
        fixed = {**fixed, **tune(clf, data, stats, total)}
        budget = max(1.0, total - (time.monotonic() - t0))  # the final model plans for what is left
    if req.logit_adjust == "auto" and val_data is None and fixed.get("val_fraction") is None:
        fixed["val_fraction"] = 0.1  # the fitted adjustment needs held-out examples, however few
    if val_data is not None and fixed.get("val_fraction") is None:
        fixed["val_fraction"] = 0.0  # given validation data: no split of the training data
        if fixed.get("patience") is None:
            fixed["patience"] = 10 if len(val_data) >= 100 else 0
    device = pick_device(req.device)
    vocab_guess = 64 if data.kind == "tokens" else 0

    def probe(arch: dict, batch: int) -> float:
        net = {k: v for k, v in arch.items() if k != "pool_len"}  # a data setting: it only shortens the lengths
        net_cfg = ClassifierNetConfig(n_classes=stats.n_classes, input_kind=data.kind, vocab_size=vocab_guess,
                                      n_features=n_feat, embed_size=req.embed_size, cell=req.cell,
                                      num_layers=req.num_layers, **net)
        try:
            check_net_config(net_cfg)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        steps = pooled_lengths(np.asarray(lengths), arch.get("pool_len") or 0)
        return epoch_step_seconds(steps, batch, lambda T: step_seconds(net_cfg, batch, T, device))

    plan = classify_plan(stats, budget, probe, fixed)
    clf.plan = plan
    chosen = {f: getattr(plan, f) for f in AUTO_FIELDS if hasattr(plan, f) and getattr(req, f) is None}
    if req.epochs is not None:
        chosen["max_steps"] = req.max_steps  # epochs given: they set the length
    if req.progress:
        print(f"rnnkit: auto config: {plan.reason}", file=sys.stderr)
    for note in plan.notes:
        print(f"rnnkit: warning: {note}", file=sys.stderr)
    return replace(req, **chosen)
