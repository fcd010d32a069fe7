"""`rnnkit demo` sections for the three tutorial examples (sine, counting, i2h names).

Each ``*_section(out_dir, quick) -> str`` trains the model from ``rnnkit.tutorials``,
writes its PNG plot into ``out_dir`` and returns a short Markdown summary. ``quick``
uses smaller settings (seconds), the full mode the examples' defaults.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

from rnnkit.tutorials.count import PLAIN_TUTORIAL, SCALED_TANH, CountConfig, CountResult, run_count
from rnnkit.tutorials.names_i2h import I2HConfig, I2HResult, run_i2h
from rnnkit.tutorials.sine import SineConfig, SineResult, run_sine
from rnnkit.io import save_figure


def _save(fig: Figure, path: Path) -> None:
    save_figure(fig, path, dpi=110, bbox_inches="tight")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ sine
def sine_section(out_dir: Path, quick: bool) -> str:
    cfg = SineConfig(epochs=80) if quick else SineConfig()
    _log(f"sine: RNN(1, {cfg.hidden}, relu) + Linear, {cfg.epochs} epochs")
    r = run_sine(cfg)
    plot_sine(r, Path(out_dir) / "sine.png")
    return (
        f"An RNN with {cfg.hidden} relu units and a linear readout, trained on windows of "
        f"{cfg.window} values from t = 0 .. {r.t[r.split - 1]:.1f}, predicts the next value of sin(t).\n\n"
        f"| stretch | one-step RMSE |\n|---|---|\n"
        f"| training (t < {r.t[r.split]:.1f}) | {r.rmse_train:.4f} |\n"
        f"| **held out** (t = {r.t[r.split]:.1f} .. {r.t[-1]:.0f}) | **{r.rmse_holdout:.4f}** (goal ≤ 0.01) |\n\n"
        f"![sine](sine.png)\n"
    )


def plot_sine(r: SineResult, path: Path) -> None:
    """True series vs one-step predictions, held-out stretch shaded."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    ax.axvspan(r.t[r.split], r.t[-1], color="0.9", label="held out (never seen in training)")
    ax.plot(r.t, r.series, color="k", lw=1.2, label="sin(t)")
    ax.plot(r.t, r.pred, color="tab:red", lw=1, ls="--", label="one-step prediction")
    ax.set_xlabel("t")
    ax.set_title(f"Next value of sin(t): held-out RMSE {r.rmse_holdout:.4f}")
    ax.legend(loc="lower left", fontsize=8)
    _save(fig, path)


# ------------------------------------------------------------------------------ count
COUNT_VARIANTS: list[tuple[str, CountConfig]] = [
    ("plain tutorial: tanh unit, raw counts, output = state", PLAIN_TUTORIAL),
    ("tanh unit + built-in scaler + linear readout", SCALED_TANH),
    ("relu unit, random init (+ scaler, readout)", CountConfig(linear_init=False)),
    ("**rnnkit: relu unit started linear + scaler + readout**", CountConfig()),
]


def count_section(out_dir: Path, quick: bool) -> str:
    rows, results = [], []
    for name, cfg in COUNT_VARIANTS:
        _log(f"count: {name}")
        r = run_count(cfg)
        results.append((name, r))
        preds = ", ".join(f"{v:.1f}" for v in r.extrap_pred)
        rows.append(f"| {name} | {r.train_mae:.3f} | {preds} | {r.extrap_max_err:.2f} |")
    plot_count(results, Path(out_dir) / "count.png")
    return (
        "One recurrent unit, trained with Adam on MSE for [1..5] → [6..10] and [6..10] → [11..15]; "
        "then asked for [11..15] (answer 16..20, outside everything seen).\n\n"
        "| model | train MAE (goal ≤ 0.1) | prediction for [11..15] | max error (goal ≤ 0.5) |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nThe tutorial's SimpleRNN outputs its tanh state, which can never exceed 1, so it saturates "
        "at 1.0. Scaling (an affine scaler stored in the model, shared by inputs and targets) fixes the fit, "
        "but a tanh unit bends flat beyond its training inputs. A relu unit is linear on its active side, "
        "so x + 5 learnt on 1..10 holds at 11..15; started at random it is often dead (constant output "
        "for 6 of seeds 0-9), so rnnkit starts it in its linear regime (w = 1, u = 0, identity readout: "
        "y = x) and Adam learns the +5.\n\n![count](count.png)\n"
    )


def plot_count(results: list[tuple[str, CountResult]], path: Path) -> None:
    """Predictions for [11..15] of each variant against the targets 16..20."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    xs = np.arange(11, 16)
    ax.plot(xs, xs + 5, "k-o", label="target 16..20")
    for (name, r), style in zip(results, ["s:", "^--", "v:", "o-"]):
        ax.plot(xs, r.extrap_pred, style, label=name.replace("*", ""), alpha=0.85)
    ax.set_xlabel("input (beyond the training range 1..10)")
    ax.set_ylabel("prediction")
    ax.set_title("[11..15] -> ? : extrapolation of a one-unit RNN")
    ax.legend(fontsize=7)
    _save(fig, path)


# ------------------------------------------------------------------------------ i2h
def i2h_section(out_dir: Path, quick: bool) -> str:
    cfg = I2HConfig(epochs=3, train_limit=8000) if quick else I2HConfig()
    _log(f"i2h: I2HCell(hidden={cfg.hidden}, log_softmax) on names, {cfg.epochs} epochs")
    r = run_i2h(cfg)
    plot_i2h(r, Path(out_dir) / "i2h_confusion.png")
    per_class = np.diag(r.confusion) / np.maximum(r.confusion.sum(1), 1)
    best = sorted(zip(per_class, r.classes), reverse=True)[:3]
    worst = sorted(zip(per_class, r.classes))[:3]
    return (
        f"The classic `i2h`/`i2o` module (`rnnkit.nn.I2HCell`, log-softmax, {cfg.hidden} hidden) trained with NLL "
        f"on one-hot characters of {r.n_train} surnames in {len(r.classes)} classes (shipped data, derived from "
        f"Faker's MIT-licensed lists), padded batches with `lengths`, {cfg.epochs} epochs.\n\n"
        f"| held-out test ({r.n_test} names) | accuracy |\n|---|---|\n"
        f"| majority class ({r.majority_class}) | {r.majority_accuracy:.3f} |\n"
        f"| **i2h RNN** | **{r.test_accuracy:.3f}** |\n"
        f"| i2h RNN, mean per-class accuracy (balanced) | {per_class.mean():.3f} |\n\n"
        f"Best classes: {', '.join(f'{c} {a:.2f}' for a, c in best)}; hardest: "
        f"{', '.join(f'{c} {a:.2f} (mostly taken for {_confused_with(r, c)})' for a, c in worst)}."
        f"\n\n![confusion](i2h_confusion.png)\n"
    )


def _confused_with(r: I2HResult, label: str) -> str:
    """The class that names of ``label`` are most often wrongly given."""
    i = r.classes.index(label)
    row = r.confusion[i].copy()
    row[i] = -1
    return r.classes[int(row.argmax())]


def plot_i2h(r: I2HResult, path: Path) -> None:
    """Row-normalised confusion matrix on the test split (as in the PyTorch tutorial)."""
    fig = Figure(figsize=(8.5, 8))
    ax = fig.subplots()
    norm = r.confusion / np.maximum(r.confusion.sum(1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(r.classes)), r.classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(r.classes)), r.classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"i2h RNN on names, test accuracy {r.test_accuracy:.3f} (majority {r.majority_accuracy:.3f})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)
