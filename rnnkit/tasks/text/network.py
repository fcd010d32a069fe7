"""The language-model network: embedding -> recurrent core -> dropout -> linear decoder.

As in PyTorch's ``word_language_model``: dropout on the embeddings, between recurrent layers
and before the decoder; optional weight tying (Press & Wolf 2017, Inan et al. 2017) shares the
embedding matrix with the decoder, which needs the decoder input to have the embedding size:
when ``hidden_size != embed_size`` a linear projection maps the core's output down first.
The recurrent core comes from ``rnnkit.nn.registry.make_layer`` so every ``--cell`` works.

With ``cutoffs`` the decoder is an adaptive softmax (Grave et al. 2017): the frequent words
(ids below ``cutoffs[0]``; the vocabulary is sorted by frequency) get a full-size output, rarer
clusters smaller projections. On a CPU the full softmax over a 10k vocabulary (matmul,
log-softmax and their backward) is most of a word model's training step; this makes it ~3x
cheaper. The adaptive head cannot share the embedding matrix, so it is used without tying.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.registry import make_layer
from rnnkit.options import opt, to_dict

State = Optional[object]  # whatever the recurrent layer uses: a tensor or a tuple of tensors


@dataclass(kw_only=True)
class LMConfig:
    """Architecture of a ``LanguageModel`` (saved in ``config.json``); the defaults are the char level's,
    the settings carry the names of ``TextConfig``'s fields."""

    vocab_size: int = opt(2, "tokens", min=1, max=10_000_000, flag=False)
    cell: str = opt("lstm", "recurrent cell", flag=False)
    embed_size: int = opt(64, "token embedding size", min=1, max=65_536, flag=False)
    hidden_size: int = opt(512, "hidden units", min=1, max=65_536, flag=False)
    num_layers: int = opt(1, "stacked layers", min=1, max=64, flag=False)
    dropout: float = opt(0.1, "dropout", min=0.0, max=0.99, flag=False)
    tie_weights: bool = opt(False, "share embedding and decoder", flag=False)
    cutoffs: Optional[list[int]] = opt(None, "adaptive softmax cluster boundaries (None: full softmax)", min=1,
                                       max=10_000_000, flag=False)

    def to_dict(self) -> dict:
        return to_dict(self)


class LanguageModel(nn.Module):
    """Next-token model. ``forward``: ids (batch, time) -> logits (batch, time, vocab), state;
    with ``targets`` (batch, time) it returns the mean cross-entropy instead of the logits (the
    training path: DDP needs the loss computed inside ``forward``). With an adaptive softmax the
    "logits" are log-probabilities (the same softmax, argmax and top-k).

    ``step``: ids (batch,) -> logits (batch, vocab), state — one token at a time for
    generation, through the recurrent layer's own ``step`` (no re-run of the prefix).
    """

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_size)
        inner_dropout = cfg.dropout if cfg.num_layers > 1 else 0.0  # torch warns on dropout with 1 layer
        self.rnn = make_layer(cfg.cell, cfg.embed_size, cfg.hidden_size, num_layers=cfg.num_layers,
                              dropout=inner_dropout, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)
        out_size = cfg.hidden_size
        tie = cfg.tie_weights and not cfg.cutoffs
        self.proj: Optional[nn.Linear] = None
        if tie and cfg.hidden_size != cfg.embed_size:
            self.proj = nn.Linear(cfg.hidden_size, cfg.embed_size)
            out_size = cfg.embed_size
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)  # as word_language_model; the core keeps torch's init
        self.decoder: nn.Module
        if cfg.cutoffs:
            self.decoder = nn.AdaptiveLogSoftmaxWithLoss(out_size, cfg.vocab_size, list(cfg.cutoffs), div_value=4.0)
        else:
            self.decoder = nn.Linear(out_size, cfg.vocab_size)
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
            if tie:
                self.decoder.weight = self.embed.weight

    def _features(self, h: Tensor) -> Tensor:
        h = self.drop(h)
        return self.proj(h) if self.proj is not None else h

    def _logits(self, h: Tensor) -> Tensor:
        """h (..., out) -> logits (..., vocab)."""
        if isinstance(self.decoder, nn.AdaptiveLogSoftmaxWithLoss):
            return self.decoder.log_prob(h.reshape(-1, h.shape[-1])).reshape(*h.shape[:-1], -1)
        return self.decoder(h)

    def forward(self, ids: Tensor, state: State = None, targets: Optional[Tensor] = None,
                ignore_index: int = -100) -> tuple[Tensor, State]:
        """ids: (batch, time) int64 -> logits (batch, time, vocab), new state; or, with
        ``targets`` (batch, time), the mean cross-entropy over targets != ``ignore_index``."""
        y, state = self.rnn(self.drop(self.embed(ids)), state)
        h = self._features(y)
        if targets is None:
            return self._logits(h), state
        flat_h, flat_t = h.reshape(-1, h.shape[-1]), targets.reshape(-1)
        if isinstance(self.decoder, nn.AdaptiveLogSoftmaxWithLoss):
            if ignore_index >= 0:
                keep = flat_t != ignore_index
                flat_h, flat_t = flat_h[keep], flat_t[keep]
            return self.decoder(flat_h, flat_t).loss, state
        total = F.cross_entropy(self.decoder(flat_h), flat_t, ignore_index=ignore_index, reduction="sum")
        # mean over scored targets; clamp: a batch of only ignored targets gives 0, not NaN (no GPU sync)
        return total / (flat_t != ignore_index).sum().clamp(min=1), state

    def step(self, ids: Tensor, state: State = None) -> tuple[Tensor, State]:
        """ids: (batch,) int64 -> logits (batch, vocab), new state."""
        y, state = self.rnn.step(self.drop(self.embed(ids)), state)
        return self._logits(self._features(y)), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once

    def onnx_specs(self) -> dict:
        """ONNX graphs (state tensors (num_layers, B, H): ``h`` and, for LSTM, ``c``):
        ``sequence``: ids (B, T) int64, lengths (B,), h0[, c0] -> logits (B, T, V), hn[, cn]
        (the state at each row's last real token); ``step``: token (B,) int64, h[, c] ->
        logits (B, V), h_out[, c_out] — streaming generation with explicit state."""
        from rnnkit.export import ExportSpec, state_names, example_lengths

        self.eval()
        g = torch.Generator().manual_seed(0)
        n, V = self.rnn.num_layers, self.cfg.vocab_size

        def state(b: int) -> tuple[Tensor, ...]:
            return tuple(torch.randn(n, b, s, generator=g) * 0.5 for s in self.rnn.state_sizes())

        def seq(b: int, t: int) -> tuple[Tensor, ...]:
            return (torch.randint(0, V, (b, t), generator=g), example_lengths(b, t, g), *state(b))

        def step(b: int) -> tuple[Tensor, ...]:
            return (torch.randint(0, V, (b,), generator=g), *state(b))

        s0, sn = state_names(self.rnn, "0"), state_names(self.rnn, "n")
        s_in, s_out = state_names(self.rnn, ""), state_names(self.rnn, "_out")
        bt = {0: "batch", 1: "time"}
        seq_axes = {"ids": bt, "logits": bt, "lengths": {0: "batch"}} | {k: {1: "batch"} for k in s0 + sn}
        step_axes = {"token": {0: "batch"}, "logits": {0: "batch"}} | {k: {1: "batch"} for k in s_in + s_out}
        return {"sequence": ExportSpec(_LMSequenceGraph(self), seq(2, 6), ["ids", "lengths", *s0], ["logits", *sn],
                                       seq_axes, seq(3, 9), lengths_input="lengths"),
                "step": ExportSpec(_LMStepGraph(self), step(2), ["token", *s_in], ["logits", *s_out], step_axes, step(3))}


class _LMSequenceGraph(nn.Module):
    """ids, lengths, *state -> logits, *state (exported; see ``LanguageModel.onnx_specs``)."""

    def __init__(self, lm: LanguageModel) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: Tensor, lengths: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        y, out = self.lm.rnn(self.lm.embed(ids), state if len(state) > 1 else state[0], lengths=lengths)
        return (self.lm._logits(self.lm._features(y)), *(out if isinstance(out, tuple) else (out,)))


class _LMStepGraph(nn.Module):
    """token, *state -> logits, *state through plain tensor ops (the fused step kernels have no ONNX form)."""

    def __init__(self, lm: LanguageModel) -> None:
        super().__init__()
        from rnnkit.export import StepGraph

        self.lm, self.core = lm, StepGraph(lm.rnn)

    def forward(self, token: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        y, *new = self.core(self.lm.embed(token), *state)
        return (self.lm._logits(self.lm._features(y)), *new)


def state_batch(state: State) -> Optional[int]:
    """Batch size of a recurrent state ((layers, batch, size) tensors), None for no state."""
    if state is None:
        return None
    first = state[0] if isinstance(state, (tuple, list)) else state
    return int(first.shape[1]) if isinstance(first, Tensor) and first.dim() == 3 else None


def select_state(state: State, index: Tensor) -> State:
    """Rows ``index`` of every state tensor (batch is dim 1): for beam search."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


def detach_state(state: State) -> State:
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(s.detach() for s in state)
    return state.detach()

