"""Acoustic model: convolutional subsampling + bidirectional recurrent encoder + CTC head.

DeepSpeech 2 in miniature: two stride-2 convolutions shrink time by 4 (so the recurrent part
runs 25 steps per second of audio), a bidirectional GRU/LSTM/RNN/minGRU stack built through
``rnnkit.nn.registry.make_layer`` reads the whole utterance, and a linear layer scores the
characters plus the CTC blank (index 0) at every step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.nn.registry import make_layer
from rnnkit.options import opt, to_dict


@dataclass(kw_only=True)
class SpeechModelConfig:
    """Architecture (saved in config.json); settings named as ``SpeechConfig``'s fields."""

    n_mels: int = opt(80, "mel bins", min=1, max=1024, flag=False)
    vocab_size: int = opt(29, "blank + characters", min=2, max=100_000, flag=False)
    cell: str = opt("gru", "recurrent cell", flag=False)
    hidden_size: int = opt(192, "hidden units per direction", min=1, max=8192, flag=False)
    num_layers: int = opt(3, "stacked bidirectional layers", min=1, max=64, flag=False)
    conv_channels: int = opt(32, "channels of the two strided convolutions", min=1, max=4096, flag=False)
    dropout: float = opt(0.1, "dropout", min=0.0, max=0.99, flag=False)

    def to_dict(self) -> dict:
        return to_dict(self)


def subsampled_lengths(lengths: Tensor) -> Tensor:
    """Frames after two convolutions (kernel 3, stride 2, padding 1): L -> ceil(L/2) -> ceil(L/4)."""
    return ((lengths - 1) // 2 + 1 - 1) // 2 + 1


class SpeechModel(nn.Module):
    """feats (batch, time, n_mels), lengths (batch,) -> log-probs (batch, time/4, vocab), out lengths."""

    def __init__(self, cfg: SpeechModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.conv_channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GELU(),
        )
        freq = (((cfg.n_mels - 1) // 2 + 1) - 1) // 2 + 1
        self.proj = nn.Linear(c * freq, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.dropout)
        self.rnn = make_layer(cfg.cell, cfg.hidden_size, cfg.hidden_size, num_layers=cfg.num_layers,
                              dropout=cfg.dropout if cfg.num_layers > 1 else 0.0, bidirectional=True,
                              batch_first=True)
        self.head = nn.Linear(2 * cfg.hidden_size, cfg.vocab_size)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv(feats.unsqueeze(1))                     # (B, C, T/4, F/4)
        b, c, t, f = x.shape
        x = self.proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        x = self.dropout(torch.relu(x))
        out_lengths = subsampled_lengths(lengths).clamp(min=1, max=t)
        # padded frames must not leak into the backward direction: pass the true lengths
        y, _ = self.rnn(x, lengths=out_lengths.cpu())
        y = self.head(self.dropout(y))
        return y.log_softmax(dim=-1), out_lengths

    def onnx_specs(self) -> dict:
        """ONNX graph ``sequence``: feats (B, T, n_mels), lengths (B,) int64 -> log_probs
        (B, T', vocab), out_lengths (B,) with T' = ceil(T / 4); batch and time are dynamic and the
        subsampled lengths drive the bidirectional RNN nodes, so padding never leaks."""
        from rnnkit.export import ExportSpec, example_lengths

        g = torch.Generator().manual_seed(0)

        def inputs(b: int, t: int) -> tuple[Tensor, Tensor]:
            return torch.randn(b, t, self.cfg.n_mels, generator=g), example_lengths(b, t, g)

        axes = {"feats": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                "log_probs": {0: "batch", 1: "frames"}, "out_lengths": {0: "batch"}}
        return {"sequence": ExportSpec(self.eval(), inputs(2, 40), ["feats", "lengths"], ["log_probs", "out_lengths"],
                                       axes, check_inputs=inputs(3, 57), lengths_input="out_lengths")}
