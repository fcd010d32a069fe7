"""Truncated-BPTT batches read from a token file (``rnnkit.data.token_file.TokenArray``).

The layout is ``rnnkit.data.text.TBPTTBatches``'s without holding the ids in memory: the N ids are
cut into B contiguous streams of L = N // B tokens (stream b = ids[b*L:(b+1)*L]); item i holds
window i of every stream, x = ids[t:t+T], y = ids[t+1:t+1+T], so the recurrent state after item i
is the right initial state for item i + 1. Each item reads B small ranges from the file.

Under DDP (``ranks`` > 1) the B streams are split into ``ranks`` disjoint groups of B // ranks
rows. Every window is yielded as ``ranks`` consecutive items, the one at position ``rank`` real and
the others ``None`` placeholders, so the trainer's round-robin sharding (item i -> rank i % ranks)
hands each process its own streams, window after window, and no process reads another's rows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.token_file import TokenArray
from rnnkit.errors import UserError


def dist_rank() -> tuple[int, int]:
    """(rank, world size) of this process under torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class StreamBatches:
    """Re-iterable (x, y) items of shape (B // ranks, T) int64, T = bptt (the last window shorter).

    tokens: the ids; batch_size: B streams in all; ``rank`` / ``ranks``: this process and the
    number of processes (defaults from the torchrun environment). ``max_tokens`` uses only the
    first ``max_tokens`` ids (e.g. a bounded validation sample).
    """

    tokens: TokenArray
    batch_size: int
    bptt: int
    rank: Optional[int] = None
    ranks: Optional[int] = None
    max_tokens: Optional[int] = None

    def __post_init__(self) -> None:
        env_rank, env_ranks = dist_rank()
        self.rank = env_rank if self.rank is None else self.rank
        self.ranks = env_ranks if self.ranks is None else self.ranks
        n = len(self.tokens) if self.max_tokens is None else min(len(self.tokens), self.max_tokens)
        if self.batch_size < self.ranks:
            raise UserError(f"{self.batch_size} text streams cannot be shared by {self.ranks} processes")
        if not 0 <= self.rank < self.ranks:
            raise UserError(f"rank {self.rank} outside 0..{self.ranks - 1}")
        self.length = n // self.batch_size   # L: tokens per stream
        if self.length < 2:
            raise UserError(f"text too small: each of the {self.batch_size} streams needs at least 2 tokens")
        self.rows = self.batch_size // self.ranks

    def __len__(self) -> int:
        return -(-(self.length - 1) // self.bptt) * self.ranks

    def windows(self) -> int:
        return -(-(self.length - 1) // self.bptt)

    def rows_of(self, rank: int) -> range:
        """Stream indices read by ``rank``."""
        return range(rank * self.rows, (rank + 1) * self.rows)

    def read(self, start: int, T: int, rank: int) -> tuple[Tensor, Tensor]:
        """Window [start, start + T] of ``rank``'s streams -> x, y (rows, T) int64."""
        block = np.stack([self.tokens.read(b * self.length + start, T + 1) for b in self.rows_of(rank)])
        ids = torch.from_numpy(block.astype(np.int64))
        return ids[:, :-1], ids[:, 1:]

    def __iter__(self) -> Iterator[Optional[tuple[Tensor, Tensor]]]:
        for i in range(0, self.length - 1, self.bptt):
            T = min(self.bptt, self.length - 1 - i)
            for r in range(self.ranks):
                yield self.read(i, T, r) if r == self.rank else None


def make_stream_batches(tokens: TokenArray, batch_size: int, bptt: int, what: str = "training text",
                        max_tokens: Optional[int] = None) -> StreamBatches:
    """``StreamBatches`` with ``rnnkit.data.text.tbptt_batches``'s error when the text cannot fill
    one window per stream."""
    n = len(tokens) if max_tokens is None else min(len(tokens), max_tokens)
    need = batch_size * (bptt + 1)
    if n < need:
        raise UserError(
            f"{what} too small: {n} tokens, need at least batch_size * (bptt + 1) = "
            f"{batch_size} * {bptt + 1} = {need}; use more text or a smaller --batch-size / --bptt")
    return StreamBatches(tokens, batch_size, bptt, max_tokens=max_tokens)
