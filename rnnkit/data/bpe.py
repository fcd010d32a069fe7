"""Byte-level BPE for ``--level bpe``: Hugging Face ``tokenizers`` (optional: ``pip install 'rnnkit[text]'``).

    tok = train_bpe(pieces_of_text, vocab_size=8000)          # GPT-2 style byte-level BPE
    vocab = BPEVocab(tok)                                       # a Vocab: tokens[0] == "<unk>"
    vocab.encode_text("To be, or not"), vocab.tokenize("To be"), vocab.detokenize(["To", "Ġbe"])

Byte level: every byte has a token, so no text is ever ``<unk>`` (id 0 is kept only so the
vocabulary has ``Vocab``'s layout). The tokenizer is stored whole as ``tokenizer.json`` in the
model folder (the file ``tokenizers.Tokenizer.from_file`` reads).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

from rnnkit.data.vocab import UNK, Vocab
from rnnkit.errors import UserError

# characters per string handed to encode_batch_fast (lines kept whole): the byte-level pre-tokenizer
# is several times faster on many short strings than on a few long ones (0.4 -> 1 MB/s per thread)
ENCODE_GROUP = 1 << 10


def require_tokenizers():
    """The ``tokenizers`` module, or a UserError saying how to install it."""
    # tokenizers' thread pool (rayon) starts with one thread per core; follow OMP_NUM_THREADS
    # like torch does, so `OMP_NUM_THREADS=1` or a DDP rank per core does not oversubscribe.
    if "OMP_NUM_THREADS" in os.environ:
        os.environ.setdefault("RAYON_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
    try:
        import tokenizers
    except ModuleNotFoundError:
        raise UserError("--level bpe needs the 'tokenizers' package: pip install 'rnnkit[text]'") from None
    return tokenizers


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer (GPT-2's pre-tokenizer and byte alphabet) on ``texts``."""
    tk = require_tokenizers()
    from tokenizers import decoders, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 2:
        raise UserError(f"--max-vocab {vocab_size} is too small for byte-level BPE (at least {len(alphabet) + 2})")
    tok = tk.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[UNK],
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _groups(text: str) -> list[str]:
    """``text`` cut after line breaks into strings of about ENCODE_GROUP characters."""
    out, start = [], 0
    while start < len(text):
        end = text.find("\n", start + ENCODE_GROUP)
        end = len(text) if end < 0 else end + 1
        out.append(text[start:end])
        start = end
    return out


class BPEVocab(Vocab):
    """``Vocab`` of a byte-level BPE tokenizer; ``tokenizer`` does the splitting and joining."""

    def __init__(self, tokenizer) -> None:
        tokens = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
        super().__init__(tokens, level="bpe", lowercase=False)
        self.tokenizer = tokenizer

    def encode_text(self, text: str) -> list[int]:
        return [i for ids in self.encode_ids(text) for i in ids]

    def encode_ids(self, text: str) -> Iterator[list[int]]:
        """Ids of ``text`` per group (for streaming into a token file)."""
        for enc in self.tokenizer.encode_batch_fast(_groups(text)):  # no offsets: ids only
            yield enc.ids

    def tokenize(self, text: str) -> list[str]:
        return [t for enc in self.tokenizer.encode_batch(_groups(text)) for t in enc.tokens]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return self.tokenizer.decode([self.stoi.get(t, 0) for t in tokens], skip_special_tokens=True)

    @property
    def line_start(self) -> str:
        """The token of a line break (what a prompt is read after)."""
        return self.tokenize("\n")[0]

    def tokenizer_json(self) -> dict:
        return json.loads(self.tokenizer.to_str())

    def to_json(self) -> dict:
        return {"level": "bpe", "lowercase": False, "tokens": self.tokens}

    @classmethod
    def from_tokenizer_json(cls, obj: Union[dict, str], where: str = "tokenizer.json") -> "BPEVocab":
        tk = require_tokenizers()
        try:
            tok = tk.Tokenizer.from_str(obj if isinstance(obj, str) else json.dumps(obj))
        except Exception as exc:  # tokenizers raises its own exception type
            raise UserError(f"{where}: not a Hugging Face tokenizer file ({str(exc).splitlines()[0]})") from None
        if tok.id_to_token(0) != UNK:
            raise UserError(f"{where}: token 0 must be {UNK!r} (train it with special_tokens=['{UNK}'] first), "
                            f"found {tok.id_to_token(0)!r}")
        return cls(tok)

    @classmethod
    def load_file(cls, path: Union[str, Path]) -> "BPEVocab":
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        if not p.is_file():
            raise UserError(f"tokenizer file not found: {p}")
        return cls.from_tokenizer_json(p.read_text(encoding="utf-8"), str(p))
