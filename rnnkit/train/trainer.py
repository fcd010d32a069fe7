"""The one training loop every rnnkit task runs on (nanoGPT-style: one readable path).

    cfg = TrainConfig(epochs=20, lr=1e-3, patience=5, out_dir="runs/x")
    history = Trainer(model, cfg, loss_fn).fit(train_batches, val_batches)

``loss_fn(model, batch, state) -> (loss, new_state)``. With ``carry_state=True`` (truncated BPTT) the
returned state is detached and passed with the next batch; it is reset to None at every epoch start
and for validation. ``batch`` is whatever the data yields, with its tensors moved to the device.
Under DDP ``model`` is the DistributedDataParallel wrapper: call it, use :func:`unwrap` for attributes.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.errors import UserError
from rnnkit.train import distributed as D
from rnnkit.train.tensors import batch_rows, detach, to_device
from rnnkit.train.callbacks import EarlyStopping, LRSchedule, ProgressBar, make_loggers
from rnnkit.train.checkpoint import (atomic_write_json, flatten_tree, load_model, load_state_into, load_tensors, make_temp_dir,
                                     read_json, remove_stale_temps, rng_state, save_model, save_tensors, set_rng_state,
                                     unflatten_tree)

LossFn = Callable[[nn.Module, Any, Any], "tuple[Tensor, Any]"]
Data = Union[Iterable[Any], Callable[[int], Iterable[Any]]]
CKPT, CKPT_OLD = "checkpoint", "checkpoint.old"


@dataclass
class TrainConfig:
    """Everything the loop needs; tasks fill it from CLI flags (``--epochs --seed --max-time ...``)."""
    epochs: int = 10
    lr: float = 1e-3
    optimizer: str = "adam"              # "adam" | "adamw"
    weight_decay: float = 0.0
    grad_clip: Optional[float] = 1.0     # max global grad norm; None/0 = off
    schedule: str = "constant"           # "constant" | "cosine" | "plateau" (halve lr on val plateau) | "budget"
    #                                      (constant, then linear to min_lr_ratio over the last half of the
    #                                      steps or of max_time, whichever ends first)
    warmup_steps: int = 0                # linear warmup, any schedule
    min_lr_ratio: float = 0.0            # cosine ends at lr * min_lr_ratio
    patience: Optional[int] = 5          # early stopping on val loss (None/0 = off); best weights restored
    seed: int = 0
    max_time: Optional[float] = None     # seconds of training in this run
    max_steps: Optional[int] = None      # optimizer steps in total (counting resumed ones)
    device: str = "auto"                 # "cpu" | "cuda" | "auto"
    progress: bool = True                # tqdm bar on stderr (rank 0 only)
    carry_state: bool = False            # truncated BPTT across consecutive batches
    out_dir: Optional[str] = None        # checkpoint/ + metrics.csv
    logger: str = "csv"                  # "csv" (metrics.csv) | "tensorboard" (metrics.csv + event files)
    resume: bool = False                 # continue exactly from out_dir/checkpoint
    checkpoint_every: Optional[int] = None  # also checkpoint every N steps (always at epoch end)
    log_every: int = 10                  # steps between loss read-outs (a GPU sync)


@dataclass
class History:
    rows: list[dict] = field(default_factory=list)  # one per epoch: epoch, step, train_loss, val_loss, lr, seconds
    best_val_loss: Optional[float] = None
    best_epoch: Optional[int] = None                # 1-based epoch of the weights returned (None: last)
    epochs: int = 0                                 # completed epochs
    steps: int = 0
    stopped_early: bool = False
    stop_reason: str = "epochs"                     # epochs | early_stopping | max_steps | max_time


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices). Call before building a model for same-seed-same-weights."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class Trainer:
    """Adam/AdamW + clipping + schedule + val/early stopping + TBPTT + checkpoints + DDP.

    ``model_config`` / ``extras`` go into the checkpoint folder's config.json / JSON extras, so a
    checkpoint is also a loadable model folder.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, loss_fn: LossFn,
                 model_config: Optional[dict] = None, extras: Optional[dict] = None) -> None:
        if config.optimizer not in ("adam", "adamw"):
            raise UserError(f"unknown optimizer {config.optimizer!r}; choose adam or adamw")
        if config.resume and not config.out_dir:
            raise UserError("--resume needs an output folder to resume from (out_dir)")
        self.cfg, self.model, self.loss_fn = config, model, loss_fn
        self.model_config, self.extras = dict(model_config or {}), dict(extras or {})
        self.device = D.pick_device(config.device)
        self.dist = D.setup(self.device)
        self.main = self.dist.is_main
        self.out_dir = Path(config.out_dir) if config.out_dir else None
        self.loggers = make_loggers(config.logger, self.out_dir) if self.main and self.out_dir else []
        self.epoch = 0

    def _config_json(self) -> dict:
        cfg = asdict(self.cfg)
        cfg["out_dir"] = None if cfg["out_dir"] is None else str(cfg["out_dir"])
        return cfg

    # ------------------------------------------------------------------ the loop
    def fit(self, train_data: Data, val_data: Optional[Data] = None) -> History:
        cfg = self.cfg
        seed_everything(cfg.seed)
        home = next(self.model.parameters()).device
        self.model.to(self.device)
        self.net = D.wrap(self.model, self.dist, self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.opt = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        n_epoch = self._epoch_len(train_data)
        # The schedule's horizon is the epochs when their length is known (max_steps / max_time are
        # caps, so an interrupted run follows the same lr curve as a full one), else max_steps.
        total = n_epoch * cfg.epochs if n_epoch else cfg.max_steps
        self.sched = LRSchedule(cfg.lr, cfg.schedule, cfg.warmup_steps, total, cfg.min_lr_ratio,
                                plateau_patience=max(1, (cfg.patience or 4) // 2))
        self.stopper = EarlyStopping(cfg.patience)
        self.epoch = self.pos = self.step = self.train_count = 0
        self.train_sum, self.elapsed0 = 0.0, 0.0
        self.rows: list[dict] = []
        if self.main and self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # A killed run leaves its half-written checkpoint/file temps behind; no writer is active now.
            for p in remove_stale_temps(self.out_dir):
                if cfg.progress:
                    print(f"rnnkit: removed {p.name}, left by an interrupted run", file=sys.stderr)
        self.best_state: Optional[dict] = None
        self.state: Any = None
        self._pending: Optional[dict] = None  # RNG + TBPTT state to apply after skipping batches
        if cfg.resume:
            self._load_checkpoint()
        self.t0 = time.monotonic()
        bar = ProgressBar(cfg.progress and self.main, cfg.epochs)
        reason = "epochs"
        try:
            while self.epoch < cfg.epochs and reason == "epochs":
                if cfg.max_steps is not None and self.step >= cfg.max_steps:  # e.g. resumed a finished run
                    reason = "max_steps"
                    break
                reason = self._train_epoch(train_data, n_epoch, bar)
                if reason == "epochs" or (n_epoch and self.pos >= n_epoch):
                    self._end_epoch(val_data, bar)
                    if self.stopper.should_stop:
                        reason = "early_stopping"
                else:  # stopped mid-epoch: checkpoint, then judge the final weights
                    self._save_checkpoint()
                    self._final_partial(val_data, bar)
        finally:
            bar.close()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        for logger in self.loggers:
            logger.log(self.rows)
            logger.close()
        self.model.to(home)
        best = self.stopper.best if math.isfinite(self.stopper.best) else None
        best_epoch = self.stopper.best_epoch + 1 if best is not None and self.stopper.best_epoch >= 0 else None
        return History(rows=list(self.rows), best_val_loss=best, best_epoch=best_epoch, epochs=self.epoch, steps=self.step,
                       stopped_early=reason == "early_stopping", stop_reason=reason)

    def _train_epoch(self, train_data: Data, n_epoch: Optional[int], bar: ProgressBar) -> str:
        """One (possibly resumed) epoch. Returns "epochs" when the data ran out, else the stop reason."""
        cfg, epoch = self.cfg, self.epoch
        batches = iter(self._batches(train_data, epoch, shard=D.shard))
        for _ in range(self.pos):  # resume mid-epoch: replay the same data order up to where we were
            next(batches, None)
        if self._pending is not None:
            set_rng_state(self._pending["rng"])
            self.state, self._pending = self._pending["carry"], None
        else:
            self.state = None
        bar.start_epoch(epoch, n_epoch, initial=self.pos)
        self.net.train()
        self.window, self.window_n = torch.zeros((), device=self.device), 0
        for batch in batches:
            progress = (epoch + (self.pos / n_epoch if n_epoch else 0)) / max(1, cfg.epochs)
            used = (time.monotonic() - self.t0) / cfg.max_time if cfg.max_time else None
            lr = self.sched.lr(self.step, progress, used)
            for g in self.opt.param_groups:
                g["lr"] = lr
            loss, new_state = self.loss_fn(self.net, to_device(batch, self.device), self.state)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.state = detach(new_state) if cfg.carry_state else None
            self.step, self.pos = self.step + 1, self.pos + 1
            self.window += loss.detach()
            self.window_n += 1
            if self.window_n >= cfg.log_every:
                mean = self._flush()
                bar.update(1, loss=mean, lr=lr)
            else:
                bar.update(1)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self._save_checkpoint()
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                self._flush()
                return "max_steps"
            if cfg.max_time is not None and D.any_rank(time.monotonic() - self.t0 > cfg.max_time, self.dist, self.device):
                self._flush()
                return "max_time"
        self._flush()
        if self.pos == 0:
            raise UserError(f"the training data gave no batches in epoch {epoch + 1}"
                            + (f" (fewer batches than the {self.dist.world_size} processes)" if self.dist.enabled else ""))
        return "epochs"

    def _flush(self) -> float:
        """Fold the steps since the last read-out into the epoch's train loss (one GPU sync)."""
        if self.window_n == 0:
            return math.nan
        total = self.window.item()
        mean = total / self.window_n
        if not math.isfinite(mean):
            raise UserError(f"training diverged: loss is {mean} at step {self.step} (epoch {self.epoch + 1}); "
                            "lower the learning rate or check the data for NaN/inf")
        self.train_sum, self.train_count = self.train_sum + total, self.train_count + self.window_n
        self.window.zero_()
        self.window_n = 0
        return mean

    def _end_epoch(self, val_data: Optional[Data], bar: ProgressBar) -> None:
        val = self.evaluate(val_data) if val_data is not None else None
        if val is not None:
            if self.stopper.update(val, self.epoch):
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.sched.on_val(val)
        row = self._row(val)
        self.rows.append(row)
        bar.end_epoch(row)
        self.epoch, self.pos, self.train_sum, self.train_count, self.state = self.epoch + 1, 0, 0.0, 0, None
        for logger in self.loggers:
            logger.log(self.rows)
        self._save_checkpoint()

    def _final_partial(self, val_data: Optional[Data], bar: ProgressBar) -> None:
        """Stopped mid-epoch (max_steps / max_time): keep the final weights if they beat the best."""
        val = self.evaluate(val_data) if val_data is not None else None
        if val is not None and val < self.stopper.best:
            # keep the current weights
            self.stopper.best, self.stopper.best_epoch, self.best_state = val, self.epoch, None
        row = self._row(val)
        self.rows.append(row)
        bar.end_epoch(row)

    def _row(self, val: Optional[float]) -> dict:
        return {"epoch": self.epoch + 1, "step": self.step,
                "train_loss": self.train_sum / self.train_count if self.train_count else None,
                "val_loss": val, "lr": self.opt.param_groups[0]["lr"],
                "seconds": round(self.elapsed0 + time.monotonic() - self.t0, 3)}

    @torch.no_grad()
    def evaluate(self, data: Data) -> float:
        """Mean loss per example over the batches of ``data`` (each batch's mean weighted by its rows,
        so batches of different sizes, e.g. long sequences batched alone, count as their examples;
        eval mode, no grad, averaged over DDP ranks)."""
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        total, count, state = torch.zeros((), dtype=torch.float64, device=device), 0, None
        # fork_rng: iterating a DataLoader draws from the global RNG; training must not notice.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for batch in self._batches(data, self.epoch, shard=D.shard_all, reseed=False):
                loss, state = self.loss_fn(self.model, to_device(batch, device), state)
                state = state if self.cfg.carry_state else None
                rows = batch_rows(batch)
                total += loss.detach().double() * rows
                count += rows
        self.model.train(was_training)
        total_all, count_all = D.all_sum([total.item(), float(count)], self.dist, device)
        if count_all == 0:
            raise UserError("the validation data gave no batches")
        return total_all / count_all

    # ------------------------------------------------------------------ data
    def _batches(self, data: Data, epoch: int, shard, reseed: bool = True) -> Iterable[Any]:
        """This epoch's batches for this rank, in an order fixed by (seed, epoch)."""
        if reseed:
            seed = self.cfg.seed * 1_000_003 + epoch
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)  # a shuffling DataLoader draws its order from here on iter()
        it = data(epoch) if callable(data) else data
        sampler = getattr(it, "sampler", None)
        if isinstance(sampler, torch.utils.data.DistributedSampler):
            sampler.set_epoch(epoch)  # already sharded by the user's sampler
            return it
        return shard(it, self.dist)

    def _epoch_len(self, data: Data) -> Optional[int]:
        if callable(data):
            return None
        try:
            n = len(data)  # type: ignore[arg-type]
        except TypeError:
            return None
        if isinstance(getattr(data, "sampler", None), torch.utils.data.DistributedSampler):
            return n
        return n // self.dist.world_size

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self) -> None:
        """out_dir/checkpoint/: model folder + trainer_state.{safetensors,json}, swapped in whole."""
        if not (self.main and self.out_dir):
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if getattr(self, "window_n", 0):
            self._flush()
        tensors: dict[str, Tensor] = {}
        meta = {
            "step": self.step, "epoch": self.epoch, "pos": self.pos, "rows": self.rows,
            "train_sum": self.train_sum, "train_count": self.train_count,
            "elapsed": self.elapsed0 + time.monotonic() - self.t0,
            "lr": self.opt.param_groups[0]["lr"], "world_size": self.dist.world_size,
            "early_stopping": self.stopper.state_dict(), "schedule": self.sched.state_dict(),
            "optimizer": flatten_tree(self.opt.state_dict(), "opt", tensors),
            "carry": flatten_tree(self.state, "carry", tensors),
            "rng": flatten_tree(rng_state(), "rng", tensors),
            "best": flatten_tree(self.best_state, "best", tensors),
            "train_config": self._config_json(),
        }
        tmp = make_temp_dir(self.out_dir / CKPT)
        try:
            cfg = {**self.model_config, "train_config": self._config_json()}
            save_model(tmp, self.model, cfg, self.extras)
            save_tensors(tmp / "trainer_state.safetensors", tensors)
            atomic_write_json(tmp / "trainer_state.json", meta)  # last: marks a complete checkpoint
            ckpt, old = self.out_dir / CKPT, self.out_dir / CKPT_OLD
            shutil.rmtree(old, ignore_errors=True)
            if ckpt.exists():
                os.replace(ckpt, old)
            os.replace(tmp, ckpt)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _load_checkpoint(self) -> None:
        assert self.out_dir is not None
        ckpt = next((self.out_dir / n for n in (CKPT, CKPT_OLD)
                     if (self.out_dir / n / "trainer_state.json").is_file()), None)
        if ckpt is None:
            if self.main and self.cfg.progress:
                print(f"rnnkit: no checkpoint in {self.out_dir}, starting from scratch", file=sys.stderr)
            return
        _, weights, _ = load_model(ckpt)
        load_state_into(self.model, weights, where=str(ckpt / "model.safetensors"))
        meta = read_json(ckpt / "trainer_state.json")
        tensors = load_tensors(ckpt / "trainer_state.safetensors")
        try:
            self.opt.load_state_dict(unflatten_tree(meta["optimizer"], tensors))
            self.step, self.epoch, self.pos = int(meta["step"]), int(meta["epoch"]), int(meta["pos"])
            self.rows, self.elapsed0 = list(meta["rows"]), float(meta["elapsed"])
            self.train_sum, self.train_count = float(meta["train_sum"]), int(meta["train_count"])
            self.stopper.load_state_dict(meta["early_stopping"])
            self.sched.load_state_dict(meta["schedule"])
            best = unflatten_tree(meta["best"], tensors)
            self.best_state = None if best is None else to_device(best, self.device)
            self._pending = {"rng": unflatten_tree(meta["rng"], tensors),
                             "carry": to_device(unflatten_tree(meta["carry"], tensors), self.device)}
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{ckpt}: trainer state does not fit this run ({exc})") from None
        if int(meta.get("world_size", 1)) != self.dist.world_size and self.pos:
            raise UserError(f"{ckpt}: saved mid-epoch with {meta.get('world_size')} processes; "
                            f"resume with the same number (now {self.dist.world_size})")
        if self.pos == 0:
            self._pending = None  # epoch boundary: the epoch reseeds everything itself


