"""The trainer's helpers, each a small object with a JSON-able ``state_dict`` so resume is exact:
learning-rate schedule, early stopping, progress bar, metrics CSV."""
from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from tqdm.auto import tqdm

from rnnkit.errors import UserError
from rnnkit.train.checkpoint import atomic_write_text


SCHEDULES = ("constant", "cosine", "plateau", "budget")
BUDGET_DECAY = 0.5  # "budget": share of the run spent decaying (dev corpora: 0.3-0.5 beat cosine and constant)


@dataclass
class LRSchedule:
    """lr(step) = base_lr * warmup(step) * shape(step) * plateau_scale.

    - warmup: linear from 1/warmup_steps to 1 over the first ``warmup_steps`` optimizer steps;
    - shape: 1 ("constant", "plateau") or cosine from 1 down to ``min_lr_ratio`` ("cosine") over
      ``total_steps`` (if unknown, over ``epochs`` using the fraction of the epoch done); "budget" is
      constant, then linear down to ``min_lr_ratio`` over the last ``BUDGET_DECAY`` of whichever ends
      the run first, the steps/epochs or the time budget (``time_frac`` = share of ``max_time`` used),
      so a run cut by ``--max-time`` ends annealed (a warmup-stable-decay schedule on the clock);
    - plateau_scale: halved (``factor``) when the val loss has not improved for ``plateau_patience`` epochs.
    """
    base_lr: float
    kind: str = "constant"
    warmup_steps: int = 0
    total_steps: Optional[int] = None
    min_lr_ratio: float = 0.0
    factor: float = 0.5
    plateau_patience: int = 2
    # mutable state
    plateau_scale: float = 1.0
    plateau_best: float = math.inf
    plateau_bad: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}; choose {', '.join(SCHEDULES)}")

    def lr(self, step: int, progress: Optional[float] = None, time_frac: Optional[float] = None) -> float:
        """LR for optimizer step ``step`` (0-based). ``progress`` in [0, 1] is used by cosine when
        ``total_steps`` is unknown; ``time_frac`` (share of the time budget used, None: no budget)
        by "budget"."""
        scale = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        if self.kind in ("cosine", "budget"):
            if self.total_steps:
                span = max(1, self.total_steps - self.warmup_steps)
                p = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            else:
                p = min(1.0, max(0.0, progress or 0.0))
            if self.kind == "budget":  # constant, then linear to min_lr_ratio over the last BUDGET_DECAY
                p = p if time_frac is None else max(p, min(1.0, time_frac))
                shape = min(1.0, (1.0 - p) / BUDGET_DECAY)
            else:
                shape = 0.5 * (1 + math.cos(math.pi * p))
            scale *= self.min_lr_ratio + (1 - self.min_lr_ratio) * shape
        return self.base_lr * scale * self.plateau_scale

    def on_val(self, val_loss: float) -> None:
        """Plateau bookkeeping (like torch's ReduceLROnPlateau, mode min, rel threshold 1e-4)."""
        if self.kind != "plateau":
            return
        if val_loss < self.plateau_best * (1 - 1e-4):
            self.plateau_best, self.plateau_bad = val_loss, 0
        else:
            self.plateau_bad += 1
            if self.plateau_bad > self.plateau_patience:
                self.plateau_scale *= self.factor
                self.plateau_bad = 0

    def state_dict(self) -> dict:
        return {"plateau_scale": self.plateau_scale, "plateau_best": self.plateau_best,
                "plateau_bad": self.plateau_bad}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.plateau_best = float(state["plateau_best"])
        self.plateau_bad = int(state["plateau_bad"])


@dataclass
class EarlyStopping:
    """Stop when the val loss has not improved by ``min_delta`` for ``patience`` evaluations.
    ``patience=None`` or 0 never stops (best weights are still tracked)."""
    patience: Optional[int] = 5
    min_delta: float = 0.0
    best: float = math.inf
    best_epoch: int = -1
    bad: int = 0

    def update(self, val_loss: float, epoch: int) -> bool:
        """Record a val loss; True if it is a new best."""
        if val_loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad = val_loss, epoch, 0
            return True
        self.bad += 1
        return False

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.bad >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad = int(state["bad"])


class ProgressBar:
    """tqdm bar on stderr, one per epoch (loss, it/s, ETA); a summary line per epoch. No-op if disabled."""

    def __init__(self, enabled: bool, epochs: int) -> None:
        self.enabled, self.epochs, self.bar = enabled, epochs, None

    def start_epoch(self, epoch: int, total: Optional[int], initial: int = 0) -> None:
        if self.enabled:
            self.bar = tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{self.epochs}",
                            file=sys.stderr, leave=False, dynamic_ncols=True, unit="it")

    def update(self, n: int = 1, **postfix) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(n)

    def end_epoch(self, row: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            parts = [f"epoch {row['epoch']}/{self.epochs}", f"step {row['step']}"]
            for k in ("train_loss", "val_loss", "lr"):
                if row.get(k) is not None:
                    parts.append(f"{k} {row[k]:.4g}")
            parts.append(f"{row['seconds']:.1f}s")
            tqdm.write("  ".join(parts), file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


METRIC_FIELDS = ["epoch", "step", "train_loss", "val_loss", "lr", "seconds"]
LOGGERS = ("csv", "tensorboard")


class CsvLogger:
    """``metrics.csv`` rewritten atomically from all rows so far (rows survive resume via trainer state)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / "metrics.csv"

    def log(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_FIELDS})
        atomic_write_text(self.path, buf.getvalue())

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """Event files in ``out_dir/tensorboard`` (``tensorboard --logdir OUT/tensorboard``): train/val loss
    and learning rate per epoch, against the optimizer step. Needs the [tensorboard] extra."""

    def __init__(self, out_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise UserError(f"--logger tensorboard needs the [tensorboard] extra: pip install 'rnnkit[tensorboard]' "
                            f"({exc})") from None
        self.writer = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))
        self.written = 0

    def log(self, rows: list[dict]) -> None:
        for row in rows[self.written:]:
            for key in ("train_loss", "val_loss", "lr"):
                if row.get(key) is not None:
                    self.writer.add_scalar(key, float(row[key]), int(row["step"]))
        self.written = len(rows)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_loggers(kind: str, out_dir: Path) -> list:
    """``csv``: metrics.csv; ``tensorboard``: metrics.csv and TensorBoard event files."""
    if kind not in LOGGERS:
        raise UserError(f"unknown logger {kind!r}; choose {' or '.join(LOGGERS)}")
    return [CsvLogger(out_dir)] + ([TensorBoardLogger(out_dir)] if kind == "tensorboard" else [])
