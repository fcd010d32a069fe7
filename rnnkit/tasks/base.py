"""The small shared skeleton of the four tasks: a network, one ``save``, one ``load``.

A task class sets ``task`` (the ``config.json`` name) and ``Config`` (its settings dataclass,
built on :class:`RunOptions`), fills ``self.network`` in ``fit``, and implements two hooks:
``extras()`` (small JSON files beside the weights: vocabulary, labels, scaler) and
``restore(net, extras, where)`` (rebuild the network and the fitted state from a folder).

Every model folder has one ``config.json`` shape::

    {"task": "classify", "format": 2, "net": {network settings}, "options": {task settings},
     "rnnkit_version": "0.1.0"}

Folders of the first release (``format`` absent) are read through ``legacy.upgrade``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

import torch
from torch import nn

from rnnkit.errors import UserError
from rnnkit.options import from_dict, opt, to_dict, validate

FORMAT = 2  # the config.json layout version


@dataclass(kw_only=True)
class RunOptions:
    """Settings every task's training shares (the shared CLI flags)."""

    seed: int = opt(0, "random seed: initial weights, batch order, dropout", min=0, max=2**63 - 1)
    device: str = opt("auto", "where to train: auto (cuda when present), cpu or cuda", choices=("auto", "cpu", "cuda"))
    max_time: Optional[float] = opt(None, "training budget in seconds", min=0, max=1e9)
    progress: bool = opt(True, "progress bars on stderr (--quiet turns them off)", flag=False)
    logger: str = opt("csv", "training metrics in --out: csv (metrics.csv) or tensorboard (also event files in "
                      "OUT/tensorboard; needs the [tensorboard] extra)", choices=("csv", "tensorboard"))
    init_from: Optional[str] = opt(None, "fine-tune: start from this saved model folder's weights, network "
                                   "settings and vocabulary/labels instead of from scratch")


class Task:
    """Base of ``Forecaster``, ``TextModel``, ``SequenceClassifier`` and ``SpeechRecognizer``."""

    task: ClassVar[str]
    Config: ClassVar[type]
    onnx_inputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Optional[Any] = None, **overrides: Any) -> None:
        names = {f.name for f in fields(self.Config)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown {type(self).__name__} option(s): {', '.join(unknown)}")
        base = {f.name: getattr(config, f.name) for f in fields(self.Config)} if config is not None else {}
        self.config = validate(self.Config(**{**base, **overrides}), type(self).__name__)
        self.network: Optional[nn.Module] = None
        self.history = None

    def require_trained(self) -> nn.Module:
        """The network; a one-line error when there is none yet."""
        if self.network is None:
            raise UserError(f"the {self.task} model is not trained: call fit() or rnnkit.load() a model folder")
        return self.network

    # ------------------------------------------------------------------ model folder
    def config_json(self) -> dict:
        """The ``config.json`` of this model (also written into training checkpoints)."""
        net = self.network.cfg if self.network is not None else None
        return {"task": self.task, "format": FORMAT, "net": to_dict(net) if net is not None else None,
                "options": to_dict(self.config)}

    def extras(self) -> dict:
        """Small JSON extras of the fitted model (file name stem -> JSON value)."""
        return {}

    def save(self, path: Union[str, Path]) -> Path:
        """Write the model folder: config.json + model.safetensors + one JSON file per extra."""
        from rnnkit.train.checkpoint import save_model

        return save_model(path, self.require_trained(), self.config_json(), self.extras())

    @classmethod
    def load(cls, path: Union[str, Path], device: str = "cpu") -> "Task":
        """Read a model folder written by ``save`` (or by the first release's layout)."""
        from rnnkit.tasks.legacy import upgrade
        from rnnkit.train.checkpoint import load_model, load_state_into

        config, state, extras = load_model(path, task=cls.task)
        where = f"{Path(path) / 'config.json'}"
        config, extras = upgrade(config, extras, where, FORMAT)
        options = from_dict(cls.Config, config.get("options"), f"{where} options", ignore_unknown=True)
        self = cls(config=options)
        self.config.progress = False
        try:
            with torch.device("meta"):  # count the weights config.json describes without allocating them
                probe = self.restore(config.get("net"), extras, where)
        except UserError:
            raise
        except ValueError as exc:  # a network constructor refusing a setting (e.g. an unknown cell)
            raise UserError(f"{where}: {exc}") from None
        described = sum(t.numel() for t in probe.state_dict().values())
        stored = sum(t.numel() for t in state.values())
        if described != stored:
            raise UserError(f"{where}: config.json describes a network of {described:,} weights, "
                            f"model.safetensors holds {stored:,}")
        self.network = self.restore(config.get("net"), extras, where)
        load_state_into(self.network, state, where=str(Path(path) / "model.safetensors"))
        self.network.to(device).eval()
        return self

    def restore(self, net: Any, extras: dict, where: str) -> nn.Module:
        """Rebuild the (untrained) network and the fitted state (vocabulary, labels, ...) from a folder."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fine-tuning
    def init_source(self) -> Optional["Task"]:
        """The model named by ``init_from`` (same task), or None: its network settings and fitted
        state (vocabulary, labels, scaler) replace the ones a fresh fit would derive from the data."""
        if not self.config.init_from:
            return None
        return type(self).load(self.config.init_from)

    def start_from(self, network: nn.Module, source: Optional["Task"], member: int = 0) -> nn.Module:
        """Copy ``source``'s weights into the freshly built ``network`` (a no-op without a source)."""
        if source is None:
            return network
        from rnnkit.train.checkpoint import load_state_into

        weights = source.require_trained()
        members = getattr(weights, "members", None)
        if members is not None and not hasattr(network, "members"):
            weights = members[member % len(members)]  # an ensemble's member k starts member k
        load_state_into(network, weights.state_dict(), where=f"--init-from {self.config.init_from}")
        return network

    # ------------------------------------------------------------------ ONNX
    def onnx_specs(self) -> dict:
        """Export specs (graph name -> ``rnnkit.export.ExportSpec``) of the network."""
        return self.require_trained().onnx_specs()

    def onnx_network(self, session: Any) -> Any:
        """A stand-in for ``self.network`` that runs ``session`` (an ``OnnxSession``)."""
        from rnnkit.onnx_runtime import OnnxModule

        session.require_inputs(list(self.onnx_inputs), f"the {self.task} network")
        return OnnxModule(session, self.require_trained().cfg)

    def with_network(self, network: Any) -> "Task":
        """A shallow copy of this task that predicts with ``network`` (e.g. an onnxruntime stand-in)."""
        clone = copy.copy(self)
        clone.network = network
        return clone
