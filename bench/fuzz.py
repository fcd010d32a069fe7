"""Fuzz every file loader and ``rnnkit.load``: outcomes over >= 10,000 mutated inputs each (issue 15).

Each target starts from small valid seed files and applies a seeded random mutator: byte flips,
inserted "interesting" tokens (``nan``, ``inf``, ``1e39``, a 400-digit number, ``\\x00``,
invalid UTF-8, separators), deleted / duplicated / truncated spans, and format-aware edits
(WAV header fields, ``.npz`` array dtypes and shapes, manifest JSON values, model-folder files).
Every input runs in this process under a per-input timer (``signal.setitimer``) that counts a
hang, and a memory cap (``RLIMIT_AS``) that turns a runaway allocation into an exception.

Outcomes per target: ``ok`` (valid data, checked: no NaN/inf or out-of-range values),
``UserError`` (a one-line user error), ``bad_ok`` (returned garbage: a bug), ``hang``, and any
other exception by type (a bug: the CLI would print a traceback). The model folder is fuzzed in
two families: file damage (truncated/NaN/missing safetensors, broken JSON, missing files) and
config values (types and sizes of hyper-parameters: the config schema, issue 15 / 13).

Run: ``nice python bench/fuzz.py [--quick] [--n N]``; writes ``bench/results/fuzz.json``
(``fuzz.quick.json``) and prints a Markdown table (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import log, machine_info, markdown_table, write_results  # noqa: E402

TIMEOUT_S = 2.0          # per input; every loader handles these small files in milliseconds
MEMORY_CAP = 8 * 1024 ** 3  # address space: a 100 GB allocation fails at once instead of swapping/OOM
N_FULL, N_QUICK = 10_000, 300

# Tokens that broke parsers before, or that a careless export writes.
TOKENS = [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e39", b"-1e400", b"1e20", b"1e16", b"9" * 400,
          b"0x1p3", b"1_000", b"-0", b"", b",", b":", b";", b"\t", b"\n", b"\r\n", b'"', b"'", b"?", b"\x00",
          b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", "\u2028".encode(), "\uff11".encode(), "é".encode(),
          b"@data", b"@classLabel", b"true", b"false", b"null", b"{", b"}", b"[", b"]", b"2262-04-12",
          b"1677-09-21", b"9999-12-31", b"2020-02-30", b"  ", b"#", b"-", b".", b"e", b"1e-400"]


class Hang(BaseException):
    """Raised by the timer; a BaseException so that loaders' ``except Exception`` cannot swallow it."""


def _alarm(signum, frame):
    raise Hang()


# ----------------------------------------------------------------------------- mutation
def mutate(data: bytes, rng: np.random.Generator, max_ops: int = 4) -> bytes:
    """1..max_ops random byte-level edits of ``data`` (half the time one)."""
    b = bytearray(data)
    for _ in range(min(max_ops, int(rng.geometric(0.5)))):  # mostly one or two edits: deeper paths stay reachable
        op = int(rng.integers(0, 9))
        n = len(b)
        i = int(rng.integers(0, n + 1))
        if op == 0 and n:  # flip a byte
            b[min(i, n - 1)] = int(rng.integers(0, 256))
        elif op in (1, 2):  # insert a token
            b[i:i] = TOKENS[int(rng.integers(len(TOKENS)))]
        elif op == 3 and n:  # replace a number/word-ish field with a token
            j = min(n, i + int(rng.integers(1, 12)))
            b[i:j] = TOKENS[int(rng.integers(len(TOKENS)))]
        elif op == 4 and n:  # delete a span
            del b[i:min(n, i + int(rng.integers(1, 40)))]
        elif op == 5 and n:  # duplicate a span
            j = min(n, i + int(rng.integers(1, 200)))
            b[j:j] = b[i:j]
        elif op == 6:  # truncate
            del b[i:]
        elif op == 7:  # random bytes
            b[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 9))).astype(np.uint8))
        elif op == 8:  # swap two lines
            lines = bytes(b).split(b"\n")
            if len(lines) > 2:
                a, c = rng.integers(0, len(lines), 2)
                lines[a], lines[c] = lines[c], lines[a]
                b = bytearray(b"\n".join(lines))
    return bytes(b)


JSON_VALUES: list[Any] = [None, True, False, 0, 1, -1, 2, 7, 0.5, -3.25, "", "x", "../../etc/passwd", "a\x00b",
                          [], [1, 2], {}, {"a": 1}, "1e400", float("nan"), float("inf"), 10 ** 30, "é"]
BIG_VALUES: list[Any] = [10 ** 9, 2 ** 31 - 1, 10 ** 6, 4096]  # sizes: the config schema's business


def json_mutate(obj: Any, rng: np.random.Generator, pool: list[Any]) -> Any:
    """Replace, delete or wrap one random node of a JSON value."""
    paths: list[tuple] = []

    def walk(o, path):
        paths.append(path)
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, path + (k,))
        elif isinstance(o, list):
            for k, v in enumerate(o[:20]):
                walk(v, path + (k,))

    walk(obj, ())
    path = paths[int(rng.integers(len(paths)))]
    if not path:
        return pool[int(rng.integers(len(pool)))]
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    op = int(rng.integers(0, 4))
    if op == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif op == 1:
        parent[path[-1]] = [parent[path[-1]]]
    else:
        parent[path[-1]] = pool[int(rng.integers(len(pool)))]
    return obj


def deep_json(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


# ----------------------------------------------------------------------------- checks of returned data
def finite_ok(a: Optional[np.ndarray], limit: float = 1e15) -> Optional[str]:
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        return "non-finite values returned"
    if a.size and np.abs(a).max() > limit:
        return f"value {np.abs(a).max():.3g} returned"
    return None


def check_sequences(d) -> Optional[str]:
    if len(d) == 0:
        return "no examples"
    if d.kind == "numeric":
        if d.lengths.min() < 1 or d.offsets[-1] != len(d.steps):
            return "bad lengths"
        return finite_ok(d.steps)
    if not all(isinstance(t, str) and t.strip() for t in d.texts):
        return "empty text example"
    return None


# ----------------------------------------------------------------------------- seeds
def ts_seed() -> bytes:
    rng = np.random.default_rng(1)
    lines = ["# tiny UEA file", "@problemName Tiny", "@timeStamps false", "@missing false", "@univariate false",
             "@dimensions 2", "@equalLength false", "@classLabel true a b", "@data"]
    for i in range(8):
        T = 3 + i % 4
        dims = [",".join(f"{v:.3f}" for v in rng.normal(size=T)) for _ in range(2)]
        lines.append(":".join(dims) + ":" + "ab"[i % 2])
    return ("\n".join(lines) + "\n").encode()


def csv_seeds() -> list[bytes]:
    rng = np.random.default_rng(2)
    num = "sequence,label\n" + "".join(
        f"{' '.join(f'{v:.2f}' for v in rng.normal(size=4 + i % 3))},{'xy'[i % 2]}\n" for i in range(10))
    txt = "text,label\n" + "".join(f"{w},{l}\n" for w, l in
                                   [("anna", "it"), ("marco", "it"), ("john", "en"), ("smith", "en"),
                                    ("hans", "de"), ("\"o'neil, jr\"", "en")])
    return [num.encode(), txt.encode()]


def series_seeds() -> list[tuple[bytes, dict]]:
    rng = np.random.default_rng(3)
    days = np.datetime64("2020-01-01") + np.arange(40)
    a = "ds,y\n" + "".join(f"{d},{10 + v:.3f}\n" for d, v in zip(days, rng.normal(size=40).cumsum()))
    months = [f"2019-{m:02d}-01" for m in range(1, 13)] + [f"2020-{m:02d}-01" for m in range(1, 13)]
    b = "unique_id,ds,y,price\n" + "".join(f"{sid},{m},{100 + i * k:.1f},{1.5 + i % 3}\n"
                                          for k, sid in enumerate(["s1", "s2"]) for i, m in enumerate(months))
    c = "t,y\n" + "".join(f"{3 * i},{np.sin(i / 3):.4f}\n" for i in range(30))
    return [(a.encode(), {"time_col": "ds"}),
            (b.encode(), {"time_col": "ds", "id_col": "unique_id", "past_cols": ["price"]}),
            (c.encode(), {"time_col": "t"})]


def wav_bytes(samples: np.ndarray, rate: int = 16000, channels: int = 1, fmt: int = 1, bits: int = 16,
              data_size: Optional[int] = None) -> bytes:
    """A RIFF/WAVE file with every header field given explicitly (so it can lie)."""
    if fmt == 3:
        data = samples.astype("<f4").tobytes() if bits == 32 else samples.astype("<f8").tobytes()
    else:
        data = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    block = channels * bits // 8
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, fmt, channels, rate, rate * block & 0xFFFFFFFF, block & 0xFFFF, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + fmt_chunk + struct.pack("<4sI", b"data", size & 0xFFFFFFFF) + data
    return struct.pack("<4sI", b"RIFF", (len(body)) & 0xFFFFFFFF) + body


def wav_case(rng: np.random.Generator) -> bytes:
    t = np.arange(3200) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    kind = int(rng.integers(0, 4))
    if kind == 0:  # header fields that lie
        fields = dict(rate=int(rng.choice([0, 1, 999, 8000, 16000, 44100, 384000, 384001, 2 ** 31 - 1, 2 ** 32 - 1])),
                      channels=int(rng.choice([0, 1, 2, 7, 255, 65535])),
                      fmt=int(rng.choice([0, 1, 1, 3, 6, 7, 0xFFFE])), bits=int(rng.choice([0, 8, 16, 16, 24, 32, 64, 7])),
                      data_size=int(rng.choice([0, 1, 6400, 2 ** 31, 2 ** 32 - 1])) if rng.random() < 0.5 else None)
        if fields["fmt"] == 3 and fields["bits"] not in (32, 64):
            fields["bits"] = 32
        return wav_bytes(wave, **fields)
    if kind == 1:  # float samples with extreme values
        w = wave.copy()
        idx = rng.integers(0, len(w), int(rng.integers(1, 5)))
        w[idx] = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1e4, 1e3, 2.0, 1e-30, 0.0], len(idx))
        if rng.random() < 0.3:
            w[:] = 0.0
        return wav_bytes(w, fmt=3, bits=int(rng.choice([32, 64])))
    base = wav_bytes(wave, rate=int(rng.choice([8000, 16000, 44100])), channels=1)
    return mutate(base, rng)


# ----------------------------------------------------------------------------- targets
@dataclass
class Target:
    """make(rng, work) writes one input under ``work`` and returns (path, family); run(path) loads it
    and returns an error string for garbage (None when the data is valid)."""

    name: str
    make: Callable[[np.random.Generator, Path], tuple[Path, str]]
    run: Callable[[Path], Optional[str]]


def _write(work: Path, name: str, data: bytes) -> Path:
    p = work / name
    p.write_bytes(data)
    return p


def targets(work: Path) -> list[Target]:
    from rnnkit.data.audio import load_audio
    from rnnkit.data.sequences import read_sequences
    from rnnkit.data.series import check_lengths, load_series
    from rnnkit.data.text import read_text
    from rnnkit.data.vocab import Vocab, tokenize
    from rnnkit.tasks.speech.data import read_dataset

    csvs, ts = csv_seeds(), ts_seed()
    series = series_seeds()
    text_seed = (Path(__file__).resolve().parents[1] / "rnnkit/data/datasets/shakespeare/shakespeare.txt").read_bytes()[:3000]

    def seq_csv(rng, w):
        return _write(w, "data.csv", mutate(csvs[int(rng.integers(2))], rng)), "bytes"

    def seq_npz(rng, w):
        p = w / "data.npz"
        if rng.random() < 0.25:  # byte damage of a valid file
            buf = io.BytesIO()
            np.savez(buf, X=np.random.default_rng(0).normal(size=(6, 5, 2)).astype(np.float32), y=np.arange(6) % 2)
            p.write_bytes(mutate(buf.getvalue(), rng))
            return p, "bytes"
        arrays = {}
        shapes = [(), (6,), (6, 5), (6, 5, 2), (6, 5, 2, 1), (0, 5, 2), (6, 0, 2), (6, 5, 0), (1, 1, 1)]
        dtypes = ["float32", "float64", "float16", "int8", "int64", "uint8", "bool", "complex64", "U3", "S2",
                  "datetime64[s]"]
        if rng.random() < 0.95:
            shape = shapes[int(rng.integers(len(shapes)))]
            dt = dtypes[int(rng.integers(len(dtypes)))]
            X = np.random.default_rng(int(rng.integers(1 << 30))).normal(size=shape) * 3
            if X.size and rng.random() < 0.4:
                X.flat[int(rng.integers(X.size))] = rng.choice([np.nan, np.inf, 1e39, 1e20, -1e16, 1e300])
            arrays["X"] = X.astype(dt) if dt not in ("U3", "S2") else X.astype(str).astype(dt)
        if rng.random() < 0.9:
            n = int(rng.choice([6, 6, 6, 5, 0, 1]))
            arrays["y"] = [np.arange(n) % 2, np.array(["a", "b"] * 3)[:n], np.full(n, np.nan), np.zeros((n, 2)),
                           np.array(1), np.array([b"\xff", b"a"] * 3)[:n], np.arange(n) + 0.5][int(rng.integers(7))]
        if rng.random() < 0.3:
            arrays["lengths"] = [np.array([5, 4, 3, 2, 1, 5]), np.array([0] * 6), np.array([9] * 6),
                                 np.array([1.5] * 6), np.array(3), np.array([5] * 5)][int(rng.integers(6))]
        np.savez(p, **arrays)
        return p, "arrays"

    def seq_ts(rng, w):
        return _write(w, "data.ts", mutate(ts, rng)), "bytes"

    def seq_tsgz(rng, w):
        if rng.random() < 0.5:
            return _write(w, "data.ts.gz", gzip.compress(mutate(ts, rng))), "text-then-gzip"
        return _write(w, "data.ts.gz", mutate(gzip.compress(ts), rng)), "gzip-bytes"

    def class_folder(rng, w):
        d = w / "classes"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        files = {"alpha.txt": b"one two\nthree four\nfive\n", "beta.txt": b"six\nseven eight\nnine ten\n"}
        for name, data in files.items():
            if rng.random() < 0.7:
                data = mutate(data, rng)
            if rng.random() < 0.1:
                name = (mutate(name.encode(), rng, 1).decode("utf-8", "replace").replace("/", "_").replace("\x00", "_") or "x")[:100]
            if name in (".", ".."):
                name = "x.txt"
            (d / name).write_bytes(data)
        if rng.random() < 0.05:
            (d / "sub.txt").mkdir(exist_ok=True)
        return d, "files"

    def series_csv(rng, w):
        k = int(rng.integers(len(series)))
        return _write(w, f"series{k}.csv", mutate(series[k][0], rng)), f"seed{k}"

    def run_series(p: Path) -> Optional[str]:
        kw = series[int(p.stem[-1])][1]
        ss = load_series(p, target="y", quiet=True, **kw)
        check_lengths(ss, 3)
        for s in ss.series:
            bad = finite_ok(s.y) or finite_ok(s.past) or finite_ok(s.future)
            if bad:
                return bad
            t = s.times.astype(np.int64) if s.times.dtype.kind == "M" else s.times
            if len(t) > 1 and not np.all(np.diff(t) > 0):
                return "times not increasing"
            ft = ss.future_times(s, 3)
            ft = ft.astype(np.int64) if ft.dtype.kind == "M" else ft
            if len(ft) != 3 or not (ft[0] > t[-1] and np.all(np.diff(ft) > 0)):
                return "bad future times"
        return None

    def audio(rng, w):
        return _write(w, "audio.wav", wav_case(rng)), "wav"

    def run_audio(p: Path) -> Optional[str]:
        wave = load_audio(p)
        if wave.ndim != 1 or wave.size == 0 or wave.dtype != np.float32:
            return f"bad wave {wave.shape} {wave.dtype}"
        return finite_ok(wave, 1e4)

    def text(rng, w):
        return _write(w, "text.txt", mutate(text_seed, rng, 6)), "bytes"

    def run_text(p: Path) -> Optional[str]:
        s = read_text(p)
        for level in ("char", "word"):
            toks = tokenize(s, level, lowercase=False)
            Vocab.build(toks, level, max_size=100)
        return None if isinstance(s, str) and s.strip() else "empty text"

    manifest_lines = [{"audio": "a.wav", "text": "hello world", "duration": 1.5},
                      {"audio": "sub/b.flac", "text": "two", "duration": 0.7},
                      {"audio": "/abs/c.wav", "text": "three"}]

    def manifest(rng, w):
        r = rng.random()
        if r < 0.5:
            rows = json.loads(json.dumps(manifest_lines))
            k = int(rng.integers(len(rows)))
            rows[k] = json_mutate(rows[k], rng, JSON_VALUES)
            data = "\n".join(json.dumps(x) for x in rows).encode()
            family = "json-values"
        elif r < 0.52:
            data, family = deep_json(int(rng.choice([100, 10_000, 200_000]))), "deep-json"
        else:
            data = mutate("\n".join(json.dumps(x) for x in manifest_lines).encode(), rng)
            family = "bytes"
        return _write(w, "train.jsonl", data), family

    def run_manifest(p: Path) -> Optional[str]:
        utts = read_dataset(p)
        for u in utts:
            if not isinstance(u.text, str) or not isinstance(u.audio, Path):
                return "bad utterance types"
            if u.duration is not None and not (isinstance(u.duration, (int, float)) and 0 <= u.duration < float("inf")):
                return f"bad duration {u.duration!r}"
        return None

    def sequences(p: Path) -> Optional[str]:
        return check_sequences(read_sequences(p))

    return [Target("sequence CSV", seq_csv, sequences), Target("sequence .npz", seq_npz, sequences),
            Target("sequence .ts", seq_ts, sequences), Target("sequence .ts.gz", seq_tsgz, sequences),
            Target("class folder", class_folder, sequences), Target("series CSV", series_csv, run_series),
            Target("audio WAV", audio, run_audio), Target("text file", text, run_text),
            Target("speech manifest", manifest, run_manifest)]


# ----------------------------------------------------------------------------- model folders
def base_model(work: Path) -> tuple[Path, np.ndarray]:
    """A tiny real classifier folder (numeric GRU, hidden 8, one epoch) and inputs to predict."""
    import rnnkit

    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6, 2)).astype(np.float32)
    y = np.array(["a", "b"] * 12)
    X[y == "a"] += 1.0
    folder = work / "base_model"
    rnnkit.SequenceClassifier(hidden_size=8, epochs=1, progress=False, seed=0).fit(X, y).save(folder)
    return folder, X[:4]


def model_targets(work: Path) -> list[Target]:
    import rnnkit
    from safetensors.numpy import load_file, save_file

    base, X = base_model(work)
    files = sorted(p.name for p in base.iterdir())

    def fresh(w: Path) -> Path:
        d = w / "model"
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(base, d)
        return d

    def files_case(rng, w):
        d = fresh(w)
        op = int(rng.integers(0, 8))
        if op == 0:  # delete a file
            (d / files[int(rng.integers(len(files)))]).unlink()
        elif op == 1:  # byte damage of any file
            p = d / files[int(rng.integers(len(files)))]
            p.write_bytes(mutate(p.read_bytes(), rng))
        elif op == 2:  # truncate the weights
            p = d / "model.safetensors"
            data = p.read_bytes()
            p.write_bytes(data[: int(rng.integers(0, len(data)))])
        elif op == 3:  # NaN / inf / huge weights, a renamed, dropped, reshaped or retyped tensor
            t = load_file(str(d / "model.safetensors"))
            k = sorted(t)[int(rng.integers(len(t)))]
            how = int(rng.integers(0, 5))
            if how == 0:
                t[k] = t[k].copy()
                t[k].flat[int(rng.integers(t[k].size))] = rng.choice([np.nan, np.inf, -np.inf])
            elif how == 1:
                t[k + "_x"] = t.pop(k)
            elif how == 2:
                t.pop(k)
            elif how == 3:
                t[k] = np.zeros((3,) + t[k].shape, dtype=t[k].dtype)
            else:
                t[k] = t[k].astype(rng.choice([np.float16, np.int64, np.float64]))
            save_file(t, str(d / "model.safetensors"))
        elif op == 4:  # the config or an extra replaced by another JSON type / a deep nest
            name = [n for n in files if n.endswith(".json")][int(rng.integers(3))]
            data = deep_json(200_000) if rng.random() < 0.1 else json.dumps(
                JSON_VALUES[int(rng.integers(len(JSON_VALUES)))]).encode()
            (d / name).write_bytes(data)
        elif op == 5:  # a key of the config removed or its "task" changed
            cfg = json.loads((d / "config.json").read_text())
            if rng.random() < 0.5:
                cfg.pop(sorted(cfg)[int(rng.integers(len(cfg)))])
            else:
                cfg["task"] = JSON_VALUES[int(rng.integers(len(JSON_VALUES)))]
            (d / "config.json").write_text(json.dumps(cfg))
        elif op == 6:  # non-UTF-8 / binary JSON files
            name = [n for n in files if n.endswith(".json")][int(rng.integers(3))]
            (d / name).write_bytes(b"\xff\xfe" + bytes(rng.integers(0, 256, 40).astype(np.uint8)))
        else:  # values inside the extras (labels.json, scaler.json)
            name = [n for n in files if n.endswith(".json") and n != "config.json"][int(rng.integers(2))]
            obj = json.loads((d / name).read_text())
            (d / name).write_text(json.dumps(json_mutate(obj, rng, JSON_VALUES)))
        return d, "files"

    def values_case(rng, w):
        d = fresh(w)
        obj = json.loads((d / "config.json").read_text())
        pool = JSON_VALUES + (BIG_VALUES if rng.random() < 0.1 else [])
        (d / "config.json").write_text(json.dumps(json_mutate(obj, rng, pool)))
        return d, "config values"

    def run_model(p: Path) -> Optional[str]:
        m = rnnkit.load(str(p))
        proba = np.asarray(m.predict_proba(X))
        return finite_ok(proba) or (None if np.allclose(proba.sum(-1), 1, atol=1e-4) else "probabilities do not sum to 1")

    return [Target("rnnkit.load: damaged files", files_case, run_model),
            Target("rnnkit.load: config values", values_case, run_model)]


# ----------------------------------------------------------------------------- runner
def fuzz(target: Target, n: int, work: Path, seed: int) -> dict[str, Any]:
    """Run ``n`` inputs; counts by outcome, a few examples of every failure kind, seconds."""
    from rnnkit.errors import UserError

    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    for i in range(n):
        path, family = target.make(rng, work)
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)
        try:
            problem = target.run(path)
            outcome = "ok" if problem is None else "bad_ok"
            detail = problem or ""
        except UserError as exc:
            outcome, detail = "UserError", str(exc)
            if "\n" in detail:
                outcome = "multi-line UserError"
        except Hang:
            outcome, detail = "hang", ""
        except Exception as exc:  # noqa: BLE001 - the point: count every escaping exception by type
            outcome = type(exc).__name__
            detail = traceback.format_exc(limit=-3).strip().splitlines()[-1][:300] + " @ " + \
                " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)[-3:])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome not in ("ok", "UserError") and len(examples.setdefault(outcome, [])) < 3:
            keep = work.parent / "fuzz_failures" / target.name.replace(" ", "_").replace(":", "") / f"{outcome}_{i}"
            keep.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if path.is_dir() else shutil.copy)(path, keep)
            examples[outcome].append(f"[{family}] {detail} (input kept in {keep})")
    secs = time.perf_counter() - t0
    bugs = n - counts.get("ok", 0) - counts.get("UserError", 0)
    log(f"{target.name}: {n} inputs in {secs:.0f} s: {counts}")
    return {"target": target.name, "n": n, "counts": counts, "bugs": bugs, "seconds": round(secs, 1),
            "examples": examples}


def main(quick: bool = False, n: Optional[int] = None, only: Optional[str] = None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    n = n or (N_QUICK if quick else N_FULL)
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="rnnkit_fuzz_") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(tmp) / "work"
        work.mkdir()
        # Model building first (it may use memory legitimately), then the cap for the fuzzing.
        all_targets = targets(work) + model_targets(work)
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, old_limit[1]))
        try:
            for k, t in enumerate(all_targets):
                if only and only not in t.name:
                    continue
                r = fuzz(t, n, work, seed=1000 + k)
                results.append(r)
                c = r["counts"]
                other = {k2: v for k2, v in c.items() if k2 not in ("ok", "UserError", "hang", "bad_ok")}
                rows.append([t.name, r["n"], c.get("ok", 0), c.get("UserError", 0),
                             ", ".join(f"{k2} {v}" for k2, v in sorted(other.items())) or "0",
                             c.get("bad_ok", 0), c.get("hang", 0), r["seconds"]])
        finally:
            resource.setrlimit(resource.RLIMIT_AS, old_limit)
            signal.signal(signal.SIGALRM, old_handler)
            kept = Path(tmp) / "fuzz_failures"
            if kept.exists():
                dest = Path(tempfile.gettempdir()) / "rnnkit_fuzz_failures"
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(kept, dest)
                log(f"failing inputs kept in {dest}")
    table = markdown_table(["loader", "inputs", "ok", "UserError", "other exception", "garbage returned", "hang", "s"], rows)
    out = {"machine": machine_info(), "timeout_s": TIMEOUT_S, "memory_cap_gb": MEMORY_CAP / 1024 ** 3,
           "per_loader": n, "results": results, "table": table}
    write_results("fuzz", out, quick=quick)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Fuzz every rnnkit loader and rnnkit.load (issue 15).")
    ap.add_argument("--quick", action="store_true", help=f"{N_QUICK} inputs per loader instead of {N_FULL}")
    ap.add_argument("--n", type=int, help="inputs per loader")
    ap.add_argument("--only", help="run only targets whose name contains this")
    args = ap.parse_args()
    print(main(args.quick, args.n, args.only)["table"])
