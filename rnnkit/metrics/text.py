"""Language-model metrics: loss (nats per token), perplexity, bits per character, top-k accuracy.

Bits per character is the model's total code length over the evaluated text divided by its
number of characters: for a character model ``loss / ln 2``; for a word model it makes word
and character models comparable on the same text.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor


@dataclass
class LMTotals:
    """Running sums over an evaluation; ``scores()`` turns them into the reported metrics."""

    nll: float = 0.0          # summed negative log-likelihood, nats
    tokens: int = 0           # scored targets
    skipped: int = 0          # targets not scored (unknown characters at char level)
    hits: dict[int, int] = field(default_factory=dict)  # k -> targets within the top k

    def add(self, logits: Tensor, targets: Tensor, ignore_index: int | None = None, ks: tuple[int, ...] = ()) -> None:
        """logits (N, V), targets (N,). Targets equal to ``ignore_index`` are skipped."""
        logits, targets = logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1)
        keep = torch.ones_like(targets, dtype=torch.bool) if ignore_index is None else targets != ignore_index
        self.skipped += int((~keep).sum())
        logits, targets = logits[keep], targets[keep]
        if targets.numel() == 0:
            return
        self.nll += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
        self.tokens += int(targets.numel())
        for k in ks:
            top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
            self.hits[k] = self.hits.get(k, 0) + int((top == targets.unsqueeze(-1)).any(-1).sum())

    def scores(self, characters: int | None = None) -> "LMScores":
        loss = self.nll / self.tokens if self.tokens else float("nan")
        bpc = self.nll / characters / math.log(2) if characters else None
        acc = {f"top{k}_accuracy": h / self.tokens for k, h in sorted(self.hits.items())} if self.tokens else {}
        return LMScores(loss=loss, perplexity=math.exp(loss) if loss < 700 else float("inf"), bits_per_char=bpc,
                        tokens=self.tokens, skipped=self.skipped, characters=characters, **acc)


@dataclass
class LMScores:
    loss: float                       # nats per token
    perplexity: float                 # exp(loss)
    bits_per_char: float | None       # total bits / characters of the evaluated text
    tokens: int
    skipped: int = 0
    characters: int | None = None
    top1_accuracy: float | None = None
    top5_accuracy: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}
