"""Sequence classification: names by language, symbol strings, multivariate sensor series.

>>> clf = SequenceClassifier(cell="gru", hidden_size=64, pooling="attention").fit(names, labels)
>>> clf.predict(["Kowalski"]), clf.predict_proba(["Kowalski"])   # labels, (n, n_classes)
>>> clf.evaluate(test_names, test_labels)["macro_f1"]
>>> clf.save("model/"); SequenceClassifier.load("model/")

Inputs (``X``): a list of strings (tokenised per ``level``), an array ``(n, time, features)``
with optional ``lengths (n,)``, a list of ``(time, features)`` arrays, or a ``SequenceData``.
Training: the shared ``Trainer`` (early stopping on a stratified validation split, best
weights restored), cross-entropy with optional balanced class weights.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.data.sequences import SequenceData, check_labels, from_arrays, read_sequences, stratified_split
from rnnkit.errors import UserError
from rnnkit.metrics.classify import classification_report
from rnnkit.data.vocab import Vocab
from rnnkit.tasks.classify.data import FeatureScaler, build_vocab, class_weights, encode_inputs, padded_batches
from rnnkit.tasks.classify.ensemble import EnsembleNet
from rnnkit.options import from_dict, opt, shared_fields
from rnnkit.tasks.autoconfig import DEFAULT_BUDGET_S
from rnnkit.tasks.base import RunOptions, Task
from rnnkit.tasks.classify.augment import Augment
from rnnkit.tasks.classify.network import POOLINGS, ClassifierNet, ClassifierNetConfig, check_net_config
from rnnkit.tasks.classify.probe import clock
from rnnkit.tasks.classify.resolve import resolve_or_resume
from rnnkit.train.distributed import pick_device

END_SHARE = 0.93  # planned runs add ensemble members while they end within this share of the budget
WALL_SLACK = 3.0  # planned runs: a member stops at 3x its wall-clock share of the budget (load safety net)

@dataclass(kw_only=True)
class ClassifierConfig(RunOptions):
    """Hyper-parameters of ``SequenceClassifier`` (architecture, input handling, training).

    ``None`` = automatic: chosen at ``fit`` from the training data and the time budget
    (``rnnkit.tasks.autoconfig.classify_plan``; the rule is in docs/decisions.md). Any value given
    overrides that choice. After ``fit``, ``config`` holds the values actually used.
    """

    cell: str = opt("gru", "recurrent cell: lstm, gru, rnn, mingru, ... or i2h (the tutorial's i2h/i2o cell)")
    hidden_size: Optional[int] = opt(None, "hidden units per direction (default: auto)", min=1, max=8192)
    num_layers: int = opt(1, "stacked recurrent layers", min=1, max=64)
    bidirectional: Optional[bool] = opt(None, "read the sequence in both directions (default: auto)")
    pooling: Optional[str] = opt(None, "pooling over time, masked by length (default: auto)", choices=POOLINGS)
    embed_size: int = opt(32, "token embedding size (text inputs)", min=1, max=8192)
    dropout: Optional[float] = opt(None, "dropout (default: auto)", min=0.0, max=0.99)
    level: str = opt("char", "tokens of text inputs", choices=("char", "word"))
    lowercase: bool = opt(False, "lower-case text before tokenising")
    max_len: Optional[int] = opt(None, "truncate longer sequences, with a warning that counts them (default: never; "
                                 "long numeric series are shortened by a strided conv front end instead)",
                                 min=1, max=10_000_000)
    class_weight: Optional[str] = opt(None, "'balanced' weighs classes inversely to their frequency",
                                      choices=("balanced",))
    label_smoothing: Optional[float] = opt(None, "label smoothing of the training loss (default: auto)", min=0.0,
                                           max=0.99)
    # Gaussian noise of this std (in scaler units, i.e. per-feature standard deviations) added to every
    # training batch of numeric inputs: a cheap augmentation for small data.
    input_noise: Optional[float] = opt(None, "numeric inputs: training noise std in per-feature standard deviations "
                                       "(default: auto)", min=0.0, max=100.0)
    augment: Optional[bool] = opt(None, "numeric inputs: random amplitude scaling and crops of training batches "
                                  "(default: auto, off)")
    # Logit-adjusted loss (Menon et al. 2021): the losses see logits + loss_adjust * log prior(class),
    # so the network's own logits come out balanced towards rare classes.
    loss_adjust: float = opt(0.0, "logit-adjusted training loss: add this times log class prior to the logits",
                             min=-100.0, max=100.0)
    conv_kernel: Optional[int] = opt(None, "width of a conv front end over the inputs (odd; 0 = none; default: auto)",
                                     min=0, max=1001)
    conv_stride: Optional[int] = opt(None, "numeric inputs: the conv front end shortens the series by this factor "
                                     "(default: auto)", min=1, max=10_000)
    conv_channels: Optional[int] = opt(None, "conv front-end output channels (0 = as many as inputs; default: auto)",
                                       min=0, max=8192)
    conv_layers: Optional[int] = opt(None, "conv front-end layers (default: auto)", min=1, max=64)
    pool_len: Optional[int] = opt(None, "numeric inputs: series longer than this are averaged over windows of "
                                  "consecutive steps until they fit, here and at prediction (0 = never; default: "
                                  "auto, only when a few are far longer than the rest)", min=0, max=10_000_000)
    series_norm: Optional[bool] = opt(None, "numeric inputs: also feed each series standardised by its own mean "
                                      "and std (default: auto)")
    # "auto": after training, pick tau in logits - tau * log(prior) by validation macro-F1 and fold it
    # into the head's bias, so save/load/ONNX all give the adjusted model. Needs validation data.
    logit_adjust: Optional[str] = opt(None, "'auto': favour rare classes by the amount that maximises "
                                      "validation macro-F1", choices=("auto",))
    logit_adjust_tau: float = opt(0.0, "the fitted tau (written by fit)", min=-100.0, max=100.0, flag=False)
    # K members (seeds seed..seed+K-1), probabilities averaged (ensemble.EnsembleNet: one network, one
    # model folder, one ONNX graph); with a budget they share it.
    ensemble: Optional[int] = opt(None, "train K networks with seeds seed..seed+K-1 and average their "
                                  "probabilities (default: auto, as many as the budget allows for small data)",
                                  min=1, max=256)
    val_fraction: Optional[float] = opt(None, "stratified validation share for early stopping (default: 0.1 when "
                                        "that is >= 100 examples, else 0)", min=0.0, max=0.9)
    batch_size: Optional[int] = opt(None, "sequences per batch (default: auto)", min=1, max=1_000_000)
    epochs: Optional[int] = opt(None, "training length in passes over the data (default: auto)", min=1,
                                max=1_000_000)
    max_steps: Optional[int] = opt(None, "training length in optimizer steps per network (default: auto)", min=1,
                                   max=100_000_000)
    lr: Optional[float] = opt(None, "learning rate (default: auto, 3e-3)", min=0.0, max=10.0)
    weight_decay: float = opt(0.0, "weight decay (AdamW)", min=0.0, max=10.0)
    optimizer: str = opt("adam", "optimizer", choices=("adam", "adamw"))
    grad_clip: float = opt(1.0, "max global gradient norm (0 = off)", min=0.0, max=1e6)
    schedule: Optional[str] = opt(None, "learning-rate schedule (default: auto)",
                                  choices=("constant", "cosine", "plateau"))
    patience: Optional[int] = opt(None, "early stopping: epochs without validation improvement (0 = off; "
                                  "default: auto)", min=0, max=1_000_000)
    tune: bool = opt(False, "spend part of --max-time on a random search scored by k-fold CV on the training data")


class SequenceClassifier(Task):
    """An RNN sequence classifier with the task interface: fit, predict, evaluate, save, load."""

    task = "classify"
    Config = ClassifierConfig
    onnx_inputs = ("x", "lengths")

    def __init__(self, config: Optional[ClassifierConfig] = None, **overrides):
        super().__init__(config, **overrides)
        self.requested = self.config  # what the user asked for (None = auto); fit() resolves a copy
        self.plan = None  # the autoconfig.ClassifyPlan of the last fit
        self.labels: list[str] = []
        self.vocab: Optional[Vocab] = None
        self.scaler: Optional[FeatureScaler] = None
        self.histories: list = []  # every member's History (self.history: the last one)

    # ------------------------------------------------------------------ data
    @staticmethod
    def _data(X, y=None, lengths=None) -> SequenceData:
        if isinstance(X, (str, Path)):
            return read_sequences(X, labelled=y is not None)
        return from_arrays(X, y, lengths)

    def _encode(self, data: SequenceData):
        return encode_inputs(data, self.vocab, self.scaler, self.config.max_len, self.config.pool_len)

    def _label_ids(self, data: SequenceData) -> torch.Tensor:
        index = {c: i for i, c in enumerate(self.labels)}
        unknown = sorted({l for l in data.labels if l not in index})
        if unknown:
            raise UserError(f"{data.source}: label(s) {unknown[:5]} were not seen in training (classes: {', '.join(self.labels[:10])})")
        return torch.tensor([index[l] for l in data.labels], dtype=torch.long)

    # ------------------------------------------------------------------ training
    def fit(self, X, y=None, lengths=None, val: Optional[tuple] = None,
            out_dir: Optional[Union[str, Path]] = None, resume: bool = False) -> "SequenceClassifier":
        """Train on ``X`` with labels ``y``; ``val = (X_val, y_val[, lengths_val])`` or a stratified split.

        All input checks run before anything is trained or written.
        """
        t_start = time.monotonic()  # --max-time counts from here (planning, tuning, all members)
        c_start = clock(pick_device(self.requested.device))  # ... and in the planning clock
        data = self._data(X, y, lengths)
        self.labels = check_labels(data.labels, data.source)
        source = self.init_source()
        if source is not None:  # fine-tuning: the saved classes, vocabulary/scaler and network settings
            new = sorted(set(self.labels) - set(source.labels))
            if new:
                raise UserError(f"--init-from {self.requested.init_from}: label(s) {new[:5]} are not classes of that model")
            self.labels = source.labels
        val_data = None
        if val is not None:
            val_data = self._data(*val)
            if val_data.labels is None:
                raise UserError("validation data needs labels")
        cfg = self.config = resolve_or_resume(self, data, val_data, out_dir, resume)
        if val_data is not None:
            train = data
        elif cfg.val_fraction > 0:
            tr, va = stratified_split(data.labels, cfg.val_fraction, cfg.seed)
            train, val_data = data.subset(tr), data.subset(va)
        else:
            train = data
        if cfg.logit_adjust == "auto" and (val_data is None or not len(val_data)):
            raise UserError("logit_adjust='auto' needs validation data (val=... or val_fraction > 0)")
        if source is not None:
            self.vocab, self.scaler = source.vocab, source.scaler
        elif train.kind == "tokens":
            self.vocab, self.scaler = build_vocab(train.texts, cfg.level, cfg.lowercase), None
        else:
            self.vocab, self.scaler = None, FeatureScaler.fit(train.steps)
        net_cfg = source.network.cfg if source is not None else ClassifierNetConfig(
            **shared_fields(cfg, ClassifierNetConfig), n_classes=len(self.labels), input_kind=train.kind,
            vocab_size=len(self.vocab) if self.vocab else 0,
            n_features=train.n_features)
        if cfg.input_noise > 0 and train.kind != "numeric":
            raise UserError("input_noise applies to numeric inputs only (token inputs have no scale to perturb)")
        try:
            check_net_config(net_cfg)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        x, L = self._encode(train)
        y_ids = self._label_ids(train)
        weights = class_weights(y_ids.numpy(), len(self.labels), cfg.class_weight)
        shift = None
        if cfg.loss_adjust:
            counts = np.bincount(y_ids.numpy(), minlength=len(self.labels)).clip(min=1)
            shift = torch.as_tensor(cfg.loss_adjust * np.log(counts / counts.sum()), dtype=torch.float32)
        val_batches = None
        if val_data is not None and len(val_data):
            xv, Lv = self._encode(val_data)
            val_batches = padded_batches(xv, Lv, self._label_ids(val_data), 256, shuffle=False,
                                         order=torch.argsort(Lv, stable=True))(0)  # long ones in batches of their own

        members = []
        self.histories = []
        budget = self.requested.max_time
        planned = not (self.requested.epochs or self.requested.max_steps)  # length chosen from the budget
        device = pick_device(cfg.device)
        for k in range(cfg.ensemble):
            if k and planned and self.requested.ensemble is None:
                # The probe misses per-step costs of the real loop (batching, logging, Python), so the
                # members actually trained tell the cost of one more; stop adding members when it
                # would overrun the budget (planning budget: 120 s when none was given).
                spent = clock(device) - c_start
                if spent + spent_member > END_SHARE * (DEFAULT_BUDGET_S if budget is None else float(budget)):
                    print(f"rnnkit: {k} of {cfg.ensemble} ensemble members fit the budget "
                          f"({spent:.0f} s spent, {spent_member:.0f} s per member)", file=sys.stderr)
                    break
            m_start = clock(device)
            # Member k = the single model of seed cfg.seed + k (own init, batch order, dropout);
            # with an out_dir each member checkpoints (and resumes) in its own sub-folder.
            sub = None if out_dir is None else (Path(out_dir) if cfg.ensemble == 1 else Path(out_dir) / f"member-{k}")
            if cfg.ensemble > 1 and cfg.progress:
                print(f"rnnkit: ensemble member {k + 1}/{cfg.ensemble} (seed {cfg.seed + k})", file=sys.stderr)
            batches = padded_batches(x, L, y_ids, cfg.batch_size, shuffle=True, seed=cfg.seed + k)
            # --max-time is the budget of the whole fit. A planned length was sized in CPU seconds
            # (probe.step_seconds), so the same command trains the same steps whatever the load; the wall
            # clock only stops a member past WALL_SLACK x its share (a heavily loaded machine). A length
            # the user fixed is cut at the budget itself, shared among the members still to train.
            if budget is None:
                left = None
            elif planned:
                left = WALL_SLACK * float(budget) / cfg.ensemble
            else:
                left = max(1.0, (t_start + float(budget) - time.monotonic()) / (cfg.ensemble - k))
            net, hist = self._train_member(net_cfg, cfg.seed + k, batches, val_batches, weights, shift, sub, resume,
                                           lambda net, k=k: self.start_from(net, source, member=k),
                                           max_time=left, n_train=len(x))
            members.append(net)
            self.histories.append(hist)
            spent_member = clock(device) - m_start
        self.history = self.histories[-1]
        if len(members) != cfg.ensemble:
            cfg = self.config = replace(cfg, ensemble=len(members))
        self.network = members[0] if cfg.ensemble == 1 else EnsembleNet.from_members(members)
        self.network.eval()
        if cfg.logit_adjust == "auto" and val_data is not None and len(val_data):
            self._fit_logit_adjustment(y_ids.numpy(), val_data)
        return self

    def _train_member(self, net_cfg: ClassifierNetConfig, seed: int, train_batches, val_batches,
                      weights: Optional[torch.Tensor], shift: Optional[torch.Tensor], out_dir: Optional[Path],
                      resume: bool, init=lambda net: net, max_time: Optional[float] = None, n_train: int = 0):
        """One network through the shared Trainer -> (trained ClassifierNet in eval mode, History)."""
        from rnnkit.train import TrainConfig, Trainer, unwrap

        cfg = self.config
        torch.manual_seed(seed)  # same initial weights for the same seed
        net = init(ClassifierNet(net_cfg))
        augment = Augment(noise=cfg.input_noise, scale=0.1 if cfg.augment else 0.0, crop=0.1 if cfg.augment else 0.0)

        def loss_fn(model, batch, state):
            xb, Lb, yb = batch
            if model.training and augment.active:  # fresh noise/scales/crops each step; padding stays zero
                xb, Lb = augment(xb, Lb)
            logits = model(xb, Lb)
            if shift is not None:  # logit-adjusted loss: the prior is added back inside the loss only
                logits = logits + shift.to(logits.device)
            if not model.training:
                # Validation (early stopping) on the plain NLL: class weights and smoothing shape
                # the training signal only, and a weighted val loss is dominated by a few rare names.
                return F.cross_entropy(logits, yb), None
            w = weights.to(logits.device) if weights is not None else None
            return F.cross_entropy(logits, yb, weight=w, label_smoothing=cfg.label_smoothing), None

        # Training length: epochs when given, else max_steps (epochs = enough passes to reach it, so
        # the cosine horizon is the step count rounded up to whole epochs).
        per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
        epochs = cfg.epochs if cfg.epochs else max(1, math.ceil(cfg.max_steps / per_epoch))
        tcfg = TrainConfig(epochs=epochs, max_steps=None if cfg.epochs else cfg.max_steps, lr=cfg.lr,
                           optimizer=cfg.optimizer, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
                           schedule=cfg.schedule, patience=cfg.patience, seed=seed, max_time=max_time,
                           device=cfg.device, progress=cfg.progress, logger=cfg.logger,
                           out_dir=str(out_dir) if out_dir is not None else None, resume=resume)
        trainer = Trainer(net, tcfg, loss_fn)
        history = trainer.fit(train_batches, val_batches)
        net = unwrap(trainer.model)  # the plain module, also after DDP
        return net.eval(), history

    @torch.no_grad()
    def _fit_logit_adjustment(self, y_train: np.ndarray, val_data: SequenceData) -> None:
        """Choose tau on validation macro-F1 and fold ``-tau * log prior`` into the head bias."""
        from rnnkit.metrics.classify import macro_f1

        n = len(self.labels)
        log_prior = np.log(np.bincount(y_train, minlength=n).clip(min=1) / len(y_train))
        logp = np.log(self.predict_proba(val_data).clip(min=1e-12))
        y_val = self._label_ids(val_data).numpy()
        # After a logit-adjusted loss the logits are already balanced: negative tau can move back.
        grid = np.arange(-self.config.loss_adjust, 1.51, 0.125) + 0.0  # + 0.0: no "-0.0" tau
        scores = [(macro_f1(y_val, (logp - t * log_prior).argmax(1), n), -abs(t), t) for t in grid]
        _, _, tau = max(scores)  # ties -> the smallest |tau|
        self.network.add_logit_bias(torch.as_tensor(-tau * log_prior))  # head bias, or the ensemble's `adjust`
        self.config.logit_adjust_tau = float(tau)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_proba(self, X, lengths=None) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in the order of ``self.labels``."""
        net = self.require_trained()
        data = X if isinstance(X, SequenceData) else self._data(X, None, lengths)
        x, L = self._encode(data)
        net.eval()
        device = next(net.parameters()).device
        out = []
        order = torch.argsort(L, stable=True)  # by length: each batch pads to similar lengths only
        for xb, Lb in padded_batches(x, L, None, 512, shuffle=False, order=order)(0):
            out.append(torch.softmax(net(xb.to(device), Lb.to(device)).float(), dim=-1).cpu())
        by_length = torch.cat(out)
        proba = torch.empty_like(by_length)
        proba[order] = by_length  # back to the caller's order
        return proba.numpy()

    def predict(self, X, lengths=None) -> list[str]:
        """The most probable label for each sequence."""
        proba = self.predict_proba(X, lengths)
        return [self.labels[i] for i in proba.argmax(1)]

    def evaluate(self, X, y=None, lengths=None) -> dict:
        """Accuracy, macro-F1, per-class F1 and confusion matrix (rows true, columns predicted)."""
        data = X if isinstance(X, SequenceData) else self._data(X, y, lengths)
        if data.labels is None:
            raise UserError(f"{data.source}: labels are needed to evaluate")
        self.require_trained()
        true = self._label_ids(data).numpy()
        pred = self.predict_proba(data).argmax(1)
        return classification_report(true, pred, self.labels)

    # ------------------------------------------------------------------ persistence
    def extras(self) -> dict:
        """labels.json, and vocab.json (text) or scaler.json (numeric)."""
        extras: dict = {"labels": self.labels}
        if self.vocab is not None:
            extras["vocab"] = self.vocab.to_json()
        if self.scaler is not None:
            extras["scaler"] = self.scaler.to_json()
        return extras

    def restore(self, net: dict, extras: dict, where: str) -> Union[ClassifierNet, EnsembleNet]:
        net_cfg = from_dict(ClassifierNetConfig, net, f"{where} net")
        try:
            check_net_config(net_cfg)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
        labels = extras.get("labels")
        if not isinstance(labels, list) or len(labels) != net_cfg.n_classes or len(set(map(str, labels))) != len(labels):
            raise UserError(f"{where}: labels.json must list the model's {net_cfg.n_classes} distinct classes")
        self.labels = [str(label) for label in labels]
        if net_cfg.input_kind == "tokens":
            if "vocab" not in extras:
                raise UserError(f"{where}: vocab.json is missing")
            self.vocab = Vocab.from_json(extras["vocab"])
        else:
            if "scaler" not in extras:
                raise UserError(f"{where}: scaler.json is missing")
            self.scaler = FeatureScaler.from_json(extras["scaler"], where.replace("config.json", "scaler.json"))
        k = self.config.ensemble
        return ClassifierNet(net_cfg) if k == 1 else EnsembleNet(net_cfg, k)
