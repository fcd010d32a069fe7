"""Stream UTF-8 text from ``--data`` (a file, a folder, a glob, ``.gz``/``.bz2``/``.xz`` files, or an
in-memory string) in bounded pieces, split into a training head and a validation tail.

    files = resolve_inputs("corpus/*.txt.gz")
    for part, text in TextStream(files, val_fraction=0.1):   # part 0 = train, 1 = validation
        ...                                                    # text: str of at most ~CHUNK bytes

Nothing ever holds the whole input as one Python string: files are read ``CHUNK`` bytes at a time
and each piece ends at a line break where there is one (so a word tokenizer never sees half a
line). Normalisation matches ``rnnkit.data.text.decode_text``: a BOM at the start of a file is
dropped, ``\\r\\n`` and ``\\r`` become ``\\n``; files are joined with a line break when one does not
end with it. The split is contiguous: the tail ``val_fraction`` of the (decompressed) bytes,
moved forward to the next line break, is the validation part.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional, Sequence, Union

from rnnkit.errors import UserError, exc_summary

CHUNK = 1 << 22          # bytes read per piece (4 MiB): big enough for numpy/regex speed, small for RAM
_SNIFF = 1 << 20         # a NUL byte in the first MiB of a file means binary
_BOM = b"\xef\xbb\xbf"
_SPLIT_SEARCH = 1 << 16  # a line break this close after the train/validation cut moves the cut to it
_OPENERS: dict[str, Callable[[str], BinaryIO]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


@dataclass(frozen=True)
class InputFile:
    """One input file as it was when read: the cache key is built from these fields."""
    path: Path
    size: int
    mtime_ns: int

    @property
    def compressed(self) -> bool:
        return self.path.suffix.lower() in _OPENERS

    def to_json(self) -> dict:
        return {"path": str(self.path), "size": self.size, "mtime_ns": self.mtime_ns}


def resolve_inputs(spec: Union[str, os.PathLike], what: str = "text") -> list[InputFile]:
    """Files named by ``spec``: a file, a folder (every non-hidden file below it, sorted) or a glob
    pattern (``*``, ``?``, ``[...]``; ``**`` recurses). UserError when nothing matches."""
    s = os.fspath(spec)
    p = Path(s)
    if p.is_file():
        paths = [p]
    elif p.is_dir():
        paths = sorted(f for f in p.rglob("*") if f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        if not paths:
            raise UserError(f"{p}: folder holds no {what} files")
    elif glob.has_magic(s):
        paths = sorted(Path(f) for f in glob.glob(s, recursive=True) if Path(f).is_file())
        if not paths:
            raise UserError(f"{s}: no files match this pattern")
    else:
        raise UserError(f"{p}: {what} file not found")
    out = []
    for f in paths:
        st = f.stat()
        out.append(InputFile(f.resolve(), st.st_size, st.st_mtime_ns))
    return out


def _open(f: InputFile) -> BinaryIO:
    opener = _OPENERS.get(f.path.suffix.lower())
    try:
        return opener(str(f.path)) if opener else open(f.path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UserError(f"{f.path}: cannot open ({exc.strerror or exc})") from None


def not_utf8_kind(head: bytes) -> str:
    """What a file that is not UTF-8 text looks like, from its first bytes: UTF-16/32 (Windows'
    "Unicode" text, named so the user knows to re-save it as UTF-8) or binary."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "is UTF-16 or UTF-32 text (it starts with a byte-order mark), not UTF-8"
    return "looks binary (contains NUL bytes)"


def _read(fh: BinaryIO, n: int, f: InputFile) -> bytes:
    try:
        return fh.read(n)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:  # a truncated or corrupt archive
        raise UserError(f"{f.path}: cannot read ({exc_summary(exc)})") from None


def decompressed_size(f: InputFile) -> int:
    """Bytes the file yields when read (a full decompression pass for .gz/.bz2/.xz: their headers
    do not hold a reliable size)."""
    if not f.compressed:
        return f.size
    n = 0
    with _open(f) as fh:
        while block := _read(fh, CHUNK * 4, f):
            n += len(block)
    return n


@dataclass
class _Source:
    """Something that yields raw bytes: a file, or an in-memory text (name for messages)."""
    name: str
    file: Optional[InputFile] = None
    data: Optional[bytes] = None

    def blocks(self) -> Iterator[bytes]:
        if self.data is not None:
            for i in range(0, len(self.data), CHUNK):
                yield self.data[i:i + CHUNK]
            return
        assert self.file is not None
        with _open(self.file) as fh:
            while block := _read(fh, CHUNK, self.file):
                yield block


class TextStream:
    """Re-iterable ``(part, text)`` pieces of the inputs (part 0 = train, 1 = validation tail).

    ``sources``: files from :func:`resolve_inputs`, or one ``str`` (in-memory text).
    ``val_fraction``: None keeps everything in part 0. ``on_bytes(n)`` is called as input bytes
    are consumed (progress bars).
    """

    def __init__(self, sources: Union[Sequence[InputFile], str], val_fraction: Optional[float] = None,
                 on_bytes: Optional[Callable[[int], None]] = None) -> None:
        if isinstance(sources, str):
            self.sources = [_Source("<text>", data=sources.encode("utf-8"))]
        else:
            self.sources = [_Source(str(f.path), file=f) for f in sources]
        if val_fraction is not None and not 0.0 < val_fraction < 1.0:
            raise UserError(f"validation fraction must lie in (0, 1), got {val_fraction}")
        self.val_fraction = val_fraction
        self.on_bytes = on_bytes
        self._total: Optional[int] = None

    @property
    def name(self) -> str:
        """The inputs, for messages: the first file's name (and how many more)."""
        more = len(self.sources) - 1
        return self.sources[0].name + (f" (and {more} more file{'s' * (more > 1)})" if more > 0 else "")

    @property
    def total_bytes(self) -> int:
        """Input bytes after decompression (one pass over compressed files, remembered)."""
        if self._total is None:
            self._total = sum(len(s.data) if s.data is not None else decompressed_size(s.file) for s in self.sources)
        return self._total

    def __iter__(self) -> Iterator[tuple[int, str]]:
        cut = None if self.val_fraction is None else int(self.total_bytes * (1.0 - self.val_fraction))
        done, part = 0, 0
        for piece, decode in self._pieces():
            if part == 0 and cut is not None and done + len(piece) > cut:
                k = _split_point(piece, max(cut - done, 0))
                if k:
                    yield 0, decode(0, k)
                if k < len(piece):
                    yield 1, decode(k, len(piece))
                part = 1
            else:
                yield part, decode(0, len(piece))
            done += len(piece)

    def _pieces(self) -> Iterator[tuple[bytes, Callable[[int, int], str]]]:
        """Normalised byte pieces, each ending at a line break where possible, with a decoder
        that names the file and line on invalid UTF-8."""
        ended_with_newline = True
        for src in self.sources:
            line, carry = 1, b""
            for block in self._clean_blocks(src):
                data = carry + block
                carry = b""
                if data.endswith(b"\r"):  # may be the first half of \r\n in the next block
                    data, carry = data[:-1], b"\r"
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                k = _cut_point(data)
                piece, carry = data[:k], data[k:] + carry
                if piece:
                    yield piece, _decoder(src.name, line, piece)
                    line += piece.count(b"\n")
                    ended_with_newline = piece.endswith(b"\n")
            if carry:
                piece = carry.replace(b"\r", b"\n")
                yield piece, _decoder(src.name, line, piece)
                ended_with_newline = piece.endswith(b"\n")
            if not ended_with_newline:  # files are joined line by line
                yield b"\n", _decoder(src.name, line, b"\n")
                ended_with_newline = True

    def _clean_blocks(self, src: _Source) -> Iterator[bytes]:
        """The source's blocks with a leading BOM removed (it may span blocks) and NUL bytes in
        the first ``_SNIFF`` bytes refused."""
        seen, head = 0, b""
        for block in self._blocks(src):
            if seen < _SNIFF and b"\x00" in block[:_SNIFF - seen]:
                kind = not_utf8_kind(block if seen == 0 else b"")
                raise UserError(f"{src.name}: {kind}; expected UTF-8 plain text")
            seen += len(block)
            if head is not None:
                head += block
                if len(head) < len(_BOM) and _BOM.startswith(head):
                    continue  # may still become a BOM
                block, head = (head[len(_BOM):] if head.startswith(_BOM) else head), None
            yield block
        if head:
            yield head

    def _blocks(self, src: _Source) -> Iterator[bytes]:
        for block in src.blocks():
            if self.on_bytes is not None:
                self.on_bytes(len(block))
            yield block


def _split_point(piece: bytes, at: int) -> int:
    """Where the training part ends: after the first line break at or after ``at - 1`` if one comes
    within ``_SPLIT_SEARCH`` bytes, else at ``at`` itself (moved to a character boundary)."""
    if at == 0:
        return 0
    nl = piece.find(b"\n", at - 1, at + _SPLIT_SEARCH)  # a cut right after a line break stays
    if nl >= 0:
        return nl + 1
    while at < len(piece) and (piece[at] & 0xC0) == 0x80:
        at += 1
    return at


def _cut_point(data: bytes) -> int:
    """End of the last whole line in ``data``; for a line longer than a block the last space;
    0 (wait) while there is neither and ``data`` is short; else the last UTF-8 character boundary
    (a piece never ends inside a character)."""
    nl = data.rfind(b"\n")
    if nl >= 0:
        return nl + 1
    sp = data.rfind(b" ")
    if sp >= 0:
        return sp + 1
    if len(data) < max(4 * CHUNK, 1 << 16):
        return 0  # no break at all yet: wait for more bytes (a word is only split past this length)
    j = len(data) - 1
    while j > 0 and len(data) - j < 4 and (data[j] & 0xC0) == 0x80:
        j -= 1  # back over continuation bytes to the character's lead byte
    if j < 0:
        return 0
    lead = data[j]
    need = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4 if lead >> 3 == 0b11110 else 1
    return len(data) if len(data) - j >= need else j


def _decoder(name: str, line: int, piece: bytes) -> Callable[[int, int], str]:
    """``decode(start, end)``: ``piece[start:end]`` as str, or a UserError naming file and line."""
    def decode(start: int, end: int) -> str:
        try:
            return piece[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            at = line + piece[:start + exc.start].count(b"\n")
            raise UserError(f"{name}: not valid UTF-8 (line {at}); convert it to UTF-8 plain text") from None
    return decode
