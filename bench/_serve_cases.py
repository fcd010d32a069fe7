"""Adversarial requests for ``bench/serve_abuse.py``: what an attacker or a careless client sends.

``http_cases(task, valid, rng, n)`` returns at least ``n`` ``Case``s for one task server:
fixed families (malformed JSON, deep nesting, wrong types, huge values, big bodies, wrong
content types, unknown routes) and then seeded mutations of the task's valid bodies until
``n``. ``raw_cases`` are sent on raw sockets (lying Content-Length, slow bodies, broken HTTP).
Everything is deterministic for a given seed.
"""
from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

MB = 1024 * 1024
JSON = {"content-type": "application/json"}
BAD_VALUES: list[Any] = ["abc", "", None, True, False, -1, 0, 1, -(2 ** 63), 2 ** 64, 10 ** 30, 1e308, -1e308, 1e-300,
                         0.5, [], {}, [1, 2], [[1]], {"a": 1}, "Infinity", "NaN", "1e999", "\u0000", "😀" * 50,
                         "x" * 20_000, [None], [float(i) for i in range(50)]]
RAW_NUMBERS = [b"Infinity", b"-Infinity", b"NaN", b"1e999", b"-1e999", b"123456789012345678901234567890123456789",
               b"0x10", b"01", b"1.", b".5", b"+1", b"1e", b"--1"]


@dataclass
class Case:
    family: str
    method: str
    path: str
    body: Optional[bytes] = None
    headers: dict = field(default_factory=lambda: dict(JSON))


def routes(task: str) -> list[str]:
    return {"text": ["/predict", "/next-word"], "speech": ["/transcribe"]}.get(task, ["/predict"])


# ---------------------------------------------------------------------------- JSON routes
def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _leaves(obj: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaves(v, path + (k,))] + [path]
    if isinstance(obj, list) and obj:
        return [p for i, v in enumerate(obj[:5]) for p in _leaves(v, path + (i,))] + [path]
    return [path]


def _replace(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        return {**obj, head: _replace(obj[head], rest, value)}
    out = list(obj)
    out[head] = _replace(obj[head], rest, value)
    return out


def mutate(body: dict, rng: random.Random) -> tuple[str, bytes]:
    """One seeded mutation of a valid JSON body -> (family, raw bytes)."""
    op = rng.randrange(8)
    if op <= 2:  # a wrong value somewhere in the structure
        return "wrong type/value", _dumps(_replace(body, rng.choice(_leaves(body)), rng.choice(BAD_VALUES)))
    if op == 3:  # a raw JSON token Python's json would accept or choke on, in place of a number
        text = _dumps(body)
        digits = [i for i, c in enumerate(text) if chr(c).isdigit() and not chr(text[i - 1]).isdigit()]
        if digits:
            i = rng.choice(digits)
            j = i
            while j < len(text) and chr(text[j]) in "0123456789.e-+":
                j += 1
            return "raw number tokens", text[:i] + rng.choice(RAW_NUMBERS) + text[j:]
        return "raw number tokens", text.replace(b"{", b'{"x": NaN, ', 1)
    if op == 4:  # unknown key / missing key
        keys = list(body)
        if keys and rng.random() < 0.5:
            return "missing/unknown keys", _dumps({k: v for k, v in body.items() if k != rng.choice(keys)})
        return "missing/unknown keys", _dumps({**body, rng.choice(["lenght", "K", "", "__proto__", "x" * 300]): 1})
    if op == 5:  # truncated
        text = _dumps(body)
        return "malformed JSON", text[: rng.randrange(len(text))]
    if op == 6:  # random byte flips
        text = bytearray(_dumps(body))
        for _ in range(rng.randint(1, 4)):
            text[rng.randrange(len(text))] = rng.randrange(256)
        return "byte flips", bytes(text)
    depth = rng.choice([5, 17, 64, 199, 201, 5000])  # nesting inside a field
    key = rng.choice(list(body))
    return "deep nesting", _dumps(body).replace(f'"{key}": '.encode(), f'"{key}": '.encode() + b"[" * depth, 1) + b"]" * depth


def fixed_json_cases(task: str, valid: dict) -> list[Case]:
    route = routes(task)[0]
    cases = []
    for body in [b"", b"{", b"}", b"{]", b"nul", b"null", b"true", b"1", b"[]", b'""', b"{'a': 1}", b'{"a":1,}',
                 b"\xff\xfe\xfd", b"\x00" * 10, b'{"a": 01}', b'{"a": "\\ud800"}', b'{"a": "\\x"}', b"{" * 3 + b"}" * 3,
                 _dumps(valid) * 2, b" " * 1000, b"\n" * 1000]:
        cases.append(Case("malformed JSON", "POST", route, body))
    for d in (17, 50, 199, 200, 201, 1000, 100_000, 1_000_000):
        cases.append(Case("deep nesting", "POST", route, b"[" * d + b"]" * d))
        cases.append(Case("deep nesting", "POST", route, b'{"a":' * min(d, 200_000) + b"1" + b"}" * min(d, 200_000)))
        cases.append(Case("deep nesting", "POST", route, b"[" * d))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/xml", "image/png", "", "application/json; charset=latin-1", "*/*", "application/json" * 50):
        cases.append(Case("wrong content type", "POST", route, _dumps(valid), {"content-type": ctype}))
    cases.append(Case("wrong content type", "POST", route, b"a=1&b=2", {"content-type": "application/x-www-form-urlencoded"}))
    cases.append(Case("wrong content type", "POST", route, b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--",
                      {"content-type": "multipart/form-data; boundary=x"}))
    cases += big_bodies(route)
    return cases


def big_bodies(route: str) -> list[Case]:
    list_body = b'{"sequences": [' + b",".join([b'"ab"'] * (11 * MB // 5)) + b"]}"
    return [Case("big body", "POST", route, b" " * (11 * MB)),
            Case("big body", "POST", route, list_body),
            Case("big body", "POST", route, b"[" * (10 * MB + 10)),
            Case("big body", "POST", route, b"0" * (50 * MB)),
            Case("big body", "POST", route, b'{"prompt": "' + b"x" * (9 * MB) + b'"}')]


def task_value_cases(task: str, valid: dict) -> list[Case]:
    """Values over the limits, per task: each must be a 4xx, fast, without memory growth."""
    cases = []
    if task == "text":
        for body in ({"length": 10 ** 7}, {"length": 2001}, {"length": -1}, {"length": 2 ** 63}, {"length": 1.5},
                     {"temperature": 1e-300}, {"temperature": 1e308}, {"temperature": -1}, {"top_k": 0},
                     {"top_k": 10 ** 12}, {"top_p": 0}, {"top_p": 2}, {"seed": -1}, {"seed": 2 ** 64},
                     {"seed": "x"}, {"top_k": "x"}, {"prompt": "x" * 10_001}, {"prompt": "\ud800"},
                     {"prompt": "\x00\x01\x02" * 100, "length": 5}, {"prompt": "😀" * 5000, "length": 5}):
            cases.append(Case("huge/out-of-range values", "POST", "/predict", _dumps(body)))
        for body in ({"k": 10 ** 9}, {"k": 101}, {"k": 0}, {"k": ""}, {"k": -5}, {"k": 1e9}, {"prompt": ["a"]}):
            cases.append(Case("huge/out-of-range values", "POST", "/next-word", _dumps(body)))
        cases.append(Case("huge/out-of-range values", "POST", "/predict", b'{"length": Infinity}'))
    elif task == "classify":
        for seqs in (["a"] * 1001, ["a" * 10_001], [""], [], None, "abc", [[1, 2], [3, [4]]], [[[1, 2], [3]]],
                     [[1, None]], [[1e39]], [[[1.0] * 5] * 3], [[1.0] * 10], [["a"]], [1, 2, 3], [[[[1]]]]):
            cases.append(Case("huge/out-of-range values", "POST", "/predict", _dumps({"sequences": seqs})))
    elif task.startswith("forecast"):
        rows = valid["data"]
        variants = [rows[:1], rows[:2], [], [1, 2, 3], [dict(r, y=1e20) for r in rows], [dict(r, y=1e300) for r in rows],
                    [dict(r, y=None) for r in rows], [dict(r, t="x") for r in rows], [dict(r, t=10 ** 30) for r in rows],
                    [dict(r, t=1) for r in rows], [dict(r, id=[1]) for r in rows], [dict(r, t="2020-01-01") for r in rows],
                    [{k: v for k, v in r.items() if k != "t"} for r in rows], rows * 2, [dict(r, y=-1e38) for r in rows]]
        for data in variants:
            cases.append(Case("huge/out-of-range values", "POST", "/predict", _dumps({"data": data})))
        rows_over = [dict(id="a", t=i, y=1.0) for i in range(100_001)]
        cases.append(Case("huge/out-of-range values", "POST", "/predict", _dumps({"data": rows_over})))
        if task == "forecast-blend":  # past --max-combined-points (12,000): 81 x 100 months, 227 x 3 months
            for n_series, months in ((81, 100), (227, 3), (226, 3)):  # ... and the most 3-month series allowed
                over = [{"id": f"s{i}", "t": f"{2010 + m // 12}-{m % 12 + 1:02d}-01", "y": 1.0 + m}
                        for i in range(n_series) for m in range(months)]
                cases.append(Case("huge/out-of-range values", "POST", "/predict", _dumps({"data": over})))
        for qs in ([0.0], [1.0], [0.01], [0.5] * 51, ["0.1"], [-1]):
            cases.append(Case("huge/out-of-range values", "POST", "/predict", _dumps({"data": rows, "quantiles": qs})))
    return cases


# ---------------------------------------------------------------------------- audio
def wav_bytes(seconds: float, rate: int = 16000, amplitude: float = 0.3, subtype: str = "PCM_16",
              channels: int = 1, fmt: str = "WAV") -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    wave = (amplitude * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def audio_cases(rng: random.Random, n: int) -> list[Case]:
    ok = wav_bytes(0.3)
    fixed = [b"", b"not audio", b"RIFF", ok[:44], ok[:30], b"ID3" + bytes(1000), _dumps({"audio": "x"}),
             wav_bytes(61.0), wav_bytes(0.3, amplitude=0.0), wav_bytes(0.3, rate=8000), wav_bytes(0.3, rate=48000),
             wav_bytes(0.3, subtype="PCM_U8"), wav_bytes(0.3, channels=2), wav_bytes(0.3, fmt="FLAC"),
             wav_bytes(0.3, fmt="OGG", subtype="VORBIS"), bytes(rng.randrange(256) for _ in range(4096)),
             b"\x00" * (11 * MB)]
    floats = bytearray(wav_bytes(0.3, subtype="FLOAT"))
    floats[-400:] = np.full(100, 1e30, dtype=np.float32).tobytes()  # amplitude 1e30 in a float WAV
    fixed.append(bytes(floats))
    for offset, value in ((24, 0), (24, 1), (24, 2 ** 31 - 1), (22, 0), (22, 65535), (40, 2 ** 32 - 1), (4, 0),
                          (34, 3), (20, 3)):  # sample rate, channels, data size, RIFF size, bits, format
        patched = bytearray(ok)
        width = 2 if offset in (20, 22, 34) else 4
        patched[offset: offset + width] = value.to_bytes(width, "little")
        fixed.append(bytes(patched))
    cases = [Case("audio: broken/odd files", "POST", "/transcribe", b, {"content-type": "audio/wav"}) for b in fixed]
    while len(cases) < n:  # header fuzz: flip bytes in the first 64, or truncate
        data = bytearray(ok)
        if rng.random() < 0.7:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(64)] = rng.randrange(256)
        else:
            data = data[: rng.randrange(len(data))]
        cases.append(Case("audio: header fuzz", "POST", "/transcribe", bytes(data), {"content-type": "audio/wav"}))
    return cases


# ---------------------------------------------------------------------------- routes and raw HTTP
def route_cases(task: str) -> list[Case]:
    other = [r for r in ("/predict", "/next-word", "/transcribe") if r not in routes(task)]
    pairs = [("GET", "/"), ("POST", "/"), ("GET", routes(task)[0]), ("PUT", routes(task)[0]), ("DELETE", "/health"),
             ("POST", "/health"), ("GET", "/../../etc/passwd"), ("GET", "/predict/%00"), ("GET", "/" + "a" * 8000),
             ("OPTIONS", routes(task)[0]), ("PATCH", routes(task)[0]), ("GET", "/docs"), ("GET", "/openapi.json"),
             ("GET", "/health?x=" + "y" * 4000), ("HEAD", "/health")] + [("POST", r) for r in other]
    return [Case("unknown route/method", m, p, b"{}" if m in ("POST", "PUT", "PATCH") else None) for m, p in pairs]


def http_cases(task: str, valid: list[dict], rng: random.Random, n: int) -> list[Case]:
    cases = route_cases(task)
    if task == "speech":
        return cases + audio_cases(rng, n - len(cases))
    cases += fixed_json_cases(task, valid[0]) + task_value_cases(task, valid[0])
    while len(cases) < n:
        body = rng.choice(valid)
        route = routes(task)[1] if task == "text" and "k" in body else routes(task)[0]
        family, raw = mutate(body, rng)
        cases.append(Case(family, "POST", route, raw))
    return cases


def raw_requests(route: str) -> list[tuple[str, bytes]]:
    """(family, bytes) sent on a raw socket; each is answered or closed by the server."""
    head = f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
    return [
        ("lying Content-Length (short)", head + b"Content-Length: 2\r\n\r\n{}{}{}{}"),
        ("bad Content-Length", head + b"Content-Length: -1\r\n\r\n{}"),
        ("bad Content-Length", head + b"Content-Length: abc\r\n\r\n{}"),
        ("bad Content-Length", head + b"Content-Length: 99999999999999999999999\r\n\r\n{}"),
        ("bad Content-Length", head + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        ("bad chunking", head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
        ("bad chunking", head + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n"),
        ("bad chunking", head + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        ("broken HTTP", b"GARBAGE\r\n\r\n"),
        ("broken HTTP", b"GET /health HTTP/9.9\r\n\r\n"),
        ("broken HTTP", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"),
        ("broken HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200)),  # a TLS hello on plain HTTP
        ("broken HTTP", b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n"),
    ]
