"""Benchmark: abuse a real ``rnnkit serve`` per task, as an attacker and a careless client would.

For each task (forecast, text, classify, speech) a tiny model is trained here in seconds (speech:
one epoch on tones: the point is input handling, not accuracy), served by ``rnnkit serve`` in a
subprocess on 127.0.0.1 (default limits, ``--read-timeout 2`` so slow clients resolve quickly),
and sent:

- >= 2,000 adversarial requests (``bench/_serve_cases.py``): malformed JSON, wrong types, huge
  and out-of-range values, deep nesting, big bodies (11-50 MB), wrong content types, unknown
  routes, broken audio files and header fuzz, lying Content-Length, broken HTTP, slow bodies;
- 20 concurrent clients sending valid requests (10 each, 60 s cap);
- the maximal request (the largest the limits allow; repeated for 5 s when shorter) while ``/health``
  is polled every 10 ms;
- SIGINT while a maximal request runs (the server must exit within a few seconds).

Printed per task: 5xx count, crashes (server died, or a traceback in its log), p50/p99 latency of
valid requests, ``/health`` latency during the maximal request, peak RSS (VmHWM) of the server and its model
processes, summed.

    python bench/serve_abuse.py [--quick]      # or: rnnkit bench --only serve_abuse

Writes ``bench/results/serve_abuse.json`` (``serve_abuse.quick.json`` with --quick).
"""
from __future__ import annotations

import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import _serve_cases as cases_mod  # noqa: E402
from bench.common import ROOT, log, machine_info, markdown_table, run_quick_script, write_results  # noqa: E402

TASKS = ["forecast", "forecast-blend", "text", "classify", "speech"]
BLEND_SERIES = 80  # forecast-blend's maximal request: 80 series x (100 months + 50) = --max-combined-points (12,000)


# ---------------------------------------------------------------------------- models
def build_model(task: str, root: Path) -> tuple[Path, list[dict], dict]:
    """Train a tiny model; return (folder, valid request bodies, the maximal request body)."""
    import numpy as np

    folder = root / task
    if task == "forecast":
        import pandas as pd

        from rnnkit import Forecaster

        t = np.arange(80)
        df = pd.DataFrame({"id": np.repeat(["a", "b", "c"], 80), "t": np.tile(t, 3),
                           "y": np.concatenate([10 + s + np.sin(t / 3 + s) for s in range(3)])})
        Forecaster(horizon=4, hidden_size=8, epochs=3, progress=False).fit(df, "y", "t", "id").save(folder)
        rows = df[df.id == "a"].tail(24).to_dict("records")
        valid = [{"data": rows}, {"data": rows, "quantiles": [0.1, 0.9]},
                 {"data": df[df.id != "c"].groupby("id").tail(16).to_dict("records")}]
        big = [{"id": f"s{i % 1000}", "t": i // 1000, "y": float(i % 7)} for i in range(100_000)]
        return folder, valid, {"data": big, "quantiles": [0.1, 0.9]}
    if task == "forecast-blend":  # monthly dates: the default blends ETS/Theta, refitted per request
        import pandas as pd

        from rnnkit import Forecaster

        t = pd.date_range("2010-01-01", periods=100, freq="MS").strftime("%Y-%m-%d")
        k = np.arange(100)
        df = pd.DataFrame({"id": np.repeat(["a", "b", "c"], 100), "t": np.tile(t, 3),
                           "y": np.concatenate([10 + s + np.sin(2 * np.pi * k / 12 + s) for s in range(3)])})
        fc = Forecaster(horizon=4, hidden_size=8, epochs=3, progress=False).fit(df, "y", "t", "id")
        assert fc.config.combine == "blend", fc.config.combine
        fc.save(folder)
        rows = df[df.id == "a"].tail(36).to_dict("records")
        valid = [{"data": rows}, {"data": rows, "quantiles": [0.1, 0.9]},
                 {"data": df[df.id != "c"].groupby("id").tail(24).to_dict("records")}]
        big = [{"id": f"s{i}", "t": day, "y": float(10 + (i + j) % 7)}
               for i in range(BLEND_SERIES) for j, day in enumerate(t)]
        return folder, valid, {"data": big, "quantiles": [0.1, 0.9]}
    if task == "text":
        from rnnkit import TextModel

        lm = TextModel(level="char", hidden_size=64, embed_size=16, bptt=32, batch_size=8)
        lm.fit("the cat sat on the mat. the dog ate the hat. " * 80, epochs=2, progress=False, device="cpu")
        lm.save(folder)
        valid = [{"prompt": "the ", "length": 20, "seed": 1}, {"prompt": "the cat", "length": 10, "temperature": 0.5},
                 {"prompt": "the c", "k": 5}, {"prompt": "", "length": 5, "top_k": 3, "top_p": 0.9}]
        return folder, valid, {"prompt": "the cat sat " * 833, "length": 2000, "seed": 0}
    if task == "classify":
        from rnnkit import SequenceClassifier

        words = ["aaaa", "aaa", "aaaaa", "aa", "bbbb", "bbb", "bbbbb", "bb"] * 8
        clf = SequenceClassifier(hidden_size=32, epochs=10, progress=False, val_fraction=0.0)
        clf.fit(words, ["a" if w[0] == "a" else "b" for w in words]).save(folder)
        valid = [{"sequences": ["aaaa", "bbb"]}, {"sequences": ["ab" * 20, "b"]}, {"sequences": ["a"] * 20}]
        return folder, valid, {"sequences": ["ab" * 4500] * 111}  # 999,000 steps: just under --max-total-steps
    from rnnkit import SpeechRecognizer
    from rnnkit.data.audio import save_audio

    utts = []
    for i, text in enumerate(["one", "two", "one two", "two one"] * 2):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * np.arange(16000) / 16000)
        save_audio(root / f"utt{i}.wav", wave.astype(np.float32))
        utts.append((str(root / f"utt{i}.wav"), text))
    SpeechRecognizer(hidden_size=32, num_layers=1, conv_channels=4, epochs=1, progress=False,
                     batch_frames=2000).fit(utts).save(folder)
    return folder, [], {}


# ---------------------------------------------------------------------------- server
class Server:
    """``rnnkit serve`` in a subprocess on a free 127.0.0.1 port; its log goes to a file."""

    def __init__(self, model: Path, log_path: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        env.pop("RNNKIT_API_KEY", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", "--model", str(model),
                                      "--port", str(self.port), "--read-timeout", "2"],
                                     stdout=subprocess.DEVNULL, stderr=log_path.open("wb"), env=env)
        import httpx

        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> list[int]:
        """The server and its model processes (its children)."""
        kids = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            kids += [int(p) for p in (task / "children").read_text().split()]
        return [self.proc.pid, *kids]

    def memory_mb(self, field: str = "VmHWM") -> float:
        """Summed over the server and its model processes. VmHWM: peak resident memory so far; VmRSS: now."""
        total = 0.0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) / 1024
        return total

    def restarts(self) -> int:
        """Model processes replaced (past the time limit, or died)."""
        return self.log_path.read_text(errors="replace").count("starting a new one")

    def tracebacks(self) -> int:
        return self.log_path.read_text(errors="replace").count("Traceback")

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------- senders
def send_raw(port: int, data: bytes, head_len: int = 0, wait_s: float = 5.0) -> str:
    """Send ``data`` on a raw socket (headers first when ``head_len``, so an early answer is read
    before streaming a big body, as curl does); return the status code or how it ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        try:
            if head_len:
                s.sendall(data[:head_len])
                if select.select([s], [], [], 1.0)[0]:
                    return _status(s.recv(4096))
                for i in range(head_len, len(data), 1 << 16):
                    s.sendall(data[i: i + (1 << 16)])
            else:
                s.sendall(data)
            return _status(s.recv(4096))
        except socket.timeout:
            return "no answer"
        except (BrokenPipeError, ConnectionResetError):
            return "closed"


def _status(reply: bytes) -> str:
    parts = reply.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 and reply.startswith(b"HTTP/") else ("closed" if not reply else "junk")


def send_case(client, port: int, case) -> str:
    import httpx

    if case.body is not None and len(case.body) > 1024 * 1024:  # big bodies: headers first, like curl
        head = (f"{case.method} {case.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(case.body)}\r\n\r\n").encode()
        return send_raw(port, head + case.body, head_len=len(head))
    try:
        r = client.request(case.method, case.path, content=case.body, headers=case.headers)
        return str(r.status_code)
    except httpx.HTTPError as exc:
        return f"client error {type(exc).__name__}"


def slow_bodies(port: int, route: str, n: int = 5) -> list[tuple[str, float]]:
    """Clients that announce 100 kB and send 10 bytes: each must get 408 (not hang)."""
    out: list[tuple[str, float]] = []

    def one() -> None:
        start = time.perf_counter()
        head = (f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n{\"prompt\":").encode()
        out.append((send_raw(port, head, wait_s=15), time.perf_counter() - start))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def slow_headers(port: int, hold_s: float = 8.0) -> str:
    """A client that sends half its headers and stops: does the server close it within hold_s?"""
    with socket.create_connection(("127.0.0.1", port), timeout=hold_s) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        try:
            return "closed by server" if s.recv(4096) == b"" else "answered"
        except socket.timeout:
            return f"still open after {hold_s:g} s"


def valid_clients(base: str, route_bodies: list[tuple[str, bytes]], n_clients: int = 20, per_client: int = 10,
                  cap_s: float = 60.0) -> tuple[list[float], Counter]:
    import httpx

    latencies: list[float] = []
    statuses: Counter = Counter()
    stop_at = time.time() + cap_s

    def client(i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(per_client):
                if time.time() > stop_at:
                    return
                route, body = rng.choice(route_bodies)
                start = time.perf_counter()
                try:
                    status = str(c.post(route, content=body, headers={"content-type": "application/json"}).status_code)
                except httpx.HTTPError as exc:
                    status = f"client error {type(exc).__name__}"
                latencies.append(time.perf_counter() - start)
                statuses[status] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses


def during_max(base: str, route: str, body: bytes, ctype: str, min_s: float = 5.0, most: int = 20) -> dict:
    """Send the maximal request (again and again, one at a time, until ``min_s`` have passed or
    ``most`` were sent, so that a short one still gives a p99 of some hundred polls); poll /health
    every 10 ms meanwhile. Reports the status and seconds of the first one and how many were sent."""
    import httpx

    result: dict = {}

    def big() -> None:
        start, n = time.perf_counter(), 0
        with httpx.Client(timeout=120) as c:
            while n < most and (n == 0 or time.perf_counter() - start < min_s):
                t = time.perf_counter()
                r = c.post(base + route, content=body, headers={"content-type": ctype})
                if n == 0:
                    result.update(status=r.status_code, seconds=time.perf_counter() - t)
                n += 1
        result["sent"] = n

    worker = threading.Thread(target=big)
    worker.start()
    health: list[float] = []
    with httpx.Client(base_url=base, timeout=10) as c:
        while worker.is_alive():
            start = time.perf_counter()
            c.get("/health")
            health.append(time.perf_counter() - start)
            time.sleep(0.01)
    worker.join()
    return {**result, "health_ms": [h * 1000 for h in health]}


def health_latencies(base: str, n: int) -> list[float]:
    """/health latency (ms) with nothing else running: the baseline of this machine."""
    import httpx

    out = []
    with httpx.Client(base_url=base, timeout=10) as c:
        for _ in range(n):
            start = time.perf_counter()
            c.get("/health")
            out.append(1000 * (time.perf_counter() - start))
            time.sleep(0.02)
    return out


def sigint_during_max(server: Server, route: str, body: bytes, ctype: str) -> dict:
    """SIGINT while a maximal request runs: seconds until the process is gone, and its exit code."""
    import httpx

    def big() -> None:
        try:
            httpx.post(server.base + route, content=body, headers={"content-type": ctype}, timeout=30)
        except httpx.HTTPError:
            pass

    threading.Thread(target=big, daemon=True).start()
    time.sleep(0.5)
    start = time.perf_counter()
    server.proc.send_signal(signal.SIGINT)
    try:
        rc = server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.stop()
        return {"exit_s": None, "rc": "did not exit in 20 s (killed)"}
    return {"exit_s": time.perf_counter() - start, "rc": rc}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


# ---------------------------------------------------------------------------- one task
def run_task(task: str, root: Path, n_adversarial: int, seed: int = 0) -> dict:
    import httpx

    t0 = time.perf_counter()
    folder, valid, maximal = build_model(task, root)
    log(f"{task}: model trained in {time.perf_counter() - t0:.1f} s")
    rng = random.Random(seed)
    cases = cases_mod.http_cases(task, valid, rng, n_adversarial)
    route = cases_mod.routes(task)[0]
    raws = cases_mod.raw_requests(route)
    server = Server(folder, root / f"{task}.log")
    outcomes: dict[str, Counter] = {}
    fivexx: list[str] = []
    odd: list[str] = []  # client-side errors: the server closed a connection without an answer
    try:
        rss_start = server.memory_mb("VmRSS")
        idle_health = health_latencies(server.base, 50)
        t0 = time.perf_counter()
        with httpx.Client(base_url=server.base, timeout=30) as client:
            for case in cases:
                status = send_case(client, server.port, case)
                outcomes.setdefault(case.family, Counter())[status] += 1
                if status.startswith("5") or status.startswith("client error"):
                    (fivexx if status.startswith("5") else odd).append(
                        f"{case.family}: {case.method} {case.path} {(case.body or b'')[:80]!r} -> {status}")
                if not server.alive():
                    break
        for family, data in raws:
            outcomes.setdefault(family, Counter())[send_raw(server.port, data)] += 1
        slow = slow_bodies(server.port, route)
        outcomes["slow body"] = Counter(s for s, _ in slow)
        held = slow_headers(server.port)
        adversarial_s = time.perf_counter() - t0
        n_sent = sum(sum(c.values()) for c in outcomes.values())
        log(f"{task}: {n_sent} adversarial requests in {adversarial_s:.1f} s")

        if task == "speech":
            wav = cases_mod.wav_bytes(1.0)
            route_bodies, ctype = [("/transcribe", wav)], "audio/wav"
            max_body = cases_mod.wav_bytes(59.5)
        else:
            import json

            route_bodies = [(cases_mod.routes(task)[1] if "k" in b else route, json.dumps(b).encode()) for b in valid]
            ctype, max_body = "application/json", json.dumps(maximal).encode()
        latencies, valid_status = valid_clients(server.base, route_bodies)
        maxreq = during_max(server.base, route, max_body, ctype)
        alive = server.alive()
        rss = server.memory_mb() if alive else float("nan")
        restarts = server.restarts()
        tracebacks = server.tracebacks()  # before SIGINT: a request cancelled at shutdown is logged too
        shutdown = sigint_during_max(server, route, max_body, ctype) if alive else {"exit_s": None, "rc": "dead"}
    finally:
        server.stop()
    health = maxreq["health_ms"]
    return {
        "task": task, "adversarial": n_sent, "adversarial_s": adversarial_s,
        "outcomes": {k: dict(v) for k, v in outcomes.items()},
        "5xx": sum(n for c in outcomes.values() for s, n in c.items() if s.startswith("5")), "5xx_examples": fivexx[:20],
        "client_error_examples": odd[:20],
        "idle_health_p50_ms": _pct(idle_health, 0.5), "idle_health_p99_ms": _pct(idle_health, 0.99),
        "crashed": not alive, "tracebacks_in_log": tracebacks, "model_process_restarts": restarts,
        "slow_body": [{"status": s, "seconds": round(t, 2)} for s, t in slow], "half_headers": held,
        "valid": {"n": len(latencies), "status": dict(valid_status), "p50_ms": 1000 * _pct(latencies, 0.5),
                  "p99_ms": 1000 * _pct(latencies, 0.99)},
        "max_request": {"bytes": len(max_body), "status": maxreq.get("status"), "seconds": maxreq.get("seconds"),
                        "sent": maxreq.get("sent"),
                        "health_n": len(health), "health_p50_ms": _pct(health, 0.5),
                        "health_p99_ms": _pct(health, 0.99), "health_max_ms": max(health, default=float("nan"))},
        "rss_after_start_mb": rss_start, "peak_rss_mb": rss, "sigint": shutdown,
    }


def main(quick: bool = False) -> dict:
    n = 300 if quick else 2000
    start = time.perf_counter()
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="rnnkit_serve_abuse_") as tmp:
        for task in TASKS:
            root = Path(tmp) / task
            root.mkdir()
            r = run_task(task, root, n)
            results.append(r)
            m, v = r["max_request"], r["valid"]
            rows.append([task, r["adversarial"], r["5xx"], int(r["crashed"]) + r["tracebacks_in_log"],
                         f"{v['p50_ms']:.0f} / {v['p99_ms']:.0f}", f"{m['seconds']:.2f} s ({m['bytes'] / 1e6:.1f} MB)",
                         f"{r['idle_health_p50_ms']:.1f} / {r['idle_health_p99_ms']:.1f}",
                         f"{m['health_p50_ms']:.1f} / {m['health_p99_ms']:.1f} / {m['health_max_ms']:.1f}",
                         f"{r['rss_after_start_mb']:.0f} -> {r['peak_rss_mb']:.0f}",
                         f"{r['sigint']['exit_s']:.1f} s" if r["sigint"]["exit_s"] else "-"])
            log(str({k: r[k] for k in ("5xx", "crashed", "valid", "max_request")}))
    table = markdown_table(["task", "adversarial requests", "5xx", "crashes", "valid p50 / p99 (ms)",
                            "maximal request", "/health idle p50 / p99 (ms)",
                            "/health during it p50 / p99 / max (ms)", "RSS start -> peak (MB)", "SIGINT -> exit"], rows)
    data = {"machine": machine_info(), "requests_per_task": n, "total_s": time.perf_counter() - start,
            "load_avg_1m_end": round(os.getloadavg()[0], 2), "tasks": results, "table": table}
    write_results("serve_abuse", data, quick)
    return data


if __name__ == "__main__":
    run_quick_script(main, __doc__)
