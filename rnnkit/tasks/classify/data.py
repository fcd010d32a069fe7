"""Turning ``SequenceData`` into model tensors: token vocabulary, feature scaler, batches.

Both encoders are fitted on the training split only and saved with the model as JSON.
Both kinds are kept ``Ragged`` (every sequence end to end, so memory follows the steps rather than n
times the longest sequence) and padded per batch: tokens to ``(B, T) int64`` with 0 = padding,
1 = unknown; numeric to ``(B, T, F) float32`` normalised per feature (mean/std over real steps),
padding 0.
"""
from __future__ import annotations

import math
import sys

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.ragged import offsets_of, pool_long
from rnnkit.data.sequences import SequenceData
from rnnkit.data.vocab import PAD, UNK, Vocab, tokenize
from rnnkit.errors import UserError

def build_vocab(texts: list[str], level: str, lowercase: bool) -> Vocab:
    """The vocabulary of a classifier's training texts: ``<pad>`` (id 0), ``<unk>`` (id 1), then tokens."""
    tokens = (t for text in texts for t in tokenize(text.strip(), level, lowercase, line_ends=False))
    return Vocab.build(tokens, level, lowercase=lowercase, specials=(PAD, UNK))


@dataclass
class Ragged:
    """Sequences stored end to end: ``values (total, ...)`` (token ids (total,) int64, or steps
    (total, F) float32); sequence i is ``values[offsets[i]:offsets[i + 1]]``, ``offsets (n + 1,) int64``.
    One 10,000-step sequence among 100,000 short ones costs its own steps, not 100,000 x 10,000."""

    values: Tensor
    offsets: Tensor

    @classmethod
    def from_lists(cls, seqs: list[list[int]]) -> "Ragged":
        """Token id lists -> int64 ragged ids."""
        offsets = offsets_of(np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs)))
        ids = np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=int(offsets[-1]))
        return cls(torch.from_numpy(ids), torch.from_numpy(offsets))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def padded(self, idx: Tensor, steps: int) -> Tensor:
        """Sequences ``idx`` (B,), zero-padded (and cut) to ``steps``: (B, steps, ...)."""
        start = self.offsets[idx]
        length = self.offsets[idx + 1] - start
        t = torch.arange(steps)
        pos = (start[:, None] + t[None, :]).clamp(max=max(len(self.values) - 1, 0))
        out = self.values[pos]
        keep = (t[None, :] < length[:, None]).reshape(*pos.shape, *([1] * (out.dim() - 2)))
        return torch.where(keep, out, torch.zeros((), dtype=out.dtype))


def encode_texts(vocab: Vocab, texts: list[str], max_len: Optional[int]) -> tuple[Ragged, np.ndarray]:
    """-> token ids (ragged), lengths (n,) int64. Empty sequences become [<unk>]."""
    unk = vocab.unk_id
    seqs = [vocab.encode(tokenize(s.strip(), vocab.level, vocab.lowercase, line_ends=False)) or [unk] for s in texts]
    if max_len:
        seqs = [s[:max_len] for s in seqs]
    ragged = Ragged.from_lists(seqs)
    return ragged, np.diff(ragged.offsets.numpy())


@dataclass
class FeatureScaler:
    """Per-feature standardisation fitted on training steps (padding excluded)."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, steps: np.ndarray) -> "FeatureScaler":
        """steps: (total_steps, F), every real step of the training sequences (no padding)."""
        std = steps.std(0)
        # A constant feature carries no information; dividing by 1 keeps it finite.
        std = np.where(std > 1e-8, std, 1.0)
        return cls(mean=steps.mean(0).astype(float).tolist(), std=std.astype(float).tolist())

    def transform(self, steps: np.ndarray) -> np.ndarray:
        """steps: (total_steps, F) -> standardised, float32."""
        if steps.shape[1] != len(self.mean):
            raise UserError(f"the model expects {len(self.mean)} features per step, the data has {steps.shape[1]}")
        return ((steps - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)

    def to_json(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, d: dict, where: str = "scaler.json") -> "FeatureScaler":
        """Inverse of ``to_json``; UserError unless mean/std are equal-length lists of finite numbers, std > 0."""
        mean, std = (d.get("mean"), d.get("std")) if isinstance(d, dict) else (None, None)
        ok = isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) > 0 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in mean + std)
        if not ok or min(std) <= 0:
            raise UserError(f"{where}: expected {{\"mean\": [...], \"std\": [...]}} with finite numbers and std > 0")
        return cls(mean=[float(v) for v in mean], std=[float(v) for v in std])


def warn_truncated(source: str, lengths: np.ndarray, max_len: Optional[int]) -> None:
    """Truncation is never silent: one line with how many sequences lose steps."""
    if not max_len:
        return
    cut = int((np.asarray(lengths) > max_len).sum())
    if cut:
        print(f"rnnkit: warning: {source}: {cut} of {len(lengths)} sequences are longer than max_len={max_len} "
              f"(longest {int(np.max(lengths))}) and were truncated", file=sys.stderr)


def encode_inputs(data: SequenceData, vocab: Optional[Vocab], scaler: Optional[FeatureScaler],
                  max_len: Optional[int], pool_len: Optional[int] = None) -> tuple[Ragged, Tensor]:
    """-> x (ragged token ids, or ragged standardised steps (total, F) float32), lengths (n,) int64.
    Numeric series longer than ``pool_len`` are averaged down to it (``ragged.pool_long``)."""
    if data.kind == "tokens":
        if vocab is None:
            raise UserError(f"{data.source}: this model was trained on numeric series, but the data is text")
        if max_len:
            warn_truncated(data.source, np.array([len(tokenize(s.strip(), vocab.level, vocab.lowercase, line_ends=False))
                                                  for s in data.texts]), max_len)
        ids, lengths = encode_texts(vocab, data.texts, max_len)
        return ids, torch.from_numpy(lengths)
    if scaler is None:
        raise UserError(f"{data.source}: this model was trained on text/token sequences, but the data is numeric")
    if max_len and int(data.lengths.max()) > max_len:
        warn_truncated(data.source, data.lengths, max_len)
        data = data.subset(range(len(data)), max_len=max_len)
    steps, offsets = pool_long(scaler.transform(data.steps), data.offsets, pool_len or 0)
    x = Ragged(torch.from_numpy(steps), torch.from_numpy(offsets))
    return x, torch.from_numpy(np.diff(offsets).astype(np.int64))


def padded_batches(x: Ragged, lengths: Tensor, y: Optional[Tensor], batch_size: int,
                   shuffle: bool, seed: int = 0, order: Optional[Tensor] = None
                   ) -> Callable[[int], list[tuple[Tensor, ...]]]:
    """A callable ``epoch -> [(x, lengths, y), ...]``; each batch is padded (or cut) to its longest sequence.

    Shuffling is seeded by ``seed + epoch`` so a resumed run sees the same batches. ``order`` (n,): the
    sequences in this order instead (no shuffle), e.g. by length so that inference pads little.
    """

    def epoch_batches(epoch: int = 0) -> list[tuple[Tensor, ...]]:
        n = len(x)
        if order is not None:
            seq = order
        elif shuffle:
            seq = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        else:
            seq = torch.arange(n)
        out = []
        for idx in (_capped(seq, lengths, batch_size) if order is not None else seq.split(batch_size)):
            L = lengths[idx]
            T = int(L.max())
            xb = x.padded(idx, T)
            out.append((xb, L, y[idx]) if y is not None else (xb, L))
        return out

    return epoch_batches


def _capped(seq: Tensor, lengths: Tensor, batch_size: int) -> list[Tensor]:
    """``seq`` (sorted by length) cut into batches of at most ``batch_size`` sequences and at most
    ``batch_size`` x the 90th-percentile length padded steps: a 60,000-step recording among 40-step
    ones goes in a batch of its own instead of padding 255 others to its length."""
    cap = batch_size * max(1, int(np.quantile(lengths.numpy(), 0.9)))  # torch.quantile stops at 16M values
    out, start, longest = [], 0, 0
    for i, T in enumerate(lengths[seq].tolist()):
        if i > start and (i - start >= batch_size or (i - start + 1) * max(longest, T) > cap):
            out.append(seq[start:i])
            start, longest = i, 0
        longest = max(longest, T)
    out.append(seq[start:])
    return out


def class_weights(y: np.ndarray, n_classes: int, mode: Optional[str]) -> Optional[Tensor]:
    """'balanced': n / (C * count_c) (sklearn's formula), so every class weighs the same in the loss."""
    if mode in (None, "none"):
        return None
    if mode != "balanced":
        raise UserError(f"class weight must be 'none' or 'balanced', got {mode!r}")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = len(y) / (n_classes * np.maximum(counts, 1.0))
    return torch.tensor(w, dtype=torch.float32)
