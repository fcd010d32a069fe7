"""Seed ensembles of the sequence classifier: K networks of one architecture in one module.

``SequenceClassifier(ensemble=K)`` trains K members (seeds ``seed, seed+1, ...``) and keeps them
in an ``EnsembleNet``, so predict, evaluate, save/load and ONNX export see ONE network: its
logits are the log of the members' mean probability (plus the fitted logit adjustment), i.e.
``softmax(logits)`` is the averaged, adjusted probability. The model folder holds one
``model.safetensors`` whose keys are ``members.<k>.<member key>`` and ``adjust``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.tasks.classify.network import ClassifierNet, ClassifierNetConfig


class EnsembleNet(nn.Module):
    """``k`` ClassifierNets sharing ``cfg``; forward gives ``log mean_k softmax(member_k) + adjust``."""

    def __init__(self, cfg: ClassifierNetConfig, k: int):
        super().__init__()
        if k < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {k}")
        self.cfg = cfg
        self.members = nn.ModuleList(ClassifierNet(cfg) for _ in range(k))
        # Logit adjustment of the averaged model (members' own heads stay untouched): (n_classes,)
        self.register_buffer("adjust", torch.zeros(cfg.n_classes))

    @classmethod
    def from_members(cls, members: list[ClassifierNet]) -> "EnsembleNet":
        """Wrap trained members (same architecture) without copying their weights twice."""
        net = cls(members[0].cfg, len(members))
        net.members = nn.ModuleList(members)
        return net.eval()

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: (B, T) ids or (B, T, F) floats; lengths: (B,) -> logits (B, n_classes)."""
        logp = torch.stack([F.log_softmax(m(x, lengths), dim=-1) for m in self.members])  # (K, B, C)
        return torch.logsumexp(logp, dim=0) - math.log(len(self.members)) + self.adjust

    def add_logit_bias(self, bias: Tensor) -> None:
        """Fold a per-class shift into the ensemble output (not into any member)."""
        self.adjust.add_(bias.to(self.adjust))

    onnx_specs = ClassifierNet.onnx_specs  # same inputs/outputs; every member's RNN gets `lengths`
