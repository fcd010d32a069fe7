"""Text -> token file: streamed tokenisation into a flat id file plus a manifest, cached by input.

    files = resolve_inputs("corpus/")                      # a file, folder, glob, .gz ...
    prep = prepare_text(files, TokenSpec(level="char", val_fraction=0.1), progress=True)
    prep.vocab, prep.train, prep.val                       # Vocab, TokenArray (N,), TokenArray (M,)

The token file is nanoGPT's ``train.bin``: the ids of the whole corpus back to back, little-endian
``uint8`` / ``uint16`` / ``uint32`` by vocabulary size, readable with ``np.memmap``. Memory stays
bounded by the chunk size and the vocabulary, never by the corpus:

* char level: pass 1 counts code points (``np.bincount`` over UTF-32 code units), pass 2 maps them
  through a lookup table into the file (two reads of the input, no temporary file);
* word level: one tokenisation pass writes provisional ids (uint32, first-seen order) to a
  temporary file while counting; the vocabulary (``Vocab.from_counts``: ``max_vocab``, ``min_freq``)
  is built from the training part's counts and a lookup table remaps the temporary file.

A prepared corpus lives in ``cache_root() / KEY`` (``train.bin``, ``val.bin``, ``vocab.json``,
``manifest.json``); KEY hashes the input paths, sizes and modification times with the options, so
a second run with the same data starts at once and an edited file is prepared again. The manifest
is written last and marks a complete entry; a lock file keeps two processes (e.g. DDP ranks) from
preparing the same entry twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from rnnkit.data.cache import build_once, cache_dir
from rnnkit.data.vocab import _WORD_RE, EOS, Vocab
from rnnkit.data.text_sources import InputFile, TextStream
from rnnkit.errors import UserError
from rnnkit.io import atomic_write_text

VERSION = 1
_MAX_CODEPOINT = 0x110000
_REMAP_BLOCK = 1 << 22  # provisional ids remapped per step (16 MiB of uint32)
BPE_SAMPLE_BYTES = 1 << 23  # the BPE merges are learned from 8 MiB spread over the training part
# the word tokenizer of rnnkit.data.text with the line break as a token of its own, so a whole
# chunk is tokenized in one findall (a line break becomes <eos> unless it ends an empty line)
_WORD_NL_RE = re.compile(_WORD_RE.pattern.replace("|[^", "|\\n|[^", 1))


@dataclass(frozen=True)
class TokenSpec:
    """How text becomes ids. ``val_fraction`` None: no split (the whole input is one part)."""
    level: str = "char"
    lowercase: bool = False           # lower-case the text first (rnnkit's word models do)
    max_vocab: Optional[int] = None   # word level: the rest become <unk>
    min_freq: int = 1
    val_fraction: Optional[float] = 0.1


def dtype_for(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise UserError(f"vocabulary of {vocab_size} tokens is too large")


class TokenArray:
    """(N,) token ids in a raw file (``path``) or in memory (``array``).

    ``read`` uses ``os.pread``: batches touch the page cache, not the process's resident memory
    (a memory map's touched pages would count towards its RSS for the rest of the epoch).
    """

    def __init__(self, dtype: np.dtype, length: int, path: Optional[Path] = None,
                 array: Optional[np.ndarray] = None) -> None:
        self.dtype, self.length, self.path, self.array = np.dtype(dtype), int(length), path, array
        self._fd: Optional[int] = None
        self._pid = -1

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:  # a DataLoader worker reopens the file
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def read(self, start: int, n: int) -> np.ndarray:
        """ids[start:start + n] as a fresh array of ``dtype``."""
        if start < 0 or n < 0 or start + n > self.length:
            raise IndexError(f"token range {start}:{start + n} outside 0:{self.length}")
        if self.array is not None:
            return self.array[start:start + n].copy()
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        size = self.dtype.itemsize
        buf = os.pread(self._fd, n * size, start * size)
        return np.frombuffer(buf, dtype=self.dtype).copy()

    def memmap(self) -> np.ndarray:
        """All ids as a read-only array (a memory map of the file; nanoGPT style)."""
        if self.array is not None:
            return self.array
        if self.length == 0:
            return np.zeros(0, self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.length,))

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


@dataclass
class PreparedText:
    """A tokenised corpus: vocabulary, training ids, validation ids (None without a split)."""
    vocab: Vocab
    train: TokenArray
    val: Optional[TokenArray]
    manifest: dict
    folder: Optional[Path] = None   # cache entry (None for in-memory text)
    reused: bool = False            # True when read from the cache


def cache_root() -> Path:
    """``$RNNKIT_CACHE_DIR/tokens``, else ``~/.cache/rnnkit/tokens`` (``rnnkit.data.cache``)."""
    return cache_dir("tokens")


def cache_key(files: Sequence[InputFile], spec: TokenSpec, vocab: Optional[Vocab]) -> str:
    ident = {"version": VERSION, "inputs": [f.to_json() for f in files], "spec": asdict(spec),
             "vocab": None if vocab is None else _vocab_hash(vocab)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def _vocab_hash(vocab: Vocab) -> str:
    return hashlib.sha256(json.dumps(vocab.to_json(), ensure_ascii=False).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------- entry
def prepare_text(source: Union[str, Sequence[InputFile]], spec: TokenSpec, *, vocab: Optional[Vocab] = None,
                 cache: bool = True, progress: bool = False) -> PreparedText:
    """Tokenise ``source`` (files from ``resolve_inputs``, or a ``str`` of text) into ids.

    ``vocab`` given: encode with it (unknown tokens -> ``<unk>``); else build it from the training
    part. Files are cached under :func:`cache_root` (``cache=False``: prepared again, replacing
    the entry); a ``str`` is tokenised in memory.
    """
    if spec.level not in ("char", "word", "bpe"):
        raise UserError(f"unknown text level {spec.level!r}; choose char, word or bpe")
    if isinstance(source, str):
        return _build(source, spec, vocab, folder=None, progress=progress)
    folder = cache_root() / cache_key(source, spec, vocab)
    if not cache:
        shutil.rmtree(folder, ignore_errors=True)
    out, reused = build_once(folder, lambda: _load(folder),
                             lambda tmp: _build(source, spec, vocab, folder=tmp, progress=progress))
    out.reused = reused
    return out


def _load(folder: Path) -> Optional[PreparedText]:
    """The cache entry in ``folder`` if complete and consistent, else None."""
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        return None
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        if manifest.get("version") != VERSION:
            return None
        if manifest.get("level") == "bpe":
            from rnnkit.data.bpe import BPEVocab
            vocab = BPEVocab.load_file(folder / "tokenizer.json")
        else:
            vocab = Vocab.from_json(json.loads((folder / "vocab.json").read_text(encoding="utf-8")))
        dtype = np.dtype(manifest["dtype"])
        arrays = []
        for part in ("train", "val"):
            n = manifest["tokens"][part]
            path = folder / f"{part}.bin"
            if n is None:
                arrays.append(None)
                continue
            if path.stat().st_size != n * dtype.itemsize:
                return None
            arrays.append(TokenArray(dtype, n, path=path))
    except (OSError, KeyError, TypeError, ValueError, UserError):
        return None
    return PreparedText(vocab, arrays[0], arrays[1], manifest, folder=folder, reused=True)


# ---------------------------------------------------------------------------------------- build
class _Sink:
    """Appends id arrays to ``folder/name`` (or keeps them in memory when ``folder`` is None)."""

    def __init__(self, folder: Optional[Path], name: str, dtype: np.dtype) -> None:
        self.dtype, self.n = np.dtype(dtype), 0
        self.path = folder / name if folder is not None else None
        self.fh = open(self.path, "wb") if self.path is not None else None  # noqa: SIM115
        self.parts: list[np.ndarray] = []

    def write(self, ids: np.ndarray) -> None:
        ids = ids.astype(self.dtype, copy=False)
        self.n += len(ids)
        if self.fh is not None:
            self.fh.write(ids.tobytes())
        else:
            self.parts.append(ids)

    def finish(self) -> TokenArray:
        if self.fh is not None:
            self.fh.close()
            return TokenArray(self.dtype, self.n, path=self.path)
        arr = np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)
        return TokenArray(self.dtype, self.n, array=arr)

    def blocks(self, size: int = _REMAP_BLOCK) -> Iterator[np.ndarray]:
        """Read back what was written (after ``finish``)."""
        if self.path is None:
            yield from self.parts
            return
        with open(self.path, "rb") as fh:
            while buf := fh.read(size * self.dtype.itemsize):
                yield np.frombuffer(buf, dtype=self.dtype)


def _build(source: Union[str, Sequence[InputFile]], spec: TokenSpec, vocab: Optional[Vocab],
           folder: Optional[Path], progress: bool) -> PreparedText:
    t0 = time.monotonic()
    stream = TextStream(source, spec.val_fraction)
    total = stream.total_bytes
    passes = 2 if spec.level == "char" and vocab is None else 1
    extra = total if spec.level == "bpe" and vocab is None else 0  # the pass that draws the BPE's sample
    from tqdm import tqdm

    bar = tqdm(total=total * passes + extra, desc=f"preparing {spec.level} tokens", unit="B", unit_scale=True,
               unit_divisor=1024, file=sys.stderr, leave=False, dynamic_ncols=True, delay=1.0, disable=not progress)
    stream.on_bytes = bar.update
    try:
        build = {"char": _build_chars, "word": _build_words, "bpe": _build_bpe}[spec.level]
        vocab, arrays, stats = build(stream, spec, vocab, folder)
    finally:
        bar.close()
    seconds = time.monotonic() - t0
    manifest = {
        "version": VERSION, "level": spec.level, "spec": asdict(spec),
        "inputs": [] if isinstance(source, str) else [f.to_json() for f in source],
        "bytes": stream.total_bytes, "dtype": arrays[0].dtype.name, "vocab_size": len(vocab),
        "tokens": {"train": len(arrays[0]), "val": None if arrays[1] is None else len(arrays[1])},
        "characters": stats["characters"], "seconds": round(seconds, 3),
        "bytes_per_second": round(stream.total_bytes / max(seconds, 1e-9)),
    }
    if folder is not None:
        atomic_write_text(folder / "vocab.json", json.dumps(vocab.to_json(), ensure_ascii=False))
        if getattr(vocab, "tokenizer", None) is not None:  # BPE: the whole tokenizer, Hugging Face's file
            vocab.tokenizer.save(str(folder / "tokenizer.json"))
        tmp = folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        tmp.replace(folder / "manifest.json")  # last: marks the entry complete
    return PreparedText(vocab, arrays[0], arrays[1], manifest, folder=folder)


def _empty(stream: TextStream) -> UserError:
    return UserError(f"{stream.name}: empty text (no characters to learn from)")


def _codepoints(text: str) -> np.ndarray:
    """(len(text),) uint32 code points, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _sinks(folder: Optional[Path], dtype: np.dtype, split: bool, suffix: str = ".bin") -> list[_Sink]:
    names = ["train", "val"] if split else ["train"]
    return [_Sink(folder, name + suffix, dtype) for name in names]


def _finish(sinks: list[_Sink]) -> tuple[TokenArray, Optional[TokenArray]]:
    arrays = [s.finish() for s in sinks]
    return arrays[0], arrays[1] if len(arrays) > 1 else None


def _build_chars(stream: TextStream, spec: TokenSpec, vocab: Optional[Vocab], folder: Optional[Path]):
    chars = [0, 0]
    if vocab is None:
        counts = np.zeros(_MAX_CODEPOINT, dtype=np.int64)  # of the training part only
        content = False
        for part, text in stream:
            cps = _codepoints(text.lower() if spec.lowercase else text)
            chars[part] += len(cps)
            if part == 0:
                c = np.bincount(cps)
                counts[:len(c)] += c
            content = content or bool(text.strip())
        if not content:
            raise _empty(stream)
        seen = np.flatnonzero(counts)
        vocab = Vocab.from_counts({chr(cp): int(counts[cp]) for cp in seen}, "char", None, spec.min_freq,
                                  spec.lowercase)
    lut = np.zeros(_MAX_CODEPOINT, dtype=dtype_for(len(vocab)))
    for i, tok in enumerate(vocab.tokens[1:], start=1):
        if len(tok) == 1:
            lut[ord(tok)] = i
    sinks = _sinks(folder, lut.dtype, spec.val_fraction is not None)
    chars = [0, 0]
    for part, text in stream:
        cps = _codepoints(text.lower() if spec.lowercase else text)
        chars[part] += len(cps)
        sinks[part].write(lut[cps])
    if sum(chars) == 0:
        raise _empty(stream)
    return vocab, _finish(sinks), {"characters": {"train": chars[0], "val": chars[1]}}


def _build_words(stream: TextStream, spec: TokenSpec, vocab: Optional[Vocab], folder: Optional[Path]):
    ids_of: dict[str, int] = {"\n": 0}   # provisional ids, first seen first; 0 = line break = <eos>
    counts = np.zeros(0, dtype=np.int64)
    split = spec.val_fraction is not None
    prov = _sinks(folder, np.dtype(np.uint32), split, suffix=".prov")  # temporary
    chars, prev_nl = [0, 0], True
    for part, text in stream:
        chars[part] += len(text)
        toks = _WORD_NL_RE.findall(text.lower() if spec.lowercase else text)
        for t in set(toks).difference(ids_of):
            ids_of[t] = len(ids_of)
        ids = np.fromiter(map(ids_of.__getitem__, toks), dtype=np.uint32, count=len(toks))
        # a line break right after a line break (or at the start) ends an empty line: no <eos>
        nl = ids == 0
        before = np.empty_like(nl)
        if len(nl):
            before[0], before[1:] = prev_nl, nl[:-1]
            prev_nl = bool(nl[-1])
        ids = ids[~(nl & before)]
        prov[part].write(ids)
        if part == 0 and vocab is None:
            c = np.bincount(ids, minlength=len(ids_of))
            if len(c) > len(counts):
                counts = np.concatenate([counts, np.zeros(len(c) - len(counts), np.int64)])
            counts[:len(c)] += c
    n_prov = sum(len(s.finish()) for s in prov)
    itos = [EOS if t == "\n" else t for t in ids_of]
    if vocab is None:
        if len(counts) < 2 or counts[1:].sum() == 0:
            raise _empty(stream)
        vocab = Vocab.from_counts({itos[i]: int(c) for i, c in enumerate(counts) if c}, "word",
                                  spec.max_vocab, spec.min_freq, spec.lowercase)
    elif n_prov == 0:
        raise _empty(stream)
    lut = np.fromiter((vocab.stoi.get(t, 0) for t in itos), dtype=dtype_for(len(vocab)), count=len(itos))
    sinks = _sinks(folder, lut.dtype, split)
    for src, dst in zip(prov, sinks):
        for block in src.blocks():
            dst.write(lut[block])
        if src.path is not None:
            src.path.unlink()
    return vocab, _finish(sinks), {"characters": {"train": chars[0], "val": chars[1]}}


def _build_bpe(stream: TextStream, spec: TokenSpec, vocab: Optional[Vocab], folder: Optional[Path]):
    from rnnkit.data.bpe import BPEVocab, train_bpe

    if vocab is None:
        vocab = BPEVocab(train_bpe(_spread_sample(stream, BPE_SAMPLE_BYTES), spec.max_vocab or 10000,
                                   max(spec.min_freq, 2)))
    if not isinstance(vocab, BPEVocab):
        raise UserError("--level bpe needs a BPE tokenizer vocabulary")
    dtype = dtype_for(len(vocab))
    sinks = _sinks(folder, dtype, spec.val_fraction is not None)
    chars, content = [0, 0], False
    for part, text in stream:
        chars[part] += len(text)
        content = content or bool(text.strip())
        for ids in vocab.encode_ids(text):
            sinks[part].write(np.asarray(ids, dtype=dtype))
    if not content:
        raise _empty(stream)
    return vocab, _finish(sinks), {"characters": {"train": chars[0], "val": chars[1]}}


def _spread_sample(stream: TextStream, size: int) -> Iterator[str]:
    """About ``size`` bytes of the training part, taken as the head of every piece (cut after a line
    break), so that the merges see the whole corpus and not just its first files; one reading pass."""
    train = stream.total_bytes * (1.0 - (stream.val_fraction or 0.0))
    share = min(1.0, size / max(train, 1.0))
    for part, text in stream:
        if part != 0:
            return
        if share >= 1.0:
            yield text
            continue
        k = int(len(text) * share)
        end = text.find("\n", k, k + 4096)  # a file of one long line is cut mid-line (only the sample)
        yield text[:(k if end < 0 else end + 1)]
