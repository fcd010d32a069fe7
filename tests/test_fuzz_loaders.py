"""Property-based fuzzing of every file loader (issue 15): whatever the bytes, a loader returns
valid data (no NaN/inf, no magnitude above 1e15 that float32 training would overflow) or raises
a one-line ``UserError`` -- never another exception. A fixed example budget keeps this fast;
``bench/fuzz.py`` runs >= 10,000 inputs per loader."""
from __future__ import annotations

import gzip
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rnnkit.data.audio import load_audio
from rnnkit.data.sequences import read_sequences
from rnnkit.data.series import check_lengths, load_series
from rnnkit.data.text import read_text
from rnnkit.data.vocab import Vocab, tokenize
from rnnkit.errors import UserError
from rnnkit.tasks.speech.data import read_dataset

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# Tokens that broke parsers before or that careless exports write.
TOKENS = [b"nan", b"inf", b"-inf", b"1e39", b"-1e400", b"1e20", b"9" * 400, b"", b",", b":", b"\n", b'"', b"?",
          b"\x00", b"\xff\xfe", b"\xc3\x28", "\u2028".encode(), b"@data", b"true", b"2262-04-12", b"1e-400", b" "]


def edits(seed: bytes):
    """Strategy: ``seed`` with up to 4 edits (insert a token or random bytes, overwrite, delete, truncate)."""
    edit = st.tuples(st.integers(0, 4), st.floats(0, 1), st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)),
                     st.integers(1, 30))

    def apply(ops) -> bytes:
        b = bytearray(seed)
        for op, where, payload, span in ops:
            i = int(where * len(b))
            if op == 0:
                b[i:i] = payload
            elif op == 1:
                b[i:i + len(payload)] = payload
            elif op == 2:
                del b[i:i + span]
            elif op == 3:
                del b[i:]
            else:
                b[i:i] = b[i:i + span]
        return bytes(b)

    return st.lists(edit, max_size=4).map(apply)


def valid_or_user_error(load, check=lambda r: None) -> None:
    """Run ``load()``: a UserError must be one line; a result must pass ``check``."""
    try:
        result = load()
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    check(result)


def finite(a, limit: float = 1e15) -> None:
    a = np.asarray(a, dtype=np.float64)
    assert np.all(np.isfinite(a)), "non-finite values returned"
    assert a.size == 0 or np.abs(a).max() <= limit


def check_sequences(d) -> None:
    assert len(d) > 0
    if d.kind == "numeric":
        assert d.steps.dtype == np.float32 and d.lengths.min() >= 1 and d.offsets[-1] == len(d.steps)
        finite(d.steps)
    else:
        assert all(isinstance(t, str) and t.strip() for t in d.texts)


# ----------------------------------------------------------------------------- classification data
CSV_NUM = b"sequence,label\n0.1 0.5 -2,a\n1 2 3 4,b\n0 0 1,a\n2.5 -1 0.25,b\n"
CSV_TXT = b"text,label\nanna,it\nmarco,it\njohn,en\n\"o'neil, jr\",en\n"


@FUZZ
@given(data=st.one_of(edits(CSV_NUM), edits(CSV_TXT)))
def test_sequence_csv(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("csv") / "d.csv"
    p.write_bytes(data)
    valid_or_user_error(lambda: read_sequences(p), check_sequences)


UCR_TSV = b"1\t-0.64788544\t-0.6419\t0.5\tNaN\n-1\t0.77\t1e-3\tNaN\tNaN\n2\t1\t2\t3\t4\n"
WIDE_CSV = b"t0,t1,label,t2\n1,2,a,3\n4,5,b,\n6,-1.5e2,a,7\n"


@FUZZ
@given(data=st.one_of(edits(UCR_TSV), edits(WIDE_CSV)), suffix=st.sampled_from([".tsv", ".csv"]),
       labelled=st.booleans())
def test_sequence_ucr_and_wide(tmp_path_factory, data, suffix, labelled):
    """One series per row (rnnkit/data/wide.py): UCR archive rows and wide tables, either separator."""
    p = tmp_path_factory.mktemp("wide") / f"d{suffix}"
    p.write_bytes(data.replace(b"\t", b",") if suffix == ".csv" else data.replace(b",", b"\t"))
    valid_or_user_error(lambda: read_sequences(p, labelled=labelled), check_sequences)


_X_DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.uint8, np.bool_, np.complex64,
                             np.dtype("U2"), np.dtype("datetime64[s]")])


@st.composite
def npz_arrays(draw):
    arrays = {}
    if draw(st.integers(0, 9)) > 0:  # X mostly present
        dtype = np.dtype(draw(_X_DTYPES))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
        if dtype.kind in "fc":
            elements = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                                 st.sampled_from([1e39, 1e20, -1e16, 3.0]))
            with np.errstate(over="ignore", invalid="ignore"):  # 1e39 -> float32 inf is part of the test
                arrays["X"] = draw(hnp.arrays(np.float64, shape, elements=elements)).astype(dtype)
        else:
            arrays["X"] = draw(hnp.arrays(dtype, shape))
    if draw(st.booleans()):
        n = draw(st.integers(0, 5))
        arrays["y"] = draw(st.sampled_from([np.arange(n) % 2, np.array(["a", "b", "c", "d", "e"])[:n],
                                            np.full(n, np.nan), np.zeros((n, 2)), np.array(1),
                                            np.array([b"\xff", b"a", b"b", b"c", b"d"])[:n]]))
    if draw(st.booleans()):
        arrays["lengths"] = draw(hnp.arrays(draw(st.sampled_from([np.int64, np.float32])),
                                            hnp.array_shapes(min_dims=0, max_dims=2, max_side=5)))
    return arrays


@FUZZ
@given(arrays=npz_arrays(), damage=st.none() | st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=4)))
def test_sequence_npz(tmp_path_factory, arrays, damage):
    p = tmp_path_factory.mktemp("npz") / "d.npz"
    np.savez(p, **arrays)
    if damage is not None:  # bytes overwritten somewhere in the zip
        b = bytearray(p.read_bytes())
        i = int(damage[0] * (len(b) - 1))
        b[i:i + len(damage[1])] = damage[1]
        p.write_bytes(bytes(b))
    valid_or_user_error(lambda: read_sequences(p), check_sequences)


TS = (b"@problemName Tiny\n@timeStamps false\n@univariate false\n@equalLength false\n@classLabel true a b\n@data\n"
      b"0.1,0.2,0.3:1,2,3:a\n0.5,0.4:2,1:b\n1.0,1.5,2.0,2.5:0,0,1,1:a\n-1,-2,-3:3,2,1:b\n")


@FUZZ
@given(data=edits(TS), gz=st.sampled_from(["plain", "gzip-after", "gzip-before"]))
def test_sequence_ts_and_ts_gz(tmp_path_factory, data, gz):
    d = tmp_path_factory.mktemp("ts")
    if gz == "plain":
        p = d / "d.ts"
        p.write_bytes(data)
    else:  # text damage inside a valid gzip, or damage of the compressed bytes (or a plain file named .gz)
        p = d / "d.ts.gz"
        p.write_bytes(gzip.compress(data) if gz == "gzip-after" else data if len(data) % 3 == 0
                      else gzip.compress(TS)[: len(data) % 97 + 10])
    valid_or_user_error(lambda: read_sequences(p), check_sequences)


@FUZZ
@given(a=edits(b"one two\nthree\n"), b=edits(b"four\nfive six\n"),
       names=st.tuples(st.sampled_from(["x.txt", "y.txt", "x.TXT", "x", ".txt"]), st.just("z.txt")))
def test_class_folder(tmp_path_factory, a, b, names):
    d = tmp_path_factory.mktemp("classes")
    (d / names[0]).write_bytes(a)
    (d / names[1]).write_bytes(b)
    valid_or_user_error(lambda: read_sequences(d), check_sequences)


# ----------------------------------------------------------------------------- series
SERIES = ("unique_id,ds,y,price\n" + "".join(f"{s},2020-{m:02d}-01,{10 + m * k},{1 + m % 3}\n"
                                             for k, s in ((1, "a"), (2, "b")) for m in range(1, 13))).encode()
SERIES_INT = ("t,y\n" + "".join(f"{2 * i},{np.sin(i):.3f}\n" for i in range(12))).encode()


def check_series(ss) -> None:
    for s in ss.series:
        finite(s.y), finite(s.past), finite(s.future)
        t = s.times.astype(np.int64)
        ft = ss.future_times(s, 2).astype(np.int64)
        assert np.all(np.diff(t) > 0) and ft[0] > t[-1] and ft[1] > ft[0]


@FUZZ
@given(data=edits(SERIES), data_int=edits(SERIES_INT), which=st.booleans())
def test_series_csv(tmp_path_factory, data, data_int, which):
    p = tmp_path_factory.mktemp("series") / "s.csv"
    p.write_bytes(data if which else data_int)
    kw = dict(time_col="ds", id_col="unique_id", past_cols=["price"]) if which else dict(time_col="t")

    def load():
        ss = load_series(p, "y", quiet=True, **kw)
        check_lengths(ss, 2)
        return ss

    valid_or_user_error(load, check_series)


def test_series_rejects_overflowing_values(tmp_path):
    """The issue's examples: a 400-digit number and a last target of 1e20 (which made predict write NaN)."""
    for bad in ("9" * 400, "1e20", "-2e15"):
        p = tmp_path / "s.csv"
        p.write_text("t,y\n" + "".join(f"{i},{i}\n" for i in range(20)) + f"20,{bad}\n")
        with pytest.raises(UserError, match=r"line 22"):
            load_series(p, "y", time_col="t")


# ----------------------------------------------------------------------------- audio
def wav(samples: np.ndarray, rate: int, channels: int, fmt: int, bits: int, data_size=None) -> bytes:
    """A RIFF/WAVE file with every header field explicit (so it can lie)."""
    with np.errstate(invalid="ignore"):  # NaN samples cast to int16 in PCM files: any value will do
        data = samples.astype("<f4").tobytes() if fmt == 3 else (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    block = max(channels * bits // 8, 0)
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + fmt_chunk + struct.pack("<4sI", b"data", size) + data
    return struct.pack("<4sI", b"RIFF", len(body)) + body


TONE = 0.3 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)


@FUZZ
@given(rate=st.sampled_from([0, 1, 999, 8000, 16000, 48000, 384001, 2 ** 31 - 1, 2 ** 32 - 1]),
       channels=st.sampled_from([0, 1, 2, 255, 65535]), fmt=st.sampled_from([1, 3, 6, 0xFFFE]),
       bits=st.sampled_from([0, 8, 16, 32, 24]), data_size=st.none() | st.sampled_from([0, 7, 2 ** 31, 2 ** 32 - 1]),
       extreme=st.lists(st.tuples(st.integers(0, 1599),
                                  st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e4, 2.0, 1e-30])), max_size=3),
       damage=st.none() | st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8)))
def test_audio_wav(tmp_path_factory, rate, channels, fmt, bits, data_size, extreme, damage):
    w = TONE.copy()
    for i, v in extreme:
        w[i] = v
    data = bytearray(wav(w, rate, channels, fmt, 32 if fmt == 3 else bits, data_size))
    if damage is not None:
        i = int(damage[0] * (len(data) - 1))
        data[i:i + len(damage[1])] = damage[1]
    p = tmp_path_factory.mktemp("wav") / "a.wav"
    p.write_bytes(bytes(data))

    def check(wave):
        assert wave.ndim == 1 and wave.size > 0 and wave.dtype == np.float32
        finite(wave, 1e4)

    valid_or_user_error(lambda: load_audio(p), check)


@pytest.mark.parametrize("rate, samples, match", [
    (2 ** 31 - 1, TONE, "sample rate 2147483647 Hz"),  # gave an empty transcript with exit 0
    (16000, np.r_[TONE, 1e30, -1e30], "amplitude 1e\\+30"),  # the two cancel in the mono average
    (16000, np.r_[TONE, np.nan], "NaN or infinite"),
])
def test_audio_rejects_the_issue_examples(tmp_path, rate, samples, match):
    p = tmp_path / "a.wav"
    p.write_bytes(wav(samples, rate, 1, 3, 32))
    with pytest.raises(UserError, match=match):
        load_audio(p)


# ----------------------------------------------------------------------------- text and manifests
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n".encode()


@FUZZ
@given(data=edits(TEXT))
def test_text_file(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("text") / "t.txt"
    p.write_bytes(data)

    def check(text):
        assert isinstance(text, str) and text.strip()
        for level in ("char", "word"):
            Vocab.build(tokenize(text, level, lowercase=False), level)

    valid_or_user_error(lambda: read_text(p), check)


def test_text_non_utf8_names_the_byte(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"hello\nw\xffrld\n")
    with pytest.raises(UserError, match=r"byte 7, line 2"):
        read_text(p)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)
ROW = st.fixed_dictionaries({}, optional={"audio": JSON | st.just("a.wav"), "text": JSON | st.just("hi"),
                                          "duration": JSON | st.just(1.5)})
MANIFEST = b'{"audio": "a.wav", "text": "hello", "duration": 1.5}\n{"audio": "/x/b.flac", "text": "two"}\n'


@FUZZ
@given(rows=st.lists(ROW | JSON, max_size=4), raw=edits(MANIFEST), which=st.booleans())
def test_speech_manifest(tmp_path_factory, rows, raw, which):
    p = tmp_path_factory.mktemp("manifest") / "m.jsonl"
    p.write_bytes("\n".join(json.dumps(r) for r in rows).encode() if which else raw)

    def check(utts):
        for u in utts:
            assert isinstance(u.audio, Path) and isinstance(u.text, str)
            assert u.duration is None or (isinstance(u.duration, (int, float)) and 0 <= u.duration < float("inf"))

    valid_or_user_error(lambda: read_dataset(p), check)


@pytest.mark.parametrize("content, match", [
    (b'{"audio": true, "text": "x"}\n', "'audio' must be"),  # TypeError before
    (b'{"audio": "a.wav", "text": "\xff"}\n', "not valid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # RecursionError
    (b'{"audio": "a.wav", "text": "x", "duration": NaN}\n', "'duration'"),
])
def test_manifest_issue_examples(tmp_path, content, match):
    p = tmp_path / "m.jsonl"
    p.write_bytes(content)
    with pytest.raises(UserError, match=match):
        read_dataset(p)


def test_ts_issue_examples(tmp_path):
    """A plain file named .ts.gz, non-UTF-8 bytes and inf/1e39 values: UserErrors, not tracebacks/training."""
    p = tmp_path / "d.ts.gz"
    p.write_bytes(TS)
    with pytest.raises(UserError, match="not a valid gzip file"):
        read_sequences(p)
    p.write_bytes(gzip.compress(TS.replace(b"@data", b"@d\xffta")))
    with pytest.raises(UserError, match="not valid UTF-8"):
        read_sequences(p)
    for bad in (b"inf", b"1e39"):
        q = tmp_path / "d.ts"
        q.write_bytes(TS.replace(b"0.5,0.4", b"0.5," + bad))
        with pytest.raises(UserError, match=r"d\.ts:8: dimension 0, value 2"):
            read_sequences(q)


def test_npz_scalar_x_is_a_user_error(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, X=np.array(3.0), y=np.arange(2))
    with pytest.raises(UserError, match=r"X must have shape"):
        read_sequences(p)
    buf = io.BytesIO()
    np.savez(buf, X=np.full((2, 3), 1e39), y=np.arange(2))  # float64 beyond float32: not silently inf
    p.write_bytes(buf.getvalue())
    with pytest.raises(UserError, match="example 0, step 0, feature 0"):
        read_sequences(p)
