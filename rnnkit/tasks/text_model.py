"""The language-model network: embedding -> recurrent core -> dropout -> linear decoder.

As in PyTorch's ``word_language_model``: dropout on the embeddings, between recurrent layers
and before the decoder; optional weight tying (Press & Wolf 2017, Inan et al. 2017) shares the
embedding matrix with the decoder, which needs the decoder input to have the embedding size:
when ``hidden_size != embed_size`` a linear projection maps the core's output down first.
The recurrent core comes from ``rnnkit.nn.registry.make_layer`` so every ``--cell`` works.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from rnnkit.nn.registry import make_layer

State = Optional[object]  # whatever the recurrent layer uses: a tensor or a tuple of tensors


@dataclass
class LMConfig:
    """Architecture of a ``LanguageModel`` (saved in ``config.json``)."""

    vocab_size: int
    cell: str = "lstm"
    embed_size: int = 128
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.2
    tie_weights: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class LanguageModel(nn.Module):
    """Next-token model. ``forward``: ids (batch, time) -> logits (batch, time, vocab), state.

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
        self.proj: Optional[nn.Linear] = None
        if cfg.tie_weights and cfg.hidden_size != cfg.embed_size:
            self.proj = nn.Linear(cfg.hidden_size, cfg.embed_size)
            out_size = cfg.embed_size
        self.decoder = nn.Linear(out_size, cfg.vocab_size)
        self._init_weights()
        if cfg.tie_weights:
            self.decoder.weight = self.embed.weight

    def _init_weights(self) -> None:
        # small uniform embeddings/decoder as in word_language_model; the core keeps its torch init
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def _decode(self, h: Tensor) -> Tensor:
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)
        return self.decoder(h)

    def forward(self, ids: Tensor, state: State = None) -> tuple[Tensor, State]:
        """ids: (batch, time) int64 -> logits (batch, time, vocab), new state."""
        x = self.drop(self.embed(ids))
        y, state = self.rnn(x, state)
        return self._decode(y), state

    def step(self, ids: Tensor, state: State = None) -> tuple[Tensor, State]:
        """ids: (batch,) int64 -> logits (batch, vocab), new state."""
        x = self.drop(self.embed(ids))
        y, state = self.rnn.step(x, state)
        return self._decode(y), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once


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

