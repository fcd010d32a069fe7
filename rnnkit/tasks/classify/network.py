"""The sequence classifier network: input encoder -> recurrent core -> masked pooling -> linear head.

Shapes: tokens ``x: (batch, time)`` int64 or numeric ``x: (batch, time, features)`` float;
``lengths: (batch,)``; output logits ``(batch, n_classes)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.nn import I2HCell, Recurrent
from rnnkit.nn.registry import cell_names, make_layer
from rnnkit.options import opt, to_dict
from rnnkit.tasks.classify.frontend import conv_front, series_standardise

POOLINGS = ("last", "mean", "max", "attention")


@dataclass(kw_only=True)
class ClassifierNetConfig:
    """Architecture (saved in config.json). ``cell`` is any registry name or ``i2h``; the settings a
    user picks carry the names of ``ClassifierConfig``'s fields, the rest come from the data."""

    n_classes: int = opt(2, "classes", min=2, max=1_000_000, flag=False)
    input_kind: str = opt("tokens", "tokens or numeric", choices=("tokens", "numeric"), flag=False)
    vocab_size: int = opt(0, "tokens: embedding rows (0 = padding, 1 = unknown)", min=0, max=10_000_000, flag=False)
    n_features: int = opt(0, "numeric: features per step", min=0, max=100_000, flag=False)
    embed_size: int = opt(32, "token embedding size", min=1, max=8192, flag=False)
    cell: str = opt("gru", "recurrent cell", flag=False)
    hidden_size: int = opt(64, "hidden units per direction", min=1, max=8192, flag=False)
    num_layers: int = opt(1, "stacked layers", min=1, max=64, flag=False)
    bidirectional: bool = opt(False, "read both directions", flag=False)
    dropout: float = opt(0.0, "dropout", min=0.0, max=0.99, flag=False)
    pooling: str = opt("last", "pooling over time", choices=POOLINGS, flag=False)
    conv_kernel: int = opt(0, "> 0: a 1-D conv (this width, ReLU) over the inputs before the RNN", min=0, max=1001,
                           flag=False)
    conv_stride: int = opt(1, "> 1: the conv downsamples time by this factor (long numeric series)", min=1,
                           max=10_000, flag=False)
    conv_channels: int = opt(0, "conv output channels (0 = as many as its inputs)", min=0, max=8192, flag=False)
    conv_layers: int = opt(1, "> 1: more width-5 convs on the first conv's features", min=1, max=64, flag=False)
    series_norm: bool = opt(False, "numeric: also feed each series standardised by its own mean/std", flag=False)

    def to_dict(self) -> dict:
        return to_dict(self)


def check_net_config(cfg: ClassifierNetConfig) -> None:
    """Raise ValueError for an impossible architecture (callers turn it into a UserError)."""
    if cfg.pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {cfg.pooling!r}")
    names = cell_names() + ["i2h"]
    if cfg.cell not in names:
        raise ValueError(f"unknown cell {cfg.cell!r}; choose one of {', '.join(names)}")
    if cfg.input_kind not in ("tokens", "numeric"):
        raise ValueError(f"input_kind must be 'tokens' or 'numeric', got {cfg.input_kind!r}")
    if cfg.conv_kernel < 0 or (cfg.conv_kernel > 0 and cfg.conv_kernel % 2 == 0):
        raise ValueError(f"conv_kernel must be 0 (off) or an odd width >= 1, got {cfg.conv_kernel}")
    if cfg.conv_layers < 1 or (cfg.conv_layers > 1 and not cfg.conv_kernel):
        raise ValueError(f"conv_layers must be >= 1 (and > 1 only with a conv_kernel), got {cfg.conv_layers}")
    if cfg.conv_stride < 1 or cfg.conv_channels < 0 or (cfg.conv_stride > 1 and not cfg.conv_kernel):
        raise ValueError(f"conv_stride must be >= 1 (and > 1 only with a conv_kernel), conv_channels >= 0; "
                         f"got stride {cfg.conv_stride}, channels {cfg.conv_channels}")
    if cfg.series_norm and cfg.input_kind != "numeric":
        raise ValueError("series_norm applies to numeric inputs only")
    if cfg.hidden_size < 1 or cfg.num_layers < 1 or cfg.n_classes < 2:
        raise ValueError("hidden_size and num_layers must be >= 1 and n_classes >= 2")


class MaskedPool(nn.Module):
    """Pool ``y: (B, T, D*H)`` over real steps into ``(B, D*H)``.

    last: forward half at each sequence's last real step, backward half at step 0 (where the
    backward direction has read the whole sequence); mean: average over real steps; max: maximum
    over real steps per unit;
    attention: softmax over real steps of a learned score ``v . tanh(W y_t)``.
    """

    def __init__(self, kind: str, size: int, directions: int):
        super().__init__()
        self.kind, self.directions = kind, directions
        if kind == "attention":
            self.proj = nn.Linear(size, size)
            self.score = nn.Linear(size, 1, bias=False)

    def forward(self, y: Tensor, lengths: Tensor) -> Tensor:
        B, T, S = y.shape
        mask = torch.arange(T, device=y.device)[None, :] < lengths.to(y.device)[:, None]  # (B, T)
        if self.kind == "last":
            half = S // self.directions
            fwd = y[torch.arange(B, device=y.device), lengths.to(y.device) - 1, :half]
            return fwd if self.directions == 1 else torch.cat([fwd, y[:, 0, half:]], dim=-1)
        if self.kind == "mean":
            m = mask.unsqueeze(-1).to(y.dtype)
            return (y * m).sum(1) / m.sum(1).clamp_min(1.0)
        if self.kind == "max":  # each unit's strongest response: a learned n-gram detector
            return y.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        scores = self.score(torch.tanh(self.proj(y))).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)  # (B, T, 1)
        return (weights * y).sum(1)


class ClassifierNet(nn.Module):
    """Embedding (tokens) or identity (numeric, already normalised) -> RNN -> pool -> Linear."""

    def __init__(self, cfg: ClassifierNetConfig):
        super().__init__()
        check_net_config(cfg)
        self.cfg = cfg
        if cfg.input_kind == "tokens":
            self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_size, padding_idx=0)
            in_size = cfg.embed_size
        else:
            self.embed = None
            in_size = cfg.n_features * (2 if cfg.series_norm else 1)
        D = 2 if cfg.bidirectional else 1
        # Conv front-end: each step also sees its neighbours, i.e. a learned character n-gram
        # (width conv_kernel) detector, concatenated to the raw input so nothing is lost.
        # With conv_stride > 1 it also shortens long series (frontend.conv_front) instead of truncating.
        out_ch = cfg.conv_channels or in_size
        self.conv = (nn.Conv1d(in_size, out_ch, cfg.conv_kernel, stride=cfg.conv_stride, padding=cfg.conv_kernel // 2)
                     if cfg.conv_kernel else None)
        if self.conv is not None:
            in_size += out_ch
        self.convs = nn.ModuleList(nn.Conv1d(out_ch, out_ch, 5, padding=2) for _ in range(max(0, cfg.conv_layers - 1)))
        if cfg.cell == "i2h":
            # The tutorial's i2h/i2o cell; its i2o output (size hidden) feeds the pooling + head.
            H = cfg.hidden_size
            self.rnn = Recurrent(lambda i: I2HCell(i, H, H), input_size=in_size, num_layers=cfg.num_layers,
                                 bidirectional=cfg.bidirectional, dropout=cfg.dropout, batch_first=True)
        else:
            self.rnn = make_layer(cfg.cell, in_size, cfg.hidden_size, num_layers=cfg.num_layers,
                                  dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
                                  bidirectional=cfg.bidirectional, batch_first=True)
        self.pool = MaskedPool(cfg.pooling, D * cfg.hidden_size, D)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(D * cfg.hidden_size, cfg.n_classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: (B, T) token ids or (B, T, F) floats; lengths: (B,) -> logits (B, n_classes)."""
        h = self.drop(self.embed(x)) if self.embed is not None else x  # dropout on embeddings too
        if self.cfg.series_norm:
            h = torch.cat([h, series_standardise(h, lengths)], dim=-1)  # (B, T, 2F)
        if self.conv is not None:
            h, lengths = conv_front(self.conv, h, lengths, self.cfg.conv_stride, self.convs)  # (B, ceil(T/s), in + C)
        out = self.rnn(h, lengths=lengths.cpu())
        y = out[0] if isinstance(out, tuple) else out  # (B, T, D*H)
        return self.head(self.drop(self.pool(y, lengths)))

    @torch.no_grad()
    def add_logit_bias(self, bias: Tensor) -> None:
        """Fold a per-class shift (n_classes,) into the head's bias (save/load/ONNX keep it)."""
        self.head.bias.add_(bias.to(self.head.bias))

    def onnx_specs(self) -> dict:
        """ONNX graph ``sequence``: x (B, T) int64 ids or (B, T, F) floats, lengths (B,) int64
        -> logits (B, n_classes); batch and time are dynamic, padded steps never leak."""
        from rnnkit.errors import UserError
        from rnnkit.export import ExportSpec, example_lengths

        if self.cfg.cell == "i2h":  # a generic cell's per-step Python loop has no ONNX form
            raise UserError("ONNX export: the i2h cell is not exportable; train with a registry cell (lstm, gru, ...)")
        g = torch.Generator().manual_seed(0)

        def inputs(b: int, t: int) -> tuple[Tensor, Tensor]:
            if self.cfg.input_kind == "tokens":
                x = torch.randint(1, self.cfg.vocab_size, (b, t), generator=g)
            else:
                x = torch.randn(b, t, self.cfg.n_features, generator=g)
            return x, example_lengths(b, t, g)

        axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
        return {"sequence": ExportSpec(self.eval(), inputs(3, 7), ["x", "lengths"], ["logits"], axes,
                                       check_inputs=inputs(5, 12), lengths_input="lengths")}
