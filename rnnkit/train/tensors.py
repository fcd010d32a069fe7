"""Helpers for the nested tensors a batch or a recurrent state is made of (tuples, namedtuples, dicts)."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor


def map_tensors(fn: Callable[[Tensor], Tensor], tree: Any) -> Any:
    """Apply ``fn`` to every tensor inside nested tuples / namedtuples / lists / dicts."""
    if isinstance(tree, Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: map_tensors(fn, v) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # namedtuple
        return type(tree)(*(map_tensors(fn, v) for v in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(map_tensors(fn, v) for v in tree)
    return tree


def to_device(tree: Any, device: torch.device) -> Any:
    """Move the tensors of a batch (or state) to ``device``."""
    return map_tensors(lambda t: t.to(device, non_blocking=True), tree)


def detach(tree: Any) -> Any:
    """Cut the graph behind a (nested) recurrent state: truncated BPTT."""
    return map_tensors(Tensor.detach, tree)


def batch_rows(tree: Any) -> int:
    """Examples in a batch: the first dimension of its first tensor (1 if it holds none)."""
    rows: list[int] = []
    map_tensors(lambda t: rows.append(int(t.shape[0]) if t.dim() else 1) or t, tree)
    return rows[0] if rows else 1
