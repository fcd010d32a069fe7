"""Automatic configuration: data statistics + time budget -> a training plan (issue 14).

Pure functions only (no torch, no training), so every rule is unit-testable and a task calls
them once at the start of ``fit``. Each plan carries a one-line ``reason`` that the task prints.
Tasks add their own ``<task>_stats`` / ``<task>_plan`` pair here; the rules are written down in
docs/decisions.md ("Automatic configuration").

Classification (``classify_stats`` -> ``classify_architecture`` -> ``classify_plan``):

- architecture from the data alone: numeric series get a conv front end (strided when the longest
  series exceeds ``MAX_RNN_STEPS``, so nothing is truncated), both a per-series standardised and a
  globally scaled view of every channel, a bidirectional GRU and mean pooling; token sequences a
  bidirectional GRU with mean pooling.
- training from the data and the budget: the step count is ``TARGET_EPOCHS`` passes over the data
  (at least ``MIN_STEPS``), cut to what the budget allows at the measured seconds per step, and
  stretched (up to 2x) when the budget pays for more than whole members;
  early stopping only when a 10 % validation split holds at least ``MIN_VAL`` examples (else no
  validation split: all data train, fixed steps); small numeric data get Gaussian-noise augmentation,
  label smoothing, and as many seed-ensemble members (up to ``MAX_ENSEMBLE``) as the budget pays for.

Forecasting (``forecast_stats`` -> ``forecast_plan``): see the section comment below.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np

DEFAULT_BUDGET_S = 120.0  # planning budget when the user gives no --max-time
BUDGET_USE = 0.75  # share of the budget planned for optimizer steps (rest: probe, eval, save, load jitter)
MAX_RNN_STEPS = 160  # longest sequence the RNN sees; longer numeric series are downsampled by a strided conv
OUTLIER_SPAN = 4  # numeric lengths past 4x the 90th percentile are outliers: pooled, not followed by the stride
TARGET_EPOCHS = 60  # passes over the training data a plan aims for
MIN_STEPS = 1500  # ... but at least this many optimizer steps (tiny data sets underfit in 60 passes)
MAX_STEPS = 20000
MIN_VAL = 100  # a validation split smaller than this is noise: no early stopping on it
SMALL_DATA = 2000  # fewer training examples than this: augmentation, label smoothing, seed ensemble
MAX_ENSEMBLE = 5
WARN_STEPS = 200  # below this many steps the plan says the budget is too small


@dataclass
class ClassifyStats:
    """What the classification rule looks at (all from the training file)."""

    n: int  # training examples
    n_classes: int
    min_class_count: int
    kind: str  # "numeric" | "tokens"
    n_features: int = 0  # numeric: channels per step
    len_min: int = 1
    len_median: float = 1.0
    len_max: int = 1
    len_p90: Optional[float] = None  # None: taken as len_max


def classify_stats(lengths: Sequence[int], labels: Sequence[str], kind: str, n_features: int = 0) -> ClassifyStats:
    """lengths: (n,) steps (numeric) or tokens per example; labels: (n,) strings."""
    lengths = np.asarray(lengths, dtype=np.int64)
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return ClassifyStats(n=int(len(lengths)), n_classes=int(len(counts)), min_class_count=int(counts.min()),
                         kind=kind, n_features=int(n_features), len_min=int(lengths.min()),
                         len_median=float(np.median(lengths)), len_max=int(lengths.max()),
                         len_p90=float(np.quantile(lengths, 0.9)))


@dataclass
class ClassifyPlan:
    """Every automatic choice of ``SequenceClassifier`` (names = ``ClassifierConfig`` fields)."""

    hidden_size: int
    bidirectional: bool
    pooling: str
    conv_kernel: int  # 0 = no conv front end
    conv_stride: int  # > 1: the front end downsamples time by this factor
    conv_channels: int  # front-end output channels (0 = as many as inputs)
    conv_layers: int  # front-end depth
    pool_len: int  # numeric series longer than this are average-pooled to fit (0 = never)
    series_norm: bool  # also feed each series standardised by its own mean/std
    dropout: float
    input_noise: float
    augment: bool  # random amplitude scaling + time shift of training batches
    label_smoothing: float
    batch_size: int
    lr: float
    schedule: str
    max_steps: int
    ensemble: int
    val_fraction: float
    patience: int
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def classify_architecture(stats: ClassifyStats) -> dict:
    """Model choices that depend on the data only (the step time is measured on this architecture)."""
    if stats.kind == "tokens":
        return dict(hidden_size=64 if stats.n < 20000 else 128, bidirectional=True, pooling="mean",
                    conv_kernel=0, conv_stride=1, conv_channels=0, conv_layers=1, pool_len=0, series_norm=False,
                    dropout=0.0)
    # The stride follows the longest series unless a few are far longer than the rest (one 60,000-step
    # recording among 40-step ones set stride 375: every typical one became a single RNN step); those
    # few are average-pooled down to what the stride covers instead.
    p90 = stats.len_max if stats.len_p90 is None else stats.len_p90
    reach = min(stats.len_max, max(1, math.ceil(OUTLIER_SPAN * p90)))
    stride = max(1, math.ceil(reach / MAX_RNN_STEPS))
    pool_len = stride * MAX_RNN_STEPS if stats.len_max > stride * MAX_RNN_STEPS else 0
    # An odd kernel covering two strides, so consecutive windows overlap and no step is skipped.
    kernel = 3 if stride == 1 else 2 * stride + 1
    # Max pooling: each unit's strongest response anywhere in the series (bursts, events); on the
    # dev suite it beat mean pooling on long series (ACSF1) and tied on short ones.
    return dict(hidden_size=64 if stats.n < 5000 else 128, bidirectional=True, pooling="max",
                conv_kernel=kernel, conv_stride=stride, conv_channels=max(32, 2 * stats.n_features), conv_layers=1,
                pool_len=pool_len, series_norm=True, dropout=0.0)


def classify_batch_size(n: int) -> int:
    """Small data: small batches (more, noisier steps); the GRU step cost grows slowly with batch."""
    return 8 if n < 300 else 16 if n < 1000 else 32


StepSeconds = Union[float, Callable[[dict, int], float]]


def classify_plan(stats: ClassifyStats, budget_s: Optional[float], seconds_per_step: StepSeconds,
                  fixed: Optional[dict] = None) -> ClassifyPlan:
    """The whole plan.

    ``seconds_per_step``: seconds of one member's training step, a number or a callable
    ``(architecture dict, batch size) -> seconds`` (the task measures a few real steps);
    ``fixed``: the user's explicit settings (None = auto). They win, and the rest adapts to them:
    a fixed ``epochs``/``max_steps`` turns off the budget-filled ensemble.
    """
    fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
    arch = {**classify_architecture(stats), **{k: fixed[k] for k in classify_architecture(stats) if k in fixed}}
    budget = DEFAULT_BUDGET_S if budget_s is None else float(budget_s)
    small = stats.n < SMALL_DATA
    notes: list[str] = []

    # Validation split only where it can mean something.
    n_val = round(0.1 * stats.n)
    if "val_fraction" in fixed:
        val_fraction = float(fixed["val_fraction"])
        val_why = f"validation {val_fraction:g} (given)"
    elif n_val >= MIN_VAL and n_val >= 5 * stats.n_classes:
        val_fraction = 0.1
        val_why = f"early stopping on a {n_val}-example validation split"
    else:
        val_fraction = 0.0
        val_why = f"no validation split (10% would be {n_val} examples < {MIN_VAL}): fixed step count"
    patience = int(fixed.get("patience", 10 if val_fraction > 0 else 0))
    n_train = stats.n - round(val_fraction * stats.n)

    batch = int(fixed.get("batch_size", classify_batch_size(n_train)))
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    target = min(MAX_STEPS, max(MIN_STEPS, TARGET_EPOCHS * steps_per_epoch))
    sps = float(seconds_per_step(arch, batch) if callable(seconds_per_step) else seconds_per_step)
    affordable = int(BUDGET_USE * budget / max(sps, 1e-6))
    if "max_steps" in fixed or "epochs" in fixed:
        steps = int(fixed["max_steps"]) if "max_steps" in fixed else int(fixed["epochs"]) * steps_per_epoch
        steps_why = "steps given"
    else:
        steps = max(1, min(target, affordable))
        steps_why = f"{steps} steps ({steps / steps_per_epoch:.0f} epochs)"
        if affordable < target:
            steps_why += f", budget-limited (target {target})"
        if steps < WARN_STEPS:
            notes.append(f"the budget of {budget:g} s allows only {steps} optimizer steps at "
                         f"{sps * 1000:.0f} ms/step; raise --max-time for a better model")

    if "ensemble" in fixed:
        ensemble = int(fixed["ensemble"])
    elif small and "max_steps" not in fixed and "epochs" not in fixed:
        ensemble = max(1, min(MAX_ENSEMBLE, affordable // max(steps, 1)))
    else:
        ensemble = 1
    if steps_why != "steps given" and ensemble < MAX_ENSEMBLE and affordable // ensemble > steps:
        # Spend the budget: what the members leave over, too little for one more member, lengthens
        # each of them (up to 2x the target), e.g. 1.5 targets affordable -> one member of 1.5
        # targets, not one of 1 target. A full ensemble of tiny data finishes early instead.
        steps = min(2 * target, affordable // ensemble)
        steps_why = f"{steps} steps ({steps / steps_per_epoch:.0f} epochs)"

    numeric = stats.kind == "numeric"
    input_noise = float(fixed.get("input_noise", 0.1 if (numeric and small) else 0.0))
    # Scaling/crop augmentation stays opt-in: on the dev suite it cost accuracy (ACSF1 0.76 -> 0.63).
    augment = bool(fixed.get("augment", False))
    label_smoothing = float(fixed.get("label_smoothing", 0.1 if small else 0.0))
    lr = float(fixed.get("lr", 3e-3))
    schedule = str(fixed.get("schedule", "cosine"))

    view = "" if not numeric else (" per-series+global scaling," if arch["series_norm"] else " global scaling,")
    front = ""
    if arch["conv_kernel"]:
        front = f" conv{arch['conv_kernel']}" + (f"/stride {arch['conv_stride']}" if arch["conv_stride"] > 1 else "") + ","
    reg = ", ".join(x for x in (f"noise {input_noise:g}" if input_noise else "", "scale/shift aug" if augment else "",
                                f"label smoothing {label_smoothing:g}" if label_smoothing else "") if x)
    longest = min(stats.len_max, arch["pool_len"] or stats.len_max)
    length = (f"lengths {stats.len_min}-{stats.len_max}"
              + (f", longer than {arch['pool_len']} average-pooled to fit" if arch["pool_len"] else "")
              + (f" -> {math.ceil(longest / arch['conv_stride'])} RNN steps" if arch["conv_stride"] > 1 else ""))
    reason = (f"{stats.n} {stats.kind} examples, {stats.n_classes} classes, {length}, budget {budget:.0f} s"
              f"{'' if budget_s is not None else ' (default)'} -> "
              f"{'bi-' if arch['bidirectional'] else ''}GRU {arch['hidden_size']} {arch['pooling']} pooling,{front}{view} "
              f"batch {batch}, {steps_why}, {ensemble} seed(s), {val_why}" + (f"; {reg}" if reg else ""))
    return ClassifyPlan(**arch, input_noise=input_noise, augment=augment, label_smoothing=label_smoothing,
                        batch_size=batch, lr=lr, schedule=schedule, max_steps=steps, ensemble=ensemble,
                        val_fraction=val_fraction, patience=patience, reason=reason, notes=notes)


# The fixed defaults that the automatic fields had before issue 14: pass them (e.g.
# ``SequenceClassifier(**CLASSIFY_FIXED_DEFAULTS, ...)``) to reproduce results of older versions
# (ensemble is left out: with a fixed length the plan gives 1, the old default).
CLASSIFY_FIXED_DEFAULTS = dict(
    hidden_size=64, bidirectional=False, pooling="last", dropout=0.0, label_smoothing=0.0, input_noise=0.0,
    augment=False, conv_kernel=0, conv_stride=1, conv_channels=0, conv_layers=1, pool_len=0, series_norm=False,
    val_fraction=0.1,
    batch_size=32, epochs=30, lr=3e-3, schedule="constant", patience=5, max_len=512)


# ============================================================================================ forecasting
# Forecasting (``forecast_stats`` -> ``forecast_plan``), chosen on the training parts of the dev suite
# (bench/forecast_suite.py tune; numbers in docs/benchmarks.md):
# - anchor: the network's linear path starts at seasonal naive when most series are seasonal at the
#   data's period (ACF test below), else at zero; the network learns the correction;
# - ensemble: members with different initialisations (quantiles averaged); small panels train few
#   optimizer steps per member, so more members cost little and remove most of the seed noise;
# - training length stays in epochs of about one pass over the windows (``steps_per_epoch``);
# - combine: panels of at most FORECAST_COMBINE_MAX_SERIES series get the blend of the RNN's median
#   with per-series ETS and Theta (forecast/combine.py); training parts 1.280 -> 1.215 mean MASE.

FORECAST_SEASONAL_SHARE = 0.5  # share of series with significant seasonality that makes the panel seasonal
FORECAST_MAX_ENSEMBLE = 5
FORECAST_EPOCHS = 30       # epochs of about one pass over the windows each (5-50 batches)
FORECAST_MIN_EPOCHS = 5    # a budget that pays for fewer is too small: the plan says so
FORECAST_DEFAULT_BUDGET_S = 120.0  # planning budget (not a hard stop) when the user gives no --max-time;
                                   # shared by the model and its calibration twin
FORECAST_COMBINE = "blend"         # 2/3 RNN + 1/3 mean(ETS, Theta) (combine.py) for panels of at most
FORECAST_COMBINE_MAX_SERIES = 100  # this many series; larger panels give the global RNN enough to learn
                                   # from (M1 yearly: RNN alone best), and per-series fits cost ~1 s each
FORECAST_BUDGET_USE = 0.8  # share of the budget planned for optimizer steps (the rest: data, prediction, save)


@dataclass
class ForecastStats:
    """What the forecasting rule looks at (all from the training series)."""

    n_series: int
    median_length: int
    windows: int            # training (series, origin) pairs
    horizon: int
    season: int
    seasonal_share: float   # share of series whose ACF at lag ``season`` is significant (0 when season 1)
    season_known: bool = True  # False for integer times without --season: season 1 is a guess


@dataclass
class ForecastPlan:
    """Settings chosen for one training run; ``reason`` is the one line printed at the start."""

    anchor: str
    ensemble: int
    epochs: int
    combine: str = "none"
    reason: str = ""
    chosen: dict = field(default_factory=dict)  # setting -> value, only those the rule picked

    def values(self) -> dict:
        return {"anchor": self.anchor, "ensemble": self.ensemble, "epochs": self.epochs, "combine": self.combine}


def is_seasonal(y: np.ndarray, season: int) -> bool:
    """The M4 competition's seasonality test (90 %: the autocorrelation at lag ``season`` exceeds
    1.645 sqrt((1 + 2 sum_{k<season} acf_k^2) / n)), on the first differences: a trend alone makes
    every lag of the raw series' ACF large. Needs 3 seasons of data."""
    y = np.diff(np.asarray(y, dtype=np.float64))
    n = len(y)
    if season <= 1 or n < 3 * season:
        return False
    x = y - y.mean()
    den = float(np.dot(x, x))
    if den <= 0:
        return False
    acf = np.array([np.dot(x[:n - k], x[k:]) / den for k in range(1, season + 1)])
    limit = 1.645 * math.sqrt((1 + 2 * float(np.sum(acf[:-1] ** 2))) / n)
    return bool(abs(acf[-1]) > limit)


def forecast_stats(series: Sequence[np.ndarray], horizon: int, season: int, windows: int,
                   season_known: bool = True) -> ForecastStats:
    """Statistics of the training series (each (n,) values) for ``forecast_plan``."""
    lengths = [len(y) for y in series]
    share = float(np.mean([is_seasonal(y, season) for y in series])) if season > 1 and series else 0.0
    return ForecastStats(n_series=len(series), median_length=int(np.median(lengths)) if lengths else 0,
                         windows=int(windows), horizon=int(horizon), season=int(season), seasonal_share=share,
                         season_known=season_known)


def forecast_plan(stats: ForecastStats, anchor: Optional[str] = None, ensemble: Optional[int] = None,
                  epochs: Optional[int] = None, combine: Optional[str] = None) -> ForecastPlan:
    """The plan for ``stats`` before any budget (see ``forecast_budget``); a value the user gave
    (not None) is kept as it is."""
    chosen, why = {}, []
    if anchor is None:
        seasonal = stats.season > 1 and stats.seasonal_share >= FORECAST_SEASONAL_SHARE
        anchor = "seasonal" if seasonal else "none"
        chosen["anchor"] = anchor
        why.append(f"anchor {anchor} ({stats.seasonal_share:.0%} of series seasonal at period {stats.season})"
                   if stats.season > 1 else f"anchor {anchor} (no seasonal period)")
    if ensemble is None:
        ensemble = FORECAST_MAX_ENSEMBLE
        chosen["ensemble"] = ensemble
        why.append(f"ensemble {ensemble}")
    if epochs is None:
        epochs = FORECAST_EPOCHS
        chosen["epochs"] = epochs
        why.append(f"{epochs} epochs")
    if combine is None:
        scipy = importlib.util.find_spec("scipy") is not None  # ETS and Theta need it ([baselines] extra)
        # per-series ETS / Theta with a wrong season (integer times hide it) would undo what the RNN
        # learnt from the data: a sine of period 12 with season 1 gets a flat ETS forecast
        block = ("no scipy" if not scipy else "season unknown: integer times" if not stats.season_known
                 else f"over {FORECAST_COMBINE_MAX_SERIES} series" if stats.n_series > FORECAST_COMBINE_MAX_SERIES
                 else "")
        combine = "none" if block else FORECAST_COMBINE
        chosen["combine"] = combine
        why.append(f"RNN alone ({block})" if block else f"point forecast {combine} of RNN, ETS, Theta")
    return ForecastPlan(anchor=anchor, ensemble=ensemble, epochs=epochs, combine=combine,
                        reason=_reason(why, stats), chosen=chosen)


def _reason(why: list[str], stats: ForecastStats, note: str = "") -> str:
    if not why:
        return ""
    return (f"auto: {', '.join(why)} [{stats.n_series} series, median length {stats.median_length}, "
            f"{stats.windows} windows{note}]")


def forecast_budget(plan: ForecastPlan, steps_per_epoch: int, step_seconds: float, budget: float) -> ForecastPlan:
    """Fit ``plan`` into ``budget`` seconds of training at ``step_seconds`` per step of one member
    (members run one after the other, so a step of E members costs E times that): first fewer
    members, then fewer epochs (never below ``FORECAST_MIN_EPOCHS``), and only where the rule chose
    the value (``plan.chosen``); the user's own values are kept."""
    usable = FORECAST_BUDGET_USE * budget
    member = max(1e-9, steps_per_epoch * step_seconds)  # one member, one epoch
    ensemble, epochs = plan.ensemble, plan.epochs
    if "ensemble" in plan.chosen:
        ensemble = int(max(1, min(ensemble, usable // (member * epochs))))
    if "epochs" in plan.chosen and ensemble * epochs * member > usable:
        epochs = int(max(FORECAST_MIN_EPOCHS, usable // (member * ensemble)))
    if (ensemble, epochs) == (plan.ensemble, plan.epochs):
        return plan
    chosen = {**plan.chosen, "ensemble": ensemble} if "ensemble" in plan.chosen else dict(plan.chosen)
    if "epochs" in chosen:
        chosen["epochs"] = epochs
    need = plan.ensemble * plan.epochs * member / FORECAST_BUDGET_USE
    reason = plan.reason.replace(f"ensemble {plan.ensemble}", f"ensemble {ensemble}").replace(
        f"{plan.epochs} epochs", f"{epochs} epochs")
    reason = reason[:-1] + f"; the budget of {budget:.0f} s pays for this, the full plan needs ~{need:.0f} s]"
    if ensemble * epochs * member > usable:
        reason += f" (budget too small: expect ~{ensemble * epochs * member / FORECAST_BUDGET_USE:.0f} s)"
    return ForecastPlan(anchor=plan.anchor, ensemble=ensemble, epochs=epochs, combine=plan.combine, reason=reason,
                        chosen=chosen)
