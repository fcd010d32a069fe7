"""Text data: read UTF-8 files and cut token streams for truncated BPTT (tokens: ``rnnkit.data.vocab``).

The pipeline is the one of char-rnn and PyTorch's ``word_language_model``:

    text --tokenize--> tokens --Vocab.encode--> ids (N,) --batchify--> (B, N // B) streams
         --TBPTTBatches--> (x, y) pairs of shape (B, bptt), y = x shifted by one step

Stream ``b`` is one contiguous slice of the corpus, so the recurrent state after batch ``i``
is the right initial state for batch ``i + 1`` (the trainer's ``carry_state=True``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from torch import Tensor

from rnnkit.data.text_sources import not_utf8_kind
from rnnkit.errors import UserError

SHAKESPEARE = Path(__file__).parent / "datasets" / "shakespeare" / "shakespeare.txt"



def read_text(path: str | Path, what: str = "text file", allow_empty: bool = False) -> str:
    """Read a UTF-8 text file; UserError if it is missing, empty (unless ``allow_empty``), binary or not UTF-8."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: {what} not found")
    if p.is_dir():
        raise UserError(f"{p}: is a folder, expected a UTF-8 {what}")
    raw = p.read_bytes()
    return decode_text(raw, str(p), allow_empty)


def decode_text(raw: bytes, where: str = "<input>", allow_empty: bool = False) -> str:
    """Decode bytes as UTF-8 text (a BOM is dropped) with one-line errors that say where."""
    if not raw.strip():
        if allow_empty:
            return ""
        raise UserError(f"{where}: empty text (no characters to learn from)")
    if b"\x00" in raw[:1 << 20]:
        raise UserError(f"{where}: {not_utf8_kind(raw)}; expected UTF-8 plain text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{where}: not valid UTF-8 (byte {exc.start}, line {line}); convert it to UTF-8 plain text") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_stream(ids: Tensor, val_fraction: float) -> tuple[Tensor, Tensor]:
    """Contiguous split: the first (1 - f) of the stream for training, the tail for validation
    (a random split of a text stream would leak neighbouring context into validation)."""
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"validation fraction must lie in (0, 1), got {val_fraction}")
    n_val = int(len(ids) * val_fraction)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val:]


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """(N,) -> (B, N // B): B contiguous streams, the ragged tail dropped."""
    n = ids.numel() // batch_size
    return ids[: n * batch_size].view(batch_size, n)


@dataclass
class TBPTTBatches:
    """Re-iterable (x, y) batches over streams for truncated BPTT.

    streams: (B, L) token ids. Each item: x, y of shape (B, bptt) with y[:, t] = x[:, t + 1]
    along the stream; the last window may be shorter. Consecutive items continue each
    stream, so the state of one batch is the initial state of the next.

    ``ranks`` > 1 (DDP): each window is yielded as ``ranks`` consecutive batches holding
    disjoint rows, so the trainer's round-robin sharding (batch i -> rank i % ranks) gives
    every process its own streams, continued window after window.
    """

    streams: Tensor
    bptt: int
    ranks: int = 1

    def __post_init__(self) -> None:
        if self.streams.shape[1] < 2:
            raise UserError(f"text too small: each of the {self.streams.shape[0]} streams needs at least 2 tokens")
        if self.streams.shape[0] < self.ranks:
            raise UserError(f"{self.streams.shape[0]} text streams cannot be shared by {self.ranks} processes")

    def __len__(self) -> int:
        return -(-(self.streams.shape[1] - 1) // self.bptt) * self.ranks

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        L = self.streams.shape[1]
        rows = self.streams.shape[0] // self.ranks
        for i in range(0, L - 1, self.bptt):
            T = min(self.bptt, L - 1 - i)
            for r in range(self.ranks):
                part = self.streams[r * rows:(r + 1) * rows] if self.ranks > 1 else self.streams
                yield part[:, i: i + T], part[:, i + 1: i + 1 + T]


def tbptt_batches(ids: Tensor, batch_size: int, bptt: int, what: str = "training text", ranks: int = 1) -> TBPTTBatches:
    """Streams for TBPTT, with a UserError when the text cannot fill even one window per stream."""
    need = batch_size * (bptt + 1)
    if ids.numel() < need:
        raise UserError(
            f"{what} too small: {ids.numel()} tokens, need at least batch_size * (bptt + 1) = "
            f"{batch_size} * {bptt + 1} = {need}; use more text or a smaller --batch-size / --bptt")
    return TBPTTBatches(batchify(ids, batch_size), bptt, ranks)


def load_shakespeare() -> str:
    """The shipped public-domain corpus (eight plays, about 1.16 MB; see its LICENSE.txt)."""
    return read_text(SHAKESPEARE, "shipped corpus")
