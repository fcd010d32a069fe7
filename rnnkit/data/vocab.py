"""Tokens and vocabularies: the one ``tokenize`` and the one ``Vocab`` of rnnkit's text inputs
(language models and sequence classifiers). The CTC alphabet of speech models is not built from
data and lives with the decoder (``rnnkit.tasks.speech.ctc_decode.CharVocab``)."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from rnnkit.errors import UserError

UNK = "<unk>"
EOS = "<eos>"
PAD = "<pad>"

# Word-level tokenizer (documented in Vocab / tokenize): lower-cased words that may contain
# apostrophes inside or at either end ("o'er", "pardon'd", "'tis", "o'"), numbers, and every
# other non-space character as its own token (punctuation; a run of dashes is one token). Each line break ends a line with the token <eos>, like the PTB
# setup of word_language_model; blank lines add nothing.
_WORD_RE = re.compile(r"'?\w+(?:'\w+)*'?|-+|[^\w\s]")
_NO_SPACE_BEFORE = set(",.;:!?)]}")
_NO_SPACE_AFTER = set("([{")


def tokenize(text: str, level: str, lowercase: bool, line_ends: bool = True) -> list[str]:
    """Split text into tokens (the one tokenizer of language models and classifiers).

    ``char``: every character (newlines included; lower-cased if ``lowercase``). ``word``:
    words with inner apostrophes and numbers, each punctuation mark a token; with ``line_ends``
    ``<eos>`` ends each non-empty line (language models), without it lines just join (a
    classifier's one-line sequences).
    """
    if level == "char":
        return list(text.lower() if lowercase else text)
    if level != "word":
        raise UserError(f"unknown text level {level!r}; choose char or word")
    tokens: list[str] = []
    for line in text.split("\n"):
        words = _WORD_RE.findall(line.lower() if lowercase else line)
        if words:
            tokens.extend(words)
            if line_ends:
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
    """Token <-> id table: the special tokens first (``<unk>``; a classifier adds ``<pad>`` as id 0),
    then the tokens by falling frequency.

    Built from the training data only; ``max_size`` caps it (rarer tokens become ``<unk>``),
    ``min_freq`` drops tokens seen fewer times.
    """

    tokens: list[str]
    level: str = "char"
    lowercase: bool = True
    stoi: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, list) or UNK not in self.tokens[:2] or not all(isinstance(t, str) for t in self.tokens):
            raise UserError(f"a vocabulary is a list of strings starting with {UNK!r} (or {PAD!r}, {UNK!r})")
        self.stoi = {t: i for i, t in enumerate(self.tokens)}
        if len(self.stoi) != len(self.tokens):
            raise UserError("vocabulary has repeated tokens")

    @classmethod
    def build(cls, tokens: Iterable[str], level: str, max_size: int | None = None,
              min_freq: int = 1, lowercase: bool = True, specials: tuple[str, ...] = (UNK,)) -> "Vocab":
        return cls.from_counts(Counter(tokens), level, max_size, min_freq, lowercase, specials)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], level: str, max_size: int | None = None, min_freq: int = 1,
                    lowercase: bool = True, specials: tuple[str, ...] = (UNK,)) -> "Vocab":
        """Like ``build`` from token counts (e.g. streamed: ``rnnkit.data.token_file``)."""
        counts = {t: int(c) for t, c in counts.items() if t not in specials and c > 0}
        # sort by count, then token, so the vocabulary does not depend on dict order
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(max_size - len(specials), 0)]
        return cls([*specials, *ranked], level=level, lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def unk_id(self) -> int:
        return self.stoi[UNK]

    def encode(self, tokens: Sequence[str]) -> list[int]:
        get, unk = self.stoi.get, self.unk_id
        return [get(t, unk) for t in tokens]

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
            if obj["level"] not in ("char", "word"):
                raise TypeError(f"level {obj['level']!r}")
            return cls(list(obj["tokens"]), level=obj["level"], lowercase=bool(obj.get("lowercase", True)))
        except (KeyError, TypeError, UserError) as exc:
            raise UserError(f"{where}: malformed vocabulary ({exc})") from None
