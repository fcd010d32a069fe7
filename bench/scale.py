"""Scale benchmark: the cost of `rnnkit text train` against corpus size (issue 16).

For each size (1 MB, 100 MB and, with ``--sizes ...,1000``, 1 GB of text) the script writes a
corpus itself (the shipped Shakespeare, lines reshuffled block by block: no downloads), then runs
the real CLI twice with a fresh token cache:

* **cold**: ``python -m rnnkit text train --data big.txt --max-time T`` prepares the token file and
  trains; reports preparation throughput (MB/s, from the cache manifest) and peak RSS;
* **warm**: the same command again: the token file is reused; reports the start-up time (process
  start to the "reusing" line, imports included), time per training step and peak RSS.

Peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (the whole process, preparation and training).
Time per step comes from the timestamps of the trainer's progress-bar updates on stderr (steps 3
onwards: no warm-up, no validation pass).

    python bench/scale.py                        # 1 MB and 100 MB, char level
    python bench/scale.py --sizes 1,100,1000     # add 1 GB (needs ~4 GB of disk in --workdir)
    python bench/scale.py --quick                # 1 MB and 10 MB, one warm run each, 15 s runs
Writes bench/results/scale.json (scale.quick.json) and docs/bench/scale.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, ROOT, log, machine_info, markdown_table, write_results  # noqa: E402

SHAKESPEARE = ROOT / "rnnkit" / "data" / "datasets" / "shakespeare" / "shakespeare.txt"
PAGE = ROOT / "docs" / "bench" / "scale.md"
_STEP = re.compile(r"epoch \d+/\d+:.*?(?:\|\s*(\d+)/\d+ \[|\s(\d+)it \[)")  # known / unknown epoch length


def make_corpus(path: Path, megabytes: float, seed: int = 0) -> Path:
    """``megabytes`` (10^6 bytes) of text: the Shakespeare lines, shuffled anew for every ~1 MB
    block (the same characters and line lengths, not one block repeated verbatim)."""
    target = int(megabytes * 1e6)
    if path.is_file() and path.stat().st_size >= target:
        return path
    lines = SHAKESPEARE.read_text(encoding="utf-8").splitlines(keepends=True)
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    written = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        while written < target:
            rng.shuffle(lines)
            block = "".join(lines)
            fh.write(block)
            written += len(block.encode("utf-8"))
    os.replace(tmp, path)
    return path


def run_cli(args: list[str], env: dict, timeout: float) -> dict:
    """Run ``python -m rnnkit ARGS``; timestamp stderr fragments (tqdm redraws with \\r)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events: list[tuple[float, str]] = []
    buf = b""
    os.set_blocking(proc.stderr.fileno(), True)
    while True:
        chunk = proc.stderr.read1(65536) if hasattr(proc.stderr, "read1") else proc.stderr.read(65536)
        if not chunk:
            break
        now = time.monotonic() - t0
        buf += chunk
        *parts, buf = re.split(rb"[\r\n]", buf)
        events += [(now, p.decode("utf-8", "replace")) for p in parts if p.strip()]
        if now > timeout:
            proc.kill()
            break
    stdout = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "\n".join(t for _, t in events[-5:])
        raise RuntimeError(f"rnnkit {' '.join(args)} exited {code}:\n{tail}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "events": events, "stdout": stdout}


def step_seconds(events: list[tuple[float, str]]) -> tuple[Optional[float], int]:
    """Median seconds per step between progress-bar updates from step 3 on (warm-up and the
    validation pass excluded; the median keeps a neighbour's burst on the shared machine out)."""
    seen: dict[int, float] = {}
    for t, text in events:
        m = _STEP.search(text)
        if m and int(m.group(1) or m.group(2)) not in seen:
            seen[int(m.group(1) or m.group(2))] = t
    steps = sorted(k for k in seen if k >= 3)
    deltas = [(seen[b] - seen[a]) / (b - a) for a, b in zip(steps, steps[1:])]
    if not deltas:
        return None, max(seen, default=0)
    return statistics.median(deltas), max(seen)


def first_event(events: list[tuple[float, str]], needle: str) -> Optional[float]:
    return next((t for t, text in events if needle in text), None)


def _env(cache: Path, threads: int) -> dict:
    return dict(os.environ, RNNKIT_CACHE_DIR=str(cache), OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))


def _train(data: Path, out: Path, level: str, max_time: float, env: dict) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = run_cli(["text", "train", "--data", str(data), "--out", str(out), "--level", level, "--device", "cpu",
                 "--max-time", str(max_time), "--epochs", "1"], env, timeout=max_time * 6 + 900)
    shutil.rmtree(out, ignore_errors=True)
    return r


def batch_read_us(folder: Path, n: int = 300) -> float:
    """Microseconds to read one training batch (32 streams x 129 tokens) from the token file, in
    this process: the only part of a step that could grow with the corpus."""
    from rnnkit.data.token_batches import StreamBatches
    from rnnkit.data.token_file import _load

    prep = _load(folder)
    batches = StreamBatches(prep.train, 32, 128, rank=0, ranks=1)
    n = min(n, (batches.length - 1) // 128 - 1)  # full windows after the first
    batches.read(0, 128, 0)  # opens the file
    t0 = time.perf_counter()
    for w in range(1, n + 1):
        batches.read(w * 128, 128, 0)
    return round((time.perf_counter() - t0) / n * 1e6, 1)


def _median(values: list) -> Optional[float]:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def import_seconds(threads: int) -> float:
    """Wall time of a process that only imports the text task (the floor of any start-up)."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import rnnkit.cli, rnnkit.tasks.text.task"], check=True, cwd=ROOT,
                   env=dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT)))
    return time.monotonic() - t0


def measure(sizes: list[float], work: Path, level: str, max_time: float, threads: int, repeats: int) -> list[dict]:
    """Cold run per size (fresh cache), then ``repeats`` rounds of warm runs over all sizes in turn."""
    rows = []
    for size_mb in sizes:
        data = make_corpus(work / f"text_{size_mb:g}MB.txt", size_mb)
        cache = work / f"cache_{size_mb:g}MB_{level}"
        shutil.rmtree(cache, ignore_errors=True)
        log(f"scale: {size_mb:g} MB {level} cold run")
        r = _train(data, work / "model", level, max_time, _env(cache, threads))
        manifest_path = next(cache.glob("tokens/*/manifest.json"))
        manifest = json.loads(manifest_path.read_text())
        read_us = batch_read_us(manifest_path.parent)
        rows.append({"size_mb": size_mb, "bytes": data.stat().st_size, "level": level, "data": data, "cache": cache,
                     "cold": {"wall_s": round(r["wall_s"], 2), "peak_rss_mb": round(r["peak_rss_mb"], 1),
                              "ready_s": first_event(r["events"], "prepared "), "step_s": step_seconds(r["events"])[0]},
                     "prep": {"seconds": manifest["seconds"], "mb_per_s": round(manifest["bytes_per_second"] / 1e6, 1),
                              "tokens": manifest["tokens"], "vocab_size": manifest["vocab_size"],
                              "dtype": manifest["dtype"]},
                     "batch_read_us": read_us,
                     "warm_runs": []})
    for k in range(repeats):
        for row in (rows if k % 2 == 0 else rows[::-1]):  # alternate the order between rounds
            log(f"scale: {row['size_mb']:g} MB {level} warm run {k + 1}/{repeats}")
            r = _train(row["data"], work / "model", level, max_time, _env(row["cache"], threads))
            per_step, steps = step_seconds(r["events"])
            row["warm_runs"].append({"wall_s": round(r["wall_s"], 2), "peak_rss_mb": round(r["peak_rss_mb"], 1),
                                     "ready_s": first_event(r["events"], "reusing "), "step_s": per_step,
                                     "steps": steps})
    for row in rows:
        runs = row["warm_runs"]
        row["warm"] = {"peak_rss_mb": max(w["peak_rss_mb"] for w in runs),
                       "ready_s": _median([w["ready_s"] for w in runs]), "step_s": _median([w["step_s"] for w in runs])}
        shutil.rmtree(row.pop("cache"), ignore_errors=True)
        row["data"] = str(row["data"])
    return rows


# ----------------------------------------------------------------------------- speech
def make_speech_cache(hours: float, work: Path, utt_seconds: float = 10.0) -> Path:
    """A NeMo manifest of ``hours`` of 10 s utterances and its feature cache, filled by tiling
    (random float16 features, real transcripts): `speech train` then finds every feature cached and
    never decodes audio. Decoding is a one-time cost (features run at ~785x real time on one core)."""
    import numpy as np
    import soundfile as sf

    from rnnkit.data.features import FbankConfig
    from rnnkit.tasks.speech import feature_cache as fc
    from rnnkit.tasks.speech.ctc_decode import CharVocab
    from rnnkit.tasks.speech.data import Utterance

    folder = work / f"speech_{hours:g}h"
    manifest = folder / "train.jsonl"
    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(4):  # a few real files: the cache key stats them
        f = audio / f"a{k}.wav"
        if not f.is_file():
            t = np.arange(16000) / 16000
            sf.write(str(f), (0.3 * np.sin(2 * np.pi * (300 + 100 * k) * t)).astype(np.float32), 16000)
        files.append(f)
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    rng = np.random.default_rng(0)
    n = int(hours * 3600 / utt_seconds)
    utts = [Utterance(files[i % 4], " ".join(rng.choice(words, size=12)), utt_seconds, 0.5 * (i % 7) + 0.001)
            for i in range(n)]
    manifest.write_text("".join(json.dumps({"audio_filepath": str(u.audio), "text": u.text, "duration": u.duration,
                                            "offset": u.offset}) + "\n" for u in utts))
    os.environ["RNNKIT_CACHE_DIR"] = str(work / "speech_cache")
    vocab, fbank = CharVocab(), FbankConfig()
    target = fc.feature_cache_root() / fc.cache_key(utts, vocab, fbank)
    if (target / "manifest.json").is_file():
        return manifest
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    frames = int(utt_seconds * 100)
    block = rng.standard_normal((frames * 64, fbank.n_mels)).astype(np.float16)  # tiled
    per_shard = fc.SHARD_BYTES // block[:frames].nbytes
    shards, shard_of, start, ids, id_start = [], [], [], [], [0]
    fh = None
    for i, u in enumerate(utts):
        if i % per_shard == 0:
            if fh is not None:
                fh.close()
            shards.append(f"shard_{len(shards):03d}.f16")
            fh = open(target / shards[-1], "wb")  # noqa: SIM115
        j = i % 64
        fh.write(block[j * frames:(j + 1) * frames].tobytes())
        shard_of.append(len(shards) - 1)
        start.append((i % per_shard) * frames)
        ids.extend(vocab.encode(u.text))
        id_start.append(len(ids))
    fh.close()
    np.savez(target / "index.npz", shard=np.asarray(shard_of, np.int32), start=np.asarray(start, np.int64),
             frames=np.full(n, frames, np.int64), ids=np.asarray(ids, np.int16), id_start=np.asarray(id_start, np.int64))
    (target / "manifest.json").write_text(json.dumps({
        "version": fc.VERSION, "utterances": n, "hours": hours, "n_mels": fbank.n_mels, "shards": shards,
        "bytes": sum((target / s).stat().st_size for s in shards), "texts": [vocab.normalize(u.text) for u in utts]}))
    return manifest


def measure_speech(hours_list: list[float], work: Path, max_time: float, threads: int) -> list[dict]:
    rows = []
    for hours in hours_list:
        log(f"scale: speech {hours:g} h: tiling features into the cache")
        t0 = time.monotonic()
        manifest = make_speech_cache(hours, work)
        build_s = time.monotonic() - t0
        env = _env(work / "speech_cache", threads)
        out = work / "speech_model"
        shutil.rmtree(out, ignore_errors=True)
        log(f"scale: speech {hours:g} h train")
        r = run_cli(["speech", "train", "--data", str(manifest), "--out", str(out), "--max-time", str(max_time),
                     "--epochs", "1", "--device", "cpu"], env, timeout=max_time * 6 + 900)
        per_step, steps = step_seconds(r["events"])
        shutil.rmtree(out, ignore_errors=True)
        rows.append({"hours": hours, "utterances": int(hours * 360), "tile_s": round(build_s, 1),
                     "wall_s": round(r["wall_s"], 1), "peak_rss_mb": round(r["peak_rss_mb"], 1),
                     "step_s": per_step, "steps": steps})
    return rows


def speech_table(rows: list[dict]) -> str:
    return markdown_table(["speech", "utterances (10 s)", "peak RSS (MB)", "s/step", "steps in run"],
                          [[f"{r['hours']:g} h", r["utterances"], f"{r['peak_rss_mb']:.0f}",
                            "-" if r["step_s"] is None else f"{r['step_s']:.2f}", r["steps"]] for r in rows])


# ----------------------------------------------------------------------------- preparation only
_PREP = """
import json, sys
from rnnkit.data.text_sources import resolve_inputs
from rnnkit.data.token_file import TokenSpec, prepare_text
level = sys.argv[2]
p = prepare_text(resolve_inputs(sys.argv[1]), TokenSpec(level=level, lowercase=level == "word", max_vocab=None if level == "char" else 10000))
print(json.dumps(p.manifest))
"""


def measure_prep(size_mb: float, levels: list[str], work: Path, threads: int) -> list[dict]:
    """Preparation alone (no training) per level: throughput and peak RSS of the process."""
    data = make_corpus(work / f"text_{size_mb:g}MB.txt", size_mb)
    rows = []
    for level in levels:
        cache = work / f"cache_prep_{level}"
        shutil.rmtree(cache, ignore_errors=True)
        log(f"scale: preparing {size_mb:g} MB at {level} level")
        proc = subprocess.Popen([sys.executable, "-c", _PREP, str(data), level], env=_env(cache, threads), cwd=ROOT,
                                stdout=subprocess.PIPE)
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"preparing {level} failed")
        m = json.loads(out)
        rows.append({"size_mb": size_mb, "level": level, "seconds": m["seconds"],
                     "mb_per_s": round(m["bytes_per_second"] / 1e6, 1), "vocab_size": m["vocab_size"],
                     "dtype": m["dtype"], "tokens": m["tokens"], "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)})
        shutil.rmtree(cache, ignore_errors=True)
    return rows


def prep_table(rows: list[dict]) -> str:
    return markdown_table(["corpus", "level", "prep MB/s", "prep s", "vocabulary", "dtype", "peak RSS (MB)"],
                          [[f"{r['size_mb']:g} MB", r["level"], f"{r['mb_per_s']:.1f}", f"{r['seconds']:.1f}",
                            r["vocab_size"], r["dtype"], f"{r['peak_rss_mb']:.0f}"] for r in rows])


def table(rows: list[dict]) -> str:
    base = next((r["warm"]["step_s"] for r in rows if r["warm"]["step_s"]), None)
    out = []
    for r in rows:
        step = r["warm"]["step_s"]
        out.append([f"{r['size_mb']:g} MB", r["level"], f"{r['prep']['mb_per_s']:.1f}", f"{r['prep']['seconds']:.1f}",
                    f"{r['cold']['peak_rss_mb']:.0f}", f"{r['warm']['peak_rss_mb']:.0f}",
                    "-" if r["warm"]["ready_s"] is None else f"{r['warm']['ready_s']:.1f}",
                    "-" if step is None else f"{step:.3f}",
                    _spread([w.get("step_s") for w in r.get("warm_runs", [])]),
                    "-" if step is None or not base else f"{step / base:.2f}",
                    "-" if r.get("batch_read_us") is None else f"{r['batch_read_us']:.0f}"])
    return markdown_table(["corpus", "level", "prep MB/s", "prep s", "peak RSS cold (MB)", "peak RSS warm (MB)",
                           "warm start-up s", "s/step", "s/step, each run", "s/step vs smallest", "batch read µs"], out)


def _spread(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{min(values):.3f}–{max(values):.3f}" if values else "-"


_SECTIONS = [  # (results file, title, what the run was, table of its rows)
    ("scale.json", "Text: `rnnkit text train`",
     lambda r: f"torch threads per run: {r['threads']}. Default char model (LSTM 512, batch 32, BPTT 128), "
               f"`--max-time {r['max_time']:g} --epochs 1`.",
     lambda r: table(r["rows"]) + "\n\n"
     "*cold*: first run, fresh token cache (preparation + training); *warm*: later runs, token file reused "
     f"({r['repeats']} per size, interleaved across sizes; medians). Peak RSS is the whole process "
     "(`ru_maxrss` from `wait4`, preparation and training); warm start-up is process start to the "
     f"\"reusing\" line, of which {r['import_s']:.1f} s is importing Python, torch and rnnkit alone "
     "(median of 3 bare imports); s/step is the median interval between progress-bar updates after step 3 "
     "(the shared machine's load moves it by tens of per cent between runs of the same size); batch read is "
     "the time to read one 32 x 129 batch from the token file, timed in the bench process."),
    ("scale_speech.json", "Speech: `rnnkit speech train` on a NeMo manifest",
     lambda r: f"CLI defaults (GRU 192 x 3, `--batch-frames 16000`), `--max-time {r['max_time']:g} --epochs 1`. The "
               "features of the manifest's 10 s utterances are tiled into the feature cache beforehand (decoding "
               "audio is a one-time cost, ~785x real time per core), so the run reads every batch from the shards.",
     lambda r: speech_table(r["speech_rows"])),
    ("scale_prep.json", "Text preparation alone, by level",
     lambda r: "`prepare_text` in a fresh process, fresh cache, one core. Char level reads the input twice "
               "(count, then encode); word level runs the tokenizer regex once (its speed bounds the rate); bpe "
               "trains on the first 64 MiB, then encodes (Rust).",
     lambda r: prep_table(r["prep_rows"])),
]


def write_page() -> None:
    """docs/bench/scale.md from the result files of ``_SECTIONS`` that exist."""
    parts = ["# Scale: cost against data size (issue 16)\n"]
    for name, title, what, body in _SECTIONS:
        if (RESULTS / name).is_file():
            r = json.loads((RESULTS / name).read_text())
            m = r["machine"]
            parts.append(f"## {title}\n\n`{m['command']}` on {m['date_utc']} ({m['cpu']}, {m['cpu_count']} cores "
                         f"shared with other jobs, load average {m.get('load_avg_1m')} at the start). {what(r)}\n\n"
                         f"{body(r)}\n")
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text("\n".join(parts))
    log(f"wrote {PAGE}")


def main(quick: bool = False, sizes: Optional[list[float]] = None, level: str = "char",
         max_time: Optional[float] = None, work: Optional[Path] = None, threads: int = 1, repeats: int = 2,
         speech_hours: Optional[list[float]] = None, prep_levels: Optional[list[str]] = None) -> dict:
    sizes = ([1, 10] if quick else [1, 100]) if sizes is None else sizes
    max_time = max_time or (15.0 if quick else 60.0)
    repeats = 1 if quick else repeats  # `rnnkit bench --quick` runs every bench file: keep this one short
    work = work or Path(os.environ.get("TMPDIR", "/tmp")) / "rnnkit-scale"
    free = shutil.disk_usage(work.parent if not work.exists() else work).free / 1e9
    need = max(sizes or [0]) * 1e-3 * 3 + max(speech_hours or [0]) * 0.06  # text + tokens; 58 MB of features per hour
    if free < need + 1:
        raise SystemExit(f"scale: {free:.0f} GB free under {work}, need about {need + 1:.0f} GB")
    imports = statistics.median(import_seconds(threads) for _ in range(3))
    rows = measure(sizes, work, level, max_time, threads, repeats) if sizes else []
    result = {"machine": machine_info(), "level": level, "max_time": max_time, "threads": threads,
              "repeats": repeats, "import_s": round(imports, 2), "rows": rows}
    result["table"] = table(rows) if rows else ""
    if speech_hours:
        result["speech_rows"] = measure_speech(speech_hours, work, max_time, threads)
        result["speech_table"] = speech_table(result["speech_rows"])
        result["table"] += "\n\n" + result["speech_table"]
    if prep_levels:
        result["prep_rows"] = measure_prep(max(sizes or [100]), prep_levels, work, threads)
        result["table"] += "\n\n" + prep_table(result["prep_rows"])
    write_results("scale" if rows else "scale_prep" if prep_levels and not speech_hours else "scale_speech",
                  result, quick)
    if not quick:
        write_page()
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 MB and 10 MB, one warm run each, 15 s runs")
    ap.add_argument("--sizes", help="comma-separated corpus sizes in MB (default 1,100; 1000 = 1 GB)")
    ap.add_argument("--level", default="char", choices=["char", "word"])
    ap.add_argument("--max-time", type=float, help="--max-time of each run (default 60; quick 15)")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the runs")
    ap.add_argument("--repeats", type=int, default=2, help="warm runs per size (interleaved across sizes)")
    ap.add_argument("--speech", help="comma-separated hours of tiled speech features to train on (e.g. 1,20,100)")
    ap.add_argument("--prep-levels", help="comma-separated levels (char,word,bpe) to time preparation alone on the "
                                          "largest --sizes corpus (100 MB without --sizes)")
    ap.add_argument("--workdir", type=Path, help="where corpora, caches and models go (default $TMPDIR/rnnkit-scale)")
    a = ap.parse_args()
    res = main(a.quick, [float(s) for s in a.sizes.split(",") if s] if a.sizes is not None else None, a.level, a.max_time,
               a.workdir, a.threads, a.repeats, [float(h) for h in a.speech.split(",")] if a.speech else None,
               a.prep_levels.split(",") if a.prep_levels else None)
    print(res["table"])
