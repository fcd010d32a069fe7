"""Automatic configuration of the text task (issue 14): corpus size + time budget -> model and training.

``text_plan`` is a pure function (no torch, no clock), so the rule is unit-testable and the same
command always plans the same model (a ``--resume`` rebuilds the same network); ``resolve_text``
applies it to the settings the user left unset, prints the one-line reason and keeps the plan in
the output folder for ``--resume``. The rule is written down in docs/decisions.md ("Text: automatic
configuration").

Character level, with a budget (``--max-time``): training is compute-bound, so the plan spends the
budget on optimizer steps. The expected number of tokens a width can train on is
``budget x BUDGET_USE x rate(width)`` (``CPU_RATE``: tokens/s of one training step at batch 16 x
BPTT 128, LSTM, one torch thread on this project's CPU; CUDA: x ``CUDA_SPEEDUP``); the widest
LSTM (of ``WIDTHS``) that still sees ``TOKENS_PER_PARAM`` tokens per weight is chosen. Many small
steps beat few big ones in a race: 16 streams x 128 characters, lr ``LR`` held, then decayed linearly
over the second half of the time budget (schedule "budget": the lr reaches 0 when the time runs out). Dropout grows with the
expected passes over the training text (``DROPOUT_BY_PASSES``): none when the budget sees the text
about once, more when it would be read many times.
Without a budget the run is long (30 epochs, early stopping): the width comes from the corpus size
alone (``LONG_RUN``), batch 32, cosine over the epochs.
Word and BPE levels keep the per-level defaults (``text.task._DEFAULTS``) and only switch the schedule
to "budget" when there is a budget.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

from rnnkit.data.token_batches import dist_rank

WIDTHS = (128, 256, 384, 512)
# Measured on this project's 2-core machine (AMD EPYC) (docs/decisions.md, "Text: automatic configuration"): tokens/s
# of training steps, LSTM 1 layer, embedding 64, batch 16 x BPTT 128, one torch thread.
CPU_RATE = {128: 46_000, 256: 18_000, 384: 12_000, 512: 8_000}
CUDA_SPEEDUP = 20.0
BUDGET_USE = 0.9  # share of --max-time left for optimizer steps (prepare, validation, saving)
TOKENS_PER_PARAM = 4.0  # the widest width whose token budget is at least this many tokens per weight
BATCH, BPTT, LR = 16, 128, 5e-3
LONG_LR = 3e-3  # no budget: the old long-run default (docs/bench/text.md)
DROPOUT_BY_PASSES = ((3.0, 0.0), (10.0, 0.1), (30.0, 0.2))  # (passes below, dropout); more passes: 0.3
LONG_RUN = ((300_000, 256, 0.2), (None, 512, 0.1))  # no budget: (train tokens below, width, dropout)
PLAN_FILE = "text_plan.json"  # in the training out_dir: the plan a --resume continues
AUTO_FIELDS = ("hidden_size", "num_layers", "dropout", "batch_size", "bptt", "lr", "schedule")


@dataclass
class TextStats:
    """What the text rule looks at."""

    level: str  # "char" | "word" | "bpe"
    train_tokens: int
    vocab_size: int
    cuda: bool = False


@dataclass
class TextPlan:
    """Settings chosen for one training run (names = ``TextConfig`` fields; None: the level's default)."""

    hidden_size: Optional[int] = None
    num_layers: Optional[int] = None
    dropout: Optional[float] = None
    batch_size: Optional[int] = None
    bptt: Optional[int] = None
    lr: Optional[float] = None
    schedule: Optional[str] = None
    expected_tokens: Optional[float] = None  # tokens the budget is expected to train on
    reason: str = ""


def lstm_params(width: int, embed: int = 64, vocab: int = 100) -> int:
    """Weights of embedding -> 1-layer LSTM(width) -> linear decoder."""
    return vocab * embed + 4 * width * (embed + width + 2) + (width + 1) * vocab


def expected_tokens(width: int, budget: float, cuda: bool = False) -> float:
    """Tokens a ``width``-unit char LSTM is expected to train on in ``budget`` seconds."""
    return budget * BUDGET_USE * CPU_RATE[width] * (CUDA_SPEEDUP if cuda else 1.0)


def dropout_for(passes: float) -> float:
    """Dropout for an expected number of passes over the training text."""
    for below, p in DROPOUT_BY_PASSES:
        if passes < below:
            return p
    return 0.3


def text_plan(stats: TextStats, budget: Optional[float]) -> TextPlan:
    """The automatic settings for ``stats`` and a budget in seconds (None: no --max-time)."""
    if stats.level != "char":
        if budget is None:
            return TextPlan(reason=f"{stats.level} level: the level's defaults, cosine over the epochs")
        return TextPlan(schedule="budget", reason=f"{stats.level} level: the level's defaults, lr linear to 0 over "
                                                  f"the last half of the {budget:.0f} s budget")
    n = max(1, stats.train_tokens)
    if budget is None:
        width, dropout = next((w, d) for below, w, d in LONG_RUN if below is None or n < below)
        return TextPlan(hidden_size=width, num_layers=1, dropout=dropout, batch_size=32, bptt=BPTT, lr=LONG_LR,
                        schedule="cosine", reason=f"char LSTM 1x{width}, dropout {dropout}, batch 32 x {BPTT}, "
                        f"lr {LONG_LR:g} cosine over the epochs: {n:,} training characters, no --max-time (long run)")
    vocab = max(2, stats.vocab_size)
    width = WIDTHS[0]
    for w in WIDTHS:
        if expected_tokens(w, budget, stats.cuda) >= TOKENS_PER_PARAM * lstm_params(w, vocab=vocab):
            width = w
    tokens = expected_tokens(width, budget, stats.cuda)
    passes = tokens / n
    dropout = dropout_for(passes)
    reason = (f"char LSTM 1x{width}, batch {BATCH} x bptt {BPTT}, lr {LR:g} constant then linear to 0 over the "
              f"last half of the {budget:.0f} s budget, dropout {dropout}: {n / 1e6:.2f} M training characters, ~{tokens / 1e6:.1f} M expected in "
              f"the budget ({passes:.1f} passes, {tokens / lstm_params(width, vocab=vocab):.0f} per weight)")
    return TextPlan(hidden_size=width, num_layers=1, dropout=dropout, batch_size=BATCH, bptt=BPTT, lr=LR,
                    schedule="budget", expected_tokens=tokens, reason=reason)


def resolve_text(requested: Any, stats: TextStats, out_dir: Optional[str] = None, resume: bool = False) -> Any:
    """``requested`` (a ``TextConfig`` whose None fields are automatic) with the plan filled in.

    The one-line reason is printed on stderr (also under ``--quiet``: it says what was trained); the plan is kept in ``out_dir/PLAN_FILE`` so
    that ``--resume`` continues the same network even with another ``--max-time``.
    """
    saved = Path(out_dir) / PLAN_FILE if out_dir is not None else None
    if resume and saved is not None and saved.is_file():
        plan = TextPlan(**json.loads(saved.read_text(encoding="utf-8")))
    else:
        plan = text_plan(stats, requested.max_time)
        if saved is not None and dist_rank()[0] == 0:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(asdict(plan)) + "\n", encoding="utf-8")
    chosen = {f: getattr(plan, f) for f in AUTO_FIELDS if getattr(requested, f) is None and getattr(plan, f) is not None}
    given = [f for f in AUTO_FIELDS if getattr(requested, f) is not None and getattr(plan, f) is not None]
    if dist_rank()[0] == 0:
        note = f" (given: {', '.join('--' + f.replace('_', '-') for f in given)})" if given else ""
        print(f"rnnkit: auto config: {plan.reason}{note}", file=sys.stderr)
    return replace(requested, **chosen)
