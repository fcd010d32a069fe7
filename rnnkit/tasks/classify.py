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

import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.data.sequences import SequenceData, check_labels, from_arrays, read_sequences, stratified_split
from rnnkit.errors import UserError
from rnnkit.metrics.classify import classification_report
from rnnkit.tasks.classify_data import FeatureScaler, Vocab, class_weights, encode_inputs, make_batches
from rnnkit.tasks.classify_ensemble import EnsembleNet
from rnnkit.tasks.classify_model import ClassifierNet, ClassifierNetConfig, check_net_config

TASK = "classify"


@dataclass
class ClassifierConfig:
    """Hyper-parameters of ``SequenceClassifier`` (architecture, input handling, training)."""

    cell: str = "gru"  # any rnnkit.nn.registry cell, or "i2h" (the tutorial's i2h/i2o cell)
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    pooling: str = "last"  # last | mean | max | attention (all masked by length)
    embed_dim: int = 32  # token inputs only
    dropout: float = 0.0
    level: str = "char"  # token inputs: char | word
    lowercase: bool = False
    max_len: Optional[int] = 512  # longer sequences are truncated
    class_weight: Optional[str] = None  # None | "balanced"
    label_smoothing: float = 0.0  # training loss only
    # > 0: numeric inputs only; Gaussian noise of this std (in scaler units, i.e. per-feature
    # standard deviations) is added to every training batch, a cheap augmentation for small data.
    input_noise: float = 0.0
    # > 0: logit-adjusted loss (Menon et al. 2021): training and validation losses see
    # logits + loss_adjust * log prior(class), so the network's own logits come out balanced
    # towards rare classes (the rare-class features are learned, not only re-thresholded).
    loss_adjust: float = 0.0
    conv_kernel: int = 0  # > 0: conv front-end (char n-gram detector of this odd width) before the RNN
    # "auto": after training, pick tau in logits - tau * log(prior) by validation macro-F1 (logit
    # adjustment, Menon et al. 2021: favours rare classes) and fold it into the head's bias, so
    # save/load/ONNX all give the adjusted model. Needs validation data; None = off.
    logit_adjust: Optional[str] = None
    logit_adjust_tau: float = 0.0  # the fitted tau (written by fit, kept in config.json)
    # K > 1: train K members (seeds seed..seed+K-1, max_time each) and average their probabilities
    # (classify_ensemble.EnsembleNet: one network, one model folder, one ONNX graph).
    ensemble: int = 1
    val_fraction: float = 0.1  # stratified; ignored when val data is given
    batch_size: int = 32
    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw
    grad_clip: float = 1.0
    schedule: str = "constant"
    patience: int = 5
    seed: int = 0
    max_time: Optional[float] = None
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
        cfg = self.config
        data = self._data(X, y, lengths)
        self.labels = check_labels(data.labels, data.source)
        if val is not None:
            train, val_data = data, self._data(*val)
            if val_data.labels is None:
                raise UserError("validation data needs labels")
        elif cfg.val_fraction > 0:
            tr, va = stratified_split(data.labels, cfg.val_fraction, cfg.seed)
            train, val_data = data.subset(tr), data.subset(va)
        else:
            train, val_data = data, None
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
            bidirectional=cfg.bidirectional, dropout=cfg.dropout, pooling=cfg.pooling, conv_kernel=cfg.conv_kernel)
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
        for k in range(cfg.ensemble):
            # Member k = the single model of seed cfg.seed + k (own init, batch order, dropout);
            # with an out_dir each member checkpoints (and resumes) in its own sub-folder.
            sub = None if out_dir is None else (Path(out_dir) if cfg.ensemble == 1 else Path(out_dir) / f"member-{k}")
            if cfg.ensemble > 1 and cfg.progress:
                print(f"rnnkit: ensemble member {k + 1}/{cfg.ensemble} (seed {cfg.seed + k})", file=sys.stderr)
            batches = make_batches(x, L, y_ids, cfg.batch_size, shuffle=True, seed=cfg.seed + k)
            net, hist = self._train_member(net_cfg, cfg.seed + k, batches, val_batches, weights, shift, sub, resume)
            members.append(net)
            self.histories.append(hist)
        self.history = self.histories[-1]
        self.net = members[0] if cfg.ensemble == 1 else EnsembleNet.from_members(members)
        self.net.eval()
        if cfg.logit_adjust == "auto" and val_data is not None and len(val_data):
            self._fit_logit_adjustment(y_ids.numpy(), val_data)
        return self

    def _train_member(self, net_cfg: ClassifierNetConfig, seed: int, train_batches, val_batches,
                      weights: Optional[torch.Tensor], shift: Optional[torch.Tensor], out_dir: Optional[Path],
                      resume: bool):
        """One network through the shared Trainer -> (trained ClassifierNet in eval mode, History)."""
        from rnnkit.train import TrainConfig, Trainer, unwrap

        cfg = self.config
        torch.manual_seed(seed)  # same initial weights for the same seed
        net = ClassifierNet(net_cfg)

        def loss_fn(model, batch, state):
            xb, Lb, yb = batch
            if model.training and cfg.input_noise > 0:  # fresh noise each step; padding stays masked
                xb = xb + cfg.input_noise * torch.randn_like(xb)
            logits = model(xb, Lb)
            if shift is not None:  # logit-adjusted loss: the prior is added back inside the loss only
                logits = logits + shift.to(logits.device)
            if not model.training:
                # Validation (early stopping) on the plain NLL: class weights and smoothing shape
                # the training signal only, and a weighted val loss is dominated by a few rare names.
                return F.cross_entropy(logits, yb), None
            w = weights.to(logits.device) if weights is not None else None
            return F.cross_entropy(logits, yb, weight=w, label_smoothing=cfg.label_smoothing), None

        tcfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
                           grad_clip=cfg.grad_clip, schedule=cfg.schedule, patience=cfg.patience, seed=seed,
                           max_time=cfg.max_time, device=cfg.device, progress=cfg.progress,
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
            clf.scaler = FeatureScaler.from_json(extras["scaler"], f"{dir}/scaler.json")
        if len(labels) != net_cfg.n_classes:
            raise UserError(f"{dir}: labels.json has {len(labels)} labels but the model has {net_cfg.n_classes} classes")
        k = clf.config.ensemble
        if not isinstance(k, int) or k < 1:
            raise UserError(f"{dir}: config.json has a bad ensemble size {k!r}")
        clf.net = ClassifierNet(net_cfg) if k == 1 else EnsembleNet(net_cfg, k)
        load_state_into(clf.net, state, where=str(Path(dir) / "model.safetensors"))
        clf.net.to(device).eval()
        return clf


def demo_section(out_dir: Path, quick: bool) -> str:
    """Demo: a character GRU on the shipped names-by-language data (see classify_demo)."""
    from rnnkit.tasks.classify_demo import names_demo

    return names_demo(Path(out_dir), quick)
