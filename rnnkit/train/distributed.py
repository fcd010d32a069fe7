"""Data parallel helpers for runs launched with ``torchrun --nproc-per-node N`` (env WORLD_SIZE > 1).

One process per device; each process sees every ``world_size``-th batch, gradients are averaged by
``DistributedDataParallel``, and only rank 0 writes files or draws progress bars.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_with_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group if launched by torchrun (gloo on CPU, nccl on CUDA); else single process."""
    if not launched_with_torchrun():
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str) -> torch.device:
    """``"auto"`` -> cuda if available; under torchrun each process takes ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from rnnkit.errors import UserError

        raise UserError("--device cuda: no CUDA device is available (use --device cpu)")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if launched_with_torchrun() else 0)
        torch.cuda.set_device(device)
    return device


def shard(batches: Iterable[Any], info: DistInfo) -> Iterator[Any]:
    """Yield batch ``i`` when ``i % world_size == rank``. A trailing incomplete group is dropped so
    every rank takes the same number of steps (an extra step on one rank would hang DDP)."""
    if not info.enabled:
        yield from batches
        return
    group = []
    for b in batches:
        group.append(b)
        if len(group) == info.world_size:
            yield group[info.rank]
            group = []


def shard_all(batches: Iterable[Any], info: DistInfo) -> Iterator[Any]:
    """Like :func:`shard` but keeps the tail (for evaluation, where ranks need not stay in step)."""
    for i, b in enumerate(batches):
        if i % info.world_size == info.rank:
            yield b


def all_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few floats over ranks (float64 for exact averages)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True if ``flag`` is true on any rank (so e.g. ``max_time`` stops every rank at the same step)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when running multi-process (else the model itself)."""
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
