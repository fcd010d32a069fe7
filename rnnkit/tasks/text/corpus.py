"""Training data of a text model: ``fit``'s arguments -> vocabulary + token arrays (train, validation).

A ``Path`` (a file, folder, glob or compressed file: ``rnnkit.data.text_sources``) is prepared by
one streaming pass into a cached token file (``rnnkit.data.token_file``), so neither memory nor
the start-up time of a second run grows with the corpus; a ``str`` is the text itself, tokenised in
memory the same way.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from rnnkit.data.vocab import Vocab
from rnnkit.data.text_sources import resolve_inputs
from rnnkit.data.token_file import PreparedText, TokenArray, TokenSpec, prepare_text
from rnnkit.errors import UserError

TextLike = Union[str, Path]
REPORT_BYTES = 1_000_000  # say where the tokens are cached for inputs of at least this size


@dataclass
class Corpus:
    vocab: Vocab
    train: TokenArray
    val: TokenArray
    val_characters: int          # characters behind ``val`` (bits per character at word level)
    prepared: PreparedText       # of the training data (manifest, cache folder)


def text_source(data: TextLike, what: str) -> Union[str, list]:
    """A ``Path`` -> its input files (``resolve_inputs``); a ``str`` -> itself, checked non-empty."""
    if isinstance(data, Path):
        return resolve_inputs(data, what)
    if not isinstance(data, str):
        raise UserError(f"{what}: expected text (str) or a file path (pathlib.Path), got {type(data).__name__}")
    if not data.strip():
        raise UserError(f"{what}: empty text (no characters to learn from)")
    return data


def _say(msg: str, progress: bool) -> None:
    if progress and os.environ.get("RANK", "0") == "0":
        print(f"rnnkit: {msg}", file=sys.stderr)


def _report(prep: PreparedText, progress: bool) -> None:
    if prep.folder is None or prep.manifest["bytes"] < REPORT_BYTES:
        return
    m = prep.manifest
    if prep.reused:
        _say(f"reusing {m['tokens']['train']:,} prepared {m['level']} tokens from {prep.folder}", progress)
    else:
        _say(f"prepared {m['bytes'] / 1e6:.1f} MB into {m['tokens']['train']:,} {m['level']} tokens "
             f"({m['bytes_per_second'] / 1e6:.1f} MB/s) in {prep.folder}", progress)


def load_corpus(text: TextLike, val_text: Optional[TextLike], level: str, lowercase: bool, max_vocab: Optional[int],
                min_freq: int, val_fraction: float, progress: bool = True, tokenizer: Optional[str] = None,
                vocab: Optional[Vocab] = None) -> Corpus:
    """Tokenise the training text (and validation text, or the tail ``val_fraction`` of the
    training text); the vocabulary comes from the training part only. ``tokenizer``: a
    ``tokenizer.json`` (or a folder holding one) to use at ``level="bpe"`` instead of training one;
    ``vocab``: a fixed vocabulary (fine-tuning a saved model)."""
    src = text_source(text, "training text")
    progress = progress and os.environ.get("RANK", "0") == "0"  # one bar under torchrun
    spec = TokenSpec(level=level, lowercase=lowercase and level != "bpe", max_vocab=max_vocab if level != "char" else None,
                     min_freq=min_freq, val_fraction=val_fraction if val_text is None else None)
    if tokenizer is not None and vocab is None:
        if level != "bpe":
            raise UserError("--tokenizer goes with --level bpe")
        from rnnkit.data.bpe import BPEVocab
        vocab = BPEVocab.load_file(tokenizer)
    prep = prepare_text(src, spec, vocab=vocab, progress=progress)
    _report(prep, progress)
    if val_text is None:
        val, val_chars = prep.val, prep.manifest["characters"]["val"]
    else:
        vprep = prepare_text(text_source(val_text, "validation text"), TokenSpec(**{**spec.__dict__, "val_fraction": None}),
                             vocab=prep.vocab, progress=progress)
        val, val_chars = vprep.train, vprep.manifest["characters"]["train"]
    return Corpus(prep.vocab, prep.train, val, val_chars, prep)
