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
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.data.sequences import SequenceData, check_labels, from_arrays, read_sequences, stratified_split
from rnnkit.errors import UserError
from rnnkit.metrics.classify import classification_report
from rnnkit.tasks.autoconfig import DEFAULT_BUDGET_S
from rnnkit.tasks.classify.augment import Augment
from rnnkit.tasks.classify.data import FeatureScaler, Vocab, class_weights, encode_inputs, make_batches
from rnnkit.tasks.classify.ensemble import EnsembleNet
from rnnkit.tasks.classify.network import ClassifierNet, ClassifierNetConfig, check_net_config
from rnnkit.tasks.classify.probe import clock
from rnnkit.tasks.classify.resolve import AUTO_FIELDS, resolve_or_resume  # noqa: F401 (AUTO_FIELDS: re-export)
from rnnkit.train.distributed import pick_device

TASK = "classify"
END_SHARE = 0.93  # planned runs add ensemble members while they end within this share of the budget
WALL_SLACK = 3.0  # planned runs: a member stops at 3x its wall-clock share of the budget (load safety net)


@dataclass
class ClassifierConfig:
    """Hyper-parameters of ``SequenceClassifier`` (architecture, input handling, training).

    ``None`` = automatic: chosen at ``fit`` from the training data and the time budget
    (``rnnkit.tasks.autoconfig.classify_plan``; the rule is in docs/decisions.md). Any value given
    overrides that choice. After ``fit``, ``config`` holds the values actually used.
    """

    cell: str = "gru"  # any rnnkit.nn.registry cell, or "i2h" (the tutorial's i2h/i2o cell)
    hidden_size: Optional[int] = None
    num_layers: int = 1
    bidirectional: Optional[bool] = None
    pooling: Optional[str] = None  # last | mean | max | attention (all masked by length)
    embed_dim: int = 32  # token inputs only
    dropout: Optional[float] = None
    level: str = "char"  # token inputs: char | word
    lowercase: bool = False
    max_len: Optional[int] = None  # truncate longer sequences (a warning counts them); None: never
    class_weight: Optional[str] = None  # None | "balanced"
    label_smoothing: Optional[float] = None  # training loss only
    # > 0: numeric inputs only; Gaussian noise of this std (in scaler units, i.e. per-feature
    # standard deviations) is added to every training batch, a cheap augmentation for small data.
    input_noise: Optional[float] = None
    # numeric inputs: random amplitude scaling and crops of training batches (classify/augment.py)
    augment: Optional[bool] = None
    # > 0: logit-adjusted loss (Menon et al. 2021): training and validation losses see
    # logits + loss_adjust * log prior(class), so the network's own logits come out balanced
    # towards rare classes (the rare-class features are learned, not only re-thresholded).
    loss_adjust: float = 0.0
    conv_kernel: Optional[int] = None  # > 0: conv front-end (n-gram / local-shape detector of this odd width)
    conv_stride: Optional[int] = None  # > 1: the conv front end downsamples long numeric series by this factor
    conv_channels: Optional[int] = None  # conv front-end output channels (0 = as many as inputs)
    conv_layers: Optional[int] = None  # > 1: more width-5 convs on the front end's features
    series_norm: Optional[bool] = None  # numeric: also feed each series standardised by its own mean/std
    # "auto": after training, pick tau in logits - tau * log(prior) by validation macro-F1 (logit
    # adjustment, Menon et al. 2021: favours rare classes) and fold it into the head's bias, so
    # save/load/ONNX all give the adjusted model. Needs validation data; None = off.
    logit_adjust: Optional[str] = None
    logit_adjust_tau: float = 0.0  # the fitted tau (written by fit, kept in config.json)
    # K > 1: train K members (seeds seed..seed+K-1) and average their probabilities
    # (classify/ensemble.EnsembleNet: one network, one model folder, one ONNX graph).
    ensemble: Optional[int] = None
    val_fraction: Optional[float] = None  # stratified; ignored when val data is given
    batch_size: Optional[int] = None
    epochs: Optional[int] = None  # training length in passes over the data (else max_steps)
    max_steps: Optional[int] = None  # training length in optimizer steps per member
    lr: Optional[float] = None
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw
    grad_clip: float = 1.0
    schedule: Optional[str] = None
    patience: Optional[int] = None
    seed: int = 0
    max_time: Optional[float] = None  # the budget in seconds for the whole fit (all members)
    tune: bool = False  # budgeted random search by k-fold CV on the training split (classify/tune.py)
    device: str = "auto"
    progress: bool = True


class SequenceClassifier:
    """An RNN sequence classifier with the task interface: fit, predict, evaluate, save, load."""

    def __init__(self, config: Optional[ClassifierConfig] = None, **overrides):
        names = {f.name for f in fields(ClassifierConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown SequenceClassifier option(s): {', '.join(unknown)}")
        base = asdict(config) if config is not None else {}
        self.config = ClassifierConfig(**{**base, **overrides})
        self.requested = self.config  # what the user asked for (None = auto); fit() resolves a copy
        self.plan = None  # the autoconfig.ClassifyPlan of the last fit
        self.net: Optional[Union[ClassifierNet, EnsembleNet]] = None
        self.labels: list[str] = []
        self.vocab: Optional[Vocab] = None
        self.scaler: Optional[FeatureScaler] = None
        self.history = None  # the last member's History (all members: self.histories)
        self.histories: list = []

    # ------------------------------------------------------------------ data
    @staticmethod
    def _data(X, y=None, lengths=None) -> SequenceData:
        if isinstance(X, (str, Path)):
            return read_sequences(X, labelled=y is not None)
        return from_arrays(X, y, lengths)

    def _encode(self, data: SequenceData):
        return encode_inputs(data, self.vocab, self.scaler, self.config.max_len)

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
        if train.kind == "tokens":
            self.vocab, self.scaler = Vocab.build(train.texts, cfg.level, cfg.lowercase), None
        else:
            self.vocab, self.scaler = None, FeatureScaler.fit(train.values, train.lengths)
        net_cfg = ClassifierNetConfig(
            n_classes=len(self.labels), input_kind=train.kind,
            vocab_size=len(self.vocab) if self.vocab else 0,
            n_features=int(train.values.shape[2]) if train.kind == "numeric" else 0,
            embed_dim=cfg.embed_dim, cell=cfg.cell, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
            bidirectional=cfg.bidirectional, dropout=cfg.dropout, pooling=cfg.pooling, conv_kernel=cfg.conv_kernel,
            conv_stride=cfg.conv_stride, conv_channels=cfg.conv_channels, conv_layers=cfg.conv_layers,
            series_norm=cfg.series_norm)
        if cfg.logit_adjust not in (None, "auto"):
            raise UserError(f"logit_adjust must be None or 'auto', got {cfg.logit_adjust!r}")
        if not cfg.input_noise >= 0:
            raise UserError(f"input_noise must be >= 0 (a standard deviation), got {cfg.input_noise!r}")
        if cfg.input_noise > 0 and train.kind != "numeric":
            raise UserError("input_noise applies to numeric inputs only (token inputs have no scale to perturb)")
        if not isinstance(cfg.ensemble, int) or cfg.ensemble < 1:
            raise UserError(f"ensemble must be an integer >= 1 (number of members), got {cfg.ensemble!r}")
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
            val_batches = make_batches(xv, Lv, self._label_ids(val_data), 256, shuffle=False)(0)

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
            batches = make_batches(x, L, y_ids, cfg.batch_size, shuffle=True, seed=cfg.seed + k)
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
                                           max_time=left, n_train=int(x.shape[0]))
            members.append(net)
            self.histories.append(hist)
            spent_member = clock(device) - m_start
        self.history = self.histories[-1]
        if len(members) != cfg.ensemble:
            cfg = self.config = replace(cfg, ensemble=len(members))
        self.net = members[0] if cfg.ensemble == 1 else EnsembleNet.from_members(members)
        self.net.eval()
        if cfg.logit_adjust == "auto" and val_data is not None and len(val_data):
            self._fit_logit_adjustment(y_ids.numpy(), val_data)
        return self

    def _train_member(self, net_cfg: ClassifierNetConfig, seed: int, train_batches, val_batches,
                      weights: Optional[torch.Tensor], shift: Optional[torch.Tensor], out_dir: Optional[Path],
                      resume: bool, max_time: Optional[float] = None, n_train: int = 0):
        """One network through the shared Trainer -> (trained ClassifierNet in eval mode, History)."""
        from rnnkit.train import TrainConfig, Trainer, unwrap

        cfg = self.config
        torch.manual_seed(seed)  # same initial weights for the same seed
        net = ClassifierNet(net_cfg)
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
        tcfg = TrainConfig(epochs=epochs, max_steps=None if cfg.epochs else cfg.max_steps, lr=cfg.lr, optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
                           grad_clip=cfg.grad_clip, schedule=cfg.schedule, patience=cfg.patience, seed=seed,
                           max_time=max_time, device=cfg.device, progress=cfg.progress,
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
        self.net.add_logit_bias(torch.as_tensor(-tau * log_prior))  # head bias, or the ensemble's `adjust`
        self.config.logit_adjust_tau = float(tau)

    # ------------------------------------------------------------------ inference
    def _require_fitted(self) -> Union[ClassifierNet, EnsembleNet]:
        if self.net is None:
            raise UserError("the classifier is not trained yet: call fit() or load() first")
        return self.net

    @torch.no_grad()
    def predict_proba(self, X, lengths=None) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in the order of ``self.labels``."""
        net = self._require_fitted()
        data = X if isinstance(X, SequenceData) else self._data(X, None, lengths)
        x, L = self._encode(data)
        net.eval()
        device = next(net.parameters()).device
        out = []
        for xb, Lb in make_batches(x, L, None, 512, shuffle=False)(0):
            out.append(torch.softmax(net(xb.to(device), Lb.to(device)).float(), dim=-1).cpu())
        return torch.cat(out).numpy()

    def predict(self, X, lengths=None) -> list[str]:
        """The most probable label for each sequence."""
        proba = self.predict_proba(X, lengths)
        return [self.labels[i] for i in proba.argmax(1)]

    def evaluate(self, X, y=None, lengths=None) -> dict:
        """Accuracy, macro-F1, per-class F1 and confusion matrix (rows true, columns predicted)."""
        data = X if isinstance(X, SequenceData) else self._data(X, y, lengths)
        if data.labels is None:
            raise UserError(f"{data.source}: labels are needed to evaluate")
        self._require_fitted()
        true = self._label_ids(data).numpy()
        pred = self.predict_proba(data).argmax(1)
        return classification_report(true, pred, self.labels)

    # ------------------------------------------------------------------ persistence
    def save(self, dir: Union[str, Path]) -> Path:
        """Model folder: config.json, model.safetensors, labels.json, vocab.json | scaler.json."""
        from rnnkit.train.checkpoint import save_model

        net = self._require_fitted()
        config = {"task": TASK, "net": net.cfg.to_dict(), "options": asdict(self.config)}
        extras: dict = {"labels": self.labels}
        if self.vocab is not None:
            extras["vocab"] = self.vocab.to_json()
        if self.scaler is not None:
            extras["scaler"] = self.scaler.to_json()
        return save_model(dir, net, config, extras)

    @classmethod
    def load(cls, dir: Union[str, Path], device: str = "cpu") -> "SequenceClassifier":
        from rnnkit.train.checkpoint import load_model, load_state_into

        config, state, extras = load_model(dir, task=TASK)
        try:
            net_cfg = ClassifierNetConfig(**config["net"])
            names = {f.name for f in fields(ClassifierConfig)}
            options = {k: v for k, v in config.get("options", {}).items() if k in names}
            labels = [str(l) for l in extras["labels"]]
        except (KeyError, TypeError) as exc:
            raise UserError(f"{dir}: config.json or labels.json is incomplete ({exc})") from None
        clf = cls(**options)
        clf.labels = labels
        if net_cfg.input_kind == "tokens":
            if "vocab" not in extras:
                raise UserError(f"{dir}: vocab.json is missing")
            clf.vocab = Vocab.from_json(extras["vocab"])
        else:
            if "scaler" not in extras:
                raise UserError(f"{dir}: scaler.json is missing")
            clf.scaler = FeatureScaler.from_json(extras["scaler"])
        if len(labels) != net_cfg.n_classes:
            raise UserError(f"{dir}: labels.json has {len(labels)} labels but the model has {net_cfg.n_classes} classes")
        k = clf.config.ensemble
        if not isinstance(k, int) or k < 1:
            raise UserError(f"{dir}: config.json has a bad ensemble size {k!r}")
        clf.net = ClassifierNet(net_cfg) if k == 1 else EnsembleNet(net_cfg, k)
        load_state_into(clf.net, state, where=str(Path(dir) / "model.safetensors"))
        clf.net.to(device).eval()
        return clf
