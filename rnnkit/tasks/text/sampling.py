"""Decoding for language models: temperature / top-k / top-p sampling and next-word ranking.

Everything here works on logits ``(vocab,)`` or ``(batch, vocab)`` and a ``LanguageModel``'s
``step``; none of it trains or reads files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from rnnkit.errors import UserError
from rnnkit.tasks.text.network import select_state


@dataclass
class SamplingConfig:
    """How to pick the next token.

    temperature: divides the logits; 0 means greedy (always the most likely token).
    top_k: keep only the k most likely tokens (None: all).
    top_p: keep the smallest set of most likely tokens whose probability reaches p
    (nucleus sampling, Holtzman et al. 2020; None or 1.0: all).
    """

    temperature: float = 1.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None

    def __post_init__(self) -> None:
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise UserError(f"--temperature must be a finite number >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise UserError(f"--top-k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise UserError(f"--top-p must lie in (0, 1], got {self.top_p}")


def filter_logits(logits: Tensor, cfg: SamplingConfig) -> Tensor:
    """logits (..., V) -> logits with the excluded tokens at -inf, scaled by 1 / temperature."""
    logits = logits.float()
    if cfg.temperature > 0:
        logits = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop a token when the tokens ranked above it already reach p (the top one always stays)
        drop_sorted = (cum - torch.softmax(sorted_logits, dim=-1)) >= cfg.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample(logits: Tensor, cfg: SamplingConfig, generator: Optional[torch.Generator] = None) -> Tensor:
    """logits (batch, V) -> token ids (batch,), drawn with ``generator`` (same seed, same draw)."""
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(filter_logits(logits, cfg), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


StepFn = Callable[[Tensor, object], "tuple[Tensor, object]"]  # ids (B,) , state -> logits (B, V), state


def rank_words(step: StepFn, last_logits: Tensor, state: object, tokens: list[str], is_word_char: Callable[[str], bool],
               k: int = 5, beam: int = 0, max_chars: int = 24) -> list[tuple[str, float]]:
    """Top-k next words for a character model: beam search over characters until a word ends.

    ``last_logits`` (V,) and ``state`` (batch 1) come from priming the prompt. A word is a run
    of characters for which ``is_word_char`` holds, ended by any other character; its
    probability is P(chars) * P(a non-word character next), so the returned probabilities
    are those of whole words (they sum to <= 1 over all words).
    If the prompt ends inside a word, the words returned complete it.
    """
    beam = beam or max(4 * k, 16)
    word_ids = torch.tensor([is_word_char(t) for t in tokens])
    logp0 = torch.log_softmax(last_logits.float(), dim=-1)
    # live hypotheses: (text, log prob, index into the batched state)
    texts, scores = [""], torch.zeros(1)
    logp, st = logp0.unsqueeze(0), state
    done: dict[str, float] = {}
    for _ in range(max_chars):
        # finishing now: P(any non-word char); continuing: each word char
        end_lp = torch.logsumexp(logp.masked_fill(word_ids, float("-inf")), dim=-1)
        for i, text in enumerate(texts):
            if text:
                done[text] = max(done.get(text, float("-inf")), float(scores[i] + end_lp[i]))
        cont = (scores.unsqueeze(1) + logp).masked_fill(~word_ids, float("-inf"))
        floor = sorted(done.values(), reverse=True)[k - 1] if len(done) >= k else float("-inf")
        flat = cont.flatten()
        n = min(beam, int(torch.isfinite(flat).sum()))
        if n == 0:
            break
        top = torch.topk(flat, n)
        keep = top.values > floor  # a prefix can only lose probability as it grows
        if not bool(keep.any()):
            break
        vals, idx = top.values[keep], top.indices[keep]
        rows, cols = idx // logp.shape[1], idx % logp.shape[1]
        texts = [texts[r] + tokens[c] for r, c in zip(rows.tolist(), cols.tolist())]
        scores = vals
        logits, st = step(cols, select_state(st, rows))
        logp = torch.log_softmax(logits.float(), dim=-1)
    best = sorted(done.items(), key=lambda kv: -kv[1])[:k]
    return [(w, math.exp(lp)) for w, lp in best]

