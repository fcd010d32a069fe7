"""Text data: read UTF-8 files, tokenize, build vocabularies, cut streams for truncated BPTT.

The pipeline is the one of char-rnn and PyTorch's ``word_language_model``:

    text --tokenize--> tokens --Vocab.encode--> ids (N,) --batchify--> (B, N // B) streams
         --TBPTTBatches--> (x, y) pairs of shape (B, bptt), y = x shifted by one step

Stream ``b`` is one contiguous slice of the corpus, so the recurrent state after batch ``i``
is the right initial state for batch ``i + 1`` (the trainer's ``carry_state=True``).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from torch import Tensor

from rnnkit.errors import UserError

UNK = "<unk>"
EOS = "<eos>"
SHAKESPEARE = Path(__file__).parent / "datasets" / "shakespeare" / "shakespeare.txt"

# Word-level tokenizer (documented in Vocab / tokenize): lower-cased words that may contain
# apostrophes inside or at either end ("o'er", "pardon'd", "'tis", "o'"), numbers, and every
# other non-space character as its own token (punctuation; a run of dashes is one token). Each line break ends a line with the token <eos>, like the PTB
# setup of word_language_model; blank lines add nothing.
_WORD_RE = re.compile(r"'?\w+(?:'\w+)*'?|-+|[^\w\s]")
_NO_SPACE_BEFORE = set(",.;:!?)]}")
_NO_SPACE_AFTER = set("([{")


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
        raise UserError(f"{where}: looks binary (contains NUL bytes); expected UTF-8 plain text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{where}: not valid UTF-8 (byte {exc.start}, line {line}); convert it to UTF-8 plain text") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def tokenize(text: str, level: str, lowercase: bool = True) -> list[str]:
    """Split text into tokens.

    ``char``: every character (newlines included). ``word``: lower-cased (if ``lowercase``)
    words with inner apostrophes, each punctuation mark a token, ``<eos>`` at each line end
    of a non-empty line.
    """
    if level == "char":
        return list(text)
    if level != "word":
        raise UserError(f"unknown text level {level!r}; choose char or word")
    tokens: list[str] = []
    for line in text.split("\n"):
        words = _WORD_RE.findall(line.lower() if lowercase else line)
        if words:
            tokens.extend(words)
            tokens.append(EOS)
    return tokens


def prompt_tokens(text: str, level: str, lowercase: bool = True) -> list[str]:
    """Tokenize a prompt: like ``tokenize`` but a word prompt gets no trailing ``<eos>``
    unless it ends with a line break (the next word continues the line)."""
    if level == "char":
        return list(text)
    tokens = tokenize(text, level, lowercase)
    if tokens and not text.endswith("\n"):
        tokens.pop()
    return tokens


def detokenize(tokens: Sequence[str], level: str) -> str:
    """Inverse of ``tokenize`` up to spacing: words joined by spaces, none before punctuation."""
    if level == "char":
        return "".join(tokens)
    out: list[str] = []
    for tok in tokens:
        if tok == EOS:
            out.append("\n")
            continue
        glue = not out or out[-1].endswith("\n") or tok[0] in _NO_SPACE_BEFORE or out[-1][-1] in _NO_SPACE_AFTER
        out.append(tok if glue else " " + tok)
    return "".join(out)


@dataclass
class Vocab:
    """Token <-> id table. Id 0 is always ``<unk>``; the rest by falling frequency.

    Built from the training text only; ``max_size`` caps it (rarer tokens become ``<unk>``),
    ``min_freq`` drops tokens seen fewer times.
    """

    tokens: list[str]
    level: str = "char"
    lowercase: bool = True
    stoi: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.tokens or self.tokens[0] != UNK:
            raise UserError(f"vocabulary must start with {UNK!r}")
        self.stoi = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, tokens: Sequence[str], level: str, max_size: int | None = None,
              min_freq: int = 1, lowercase: bool = True) -> "Vocab":
        counts = Counter(tokens)
        counts.pop(UNK, None)
        # sort by count, then token, so the vocabulary does not depend on dict order
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(max_size - 1, 0)]
        return cls([UNK, *ranked], level=level, lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def unk_id(self) -> int:
        return 0

    def encode(self, tokens: Sequence[str]) -> list[int]:
        get = self.stoi.get
        return [get(t, 0) for t in tokens]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def unknown(self, tokens: Sequence[str]) -> list[str]:
        """Tokens not in the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self.stoi))

    def to_json(self) -> dict:
        return {"level": self.level, "lowercase": self.lowercase, "tokens": self.tokens}

    @classmethod
    def from_json(cls, obj: dict, where: str = "vocab.json") -> "Vocab":
        try:
            return cls(list(obj["tokens"]), level=obj["level"], lowercase=bool(obj.get("lowercase", True)))
        except (KeyError, TypeError) as exc:
            raise UserError(f"{where}: malformed vocabulary ({exc})") from None

    def save(self, path: str | Path) -> None:
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        p = Path(path)
        try:
            return cls.from_json(json.loads(p.read_text(encoding="utf-8")), str(p))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise UserError(f"{p}: unreadable vocabulary ({type(exc).__name__})") from None


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


def make_batches(ids: Tensor, batch_size: int, bptt: int, what: str = "training text", ranks: int = 1) -> TBPTTBatches:
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
