"""Speech benchmark: synthesize -> train -> held-out-VOICE WER, real-recording WER, CPU real-time factor.

    python bench/speech.py [--quick] [--corpus DIR] [--model DIR] [--eval-only] [--device cpu|cuda]
                           [--workers N] [--max-time S] [--scale X]

1. ``rnnkit.data.speech_synth.build_corpus``: espeak-ng corpus; its test split is spoken only by
   voice variants that never occur in training (``TEST_VARIANTS``).
2. ``SpeechRecognizer.fit`` on the training split (5% of it, same voices, for early stopping).
3. WER/CER per kind of text (digits, numbers, words, sentences) on the held-out voices, greedy
   and beam search + word list; WER on the 12 real human recordings shipped in
   ``rnnkit/data/datasets/speech_real`` next to pocketsphinx's default English model.
4. Real-time factor on CPU with one thread (features + network + decoding, audio already loaded).

``--eval-only --model DIR`` skips 1-2 for training and synthesizes a fresh held-out-voice test set
(new seed) to evaluate a model trained elsewhere (e.g. on a GPU machine); ``--tune`` re-tunes the
decoder weights on fresh train-voice data, ``--lm-book`` adds the shipped Shakespeare text to the LM.
``--festival P`` gives festival voices a share P, ``--copies N`` renders every training text N times
with independent augmentation, ``--render-cache festival|all --cache DIR [--keep F]`` only renders
clean speech into DIR, for a machine without the synthesizers (see docs/bench/speech.md).
Writes ``bench/results/speech.json`` (``speech.quick.json`` with ``--quick``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import log, machine_info, markdown_table, write_results  # noqa: E402


def _synth_config(scale: float, n_test: int, seed: int, make_train: bool = True, digits_only: bool = False,
                  festival: float = 0.0, cache: Path | None = None, copies: int = 1, audio_format: str = "wav",
                  keep: float = 1.0):
    from rnnkit.data.speech_synth import SynthConfig

    other = 0 if digits_only else 1  # quick mode: digit strings only, so a CPU minute learns something
    return SynthConfig(n_digits=int(400 * scale), n_numbers=int(150 * scale) * other, n_words=int(200 * scale) * other,
                       n_sentences=int(300 * scale) * other, n_book=int(300 * scale) * other, n_test=n_test,
                       seed=seed, make_train=make_train, p_festival=festival,
                       p_flite=0.3 - festival / 2 if festival else 0.3,  # festival takes half its share from flite
                       cache_dir=str(cache) if cache else None, copies=copies, audio_format=audio_format,
                       keep=keep)


def _corpus(out: Path, scale: float, n_test: int, seed: int, workers: int, make_train: bool = True,
            digits_only: bool = False, festival: float = 0.0, cache: Path | None = None, copies: int = 1,
            keep: float = 1.0) -> dict:
    from rnnkit.data.speech_synth import build_corpus

    cfg = _synth_config(scale, n_test, seed, make_train, digits_only, festival, cache, copies, keep=keep)
    if (out / "test.jsonl").is_file():
        log(f"reusing corpus {out}")
        return {"reused": str(out)}
    t0 = time.perf_counter()
    summary = build_corpus(out, cfg, progress=True, workers=workers)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def _split_val(corpus: Path) -> tuple[Path, Path]:
    """train.jsonl -> train_fit.jsonl (95%) + val.jsonl (5%, same voices; for early stopping only)."""
    lines = (corpus / "train.jsonl").read_text().splitlines()
    fit, val = corpus / "train_fit.jsonl", corpus / "val.jsonl"
    fit.write_text("".join(l + "\n" for i, l in enumerate(lines) if i % 20 != 7))
    val.write_text("".join(l + "\n" for i, l in enumerate(lines) if i % 20 == 7))
    return fit, val


def _by_kind(asr, manifest: Path, beam: int | None) -> dict:
    """Decode the test set once; WER/CER for each kind of text and overall."""
    from rnnkit.metrics.speech import cer, wer
    from rnnkit.tasks.speech.data import Utterance

    rows = [json.loads(l) for l in manifest.read_text().splitlines() if l.strip()]
    rep = asr.evaluate([Utterance(manifest.parent / r["audio"], r["text"]) for r in rows], beam=beam)
    out, by_engine = {}, {}
    engine = lambda r: r["voice"].split(":")[0] if ":" in r["voice"] else "espeak"  # noqa: E731
    for kind in sorted({r["kind"] for r in rows}) + ["all"]:
        for eng in (None, "espeak", "flite", "festival"):
            us = [u for r, u in zip(rows, rep["utterances"])
                  if kind in ("all", r["kind"]) and eng in (None, engine(r))]
            if not us:
                continue
            refs, hyps = [u["reference"] for u in us], [u["hypothesis"] for u in us]
            score = {"n": len(us), "wer": round(wer(refs, hyps), 4), "cer": round(cer(refs, hyps), 4)}
            if eng is None:
                out[kind] = score
            else:  # held-out espeak variants vs the held-out flite speaker (another synthesizer)
                by_engine[f"{kind}/{eng}"] = score
    errors = [u for u in rep["utterances"] if u["wer"] > 0][:8]
    return {"by_kind": out, "by_engine": by_engine,
            "examples": [{"ref": u["reference"], "hyp": u["hypothesis"]} for u in errors]}


def _tune(asr, corpus_root: Path, festival: float, cache: Path | None, workers: int,
          alphas=(0.5, 1.0, 1.5, 2.0), betas=(1.0, 2.0, 3.0, 4.0, 5.0)) -> dict:
    """Grid-search the decoder weights (alpha, beta) on a fresh synthetic set spoken by TRAINING
    voices (seed 777): never on the held-out voices nor on the real recordings."""
    from rnnkit.data.audio import load_audio
    from rnnkit.data.speech_synth import build_corpus
    from rnnkit.metrics.speech import wer
    from rnnkit.tasks.speech.data import read_dataset

    cfg = _synth_config(1.0, 300, 777, make_train=False, festival=festival, cache=cache)
    cfg.test_variants, cfg.flite_test, cfg.festival_test = cfg.train_variants, cfg.flite_train, cfg.festival_train
    out = corpus_root / "tune_trainvoices"
    if not (out / "test.jsonl").is_file():
        build_corpus(out, cfg, progress=True, workers=workers)
    utts = read_dataset(out / "test.jsonl")
    lps = [asr.log_probs(load_audio(u.audio)) for u in utts]
    refs = [asr.vocab.normalize(u.text) for u in utts]
    grid = {}
    for a in alphas:
        for b in betas:
            asr.config.lm_weight, asr.config.word_bonus = a, b
            grid[f"{a},{b}"] = round(wer(refs, [asr.decode(lp) for lp in lps]), 4)
    best = min(grid, key=grid.get)
    asr.config.lm_weight, asr.config.word_bonus = map(float, best.split(","))
    log(f"decoder weights tuned on train voices: alpha,beta = {best} (WER {grid[best]})")
    return {"n": len(utts), "grid": grid, "best": best}


def _rtf(asr, manifest: Path, n: int = 60) -> dict:
    """CPU real-time factor, one thread, greedy and beam+LM, on the first n test utterances."""
    import numpy as np

    from rnnkit.data.audio import load_audio
    from rnnkit.tasks.speech.data import read_dataset

    torch.set_num_threads(1)
    waves = [load_audio(u.audio) for u in read_dataset(manifest)[:n]]
    audio = sum(w.size for w in waves) / 16000
    out = {}
    for name, beam in (("greedy", 1), ("beam_lm", None)):
        asr.transcribe_wave(waves[0], beam=beam)  # warm-up
        t0 = time.perf_counter()
        for w in waves:
            asr.transcribe_wave(w, beam=beam)
        out[name] = round((time.perf_counter() - t0) / audio, 5)
    long = np.concatenate(waves)[: 16000 * 60]  # a one-minute file, transcribed in chunks
    t0 = time.perf_counter()
    asr.transcribe_wave(long)
    out["one_minute_file"] = round((time.perf_counter() - t0) / (long.size / 16000), 5)
    out["audio_seconds"] = round(audio, 1)
    return out


def run(quick: bool = False, corpus: Path | None = None, model: Path | None = None, eval_only: bool = False,
        device: str = "cpu", workers: int = 1, max_time: float | None = None, scale: float | None = None,
        epochs: int = 40, hidden: int = 256, layers: int = 3, skip_eval: bool = False, festival: float = 0.0,
        cache: Path | None = None, copies: int = 1, batch_frames: int = 40000, lr: float = 2e-3,
        dropout: float = 0.1, deadline: float | None = None, lm_book: bool = False, tune: bool = False,
        keep: float = 1.0) -> dict:
    from rnnkit.tasks.speech.task import SpeechRecognizer

    torch.set_num_threads(max(1, workers) if device != "cpu" else 1)
    scale = scale if scale is not None else (0.6 if quick else 1.0)
    corpus = corpus or ROOT / "runs" / ("bench_speech_quick" if quick else "bench_speech") / "corpus"
    model = model or corpus.parent / "model"
    result: dict = {"machine": machine_info(), "device": device, "quick": quick}
    t_start = time.perf_counter()
    if not eval_only:
        log("synthesizing the corpus")
        result["corpus"] = _corpus(corpus, scale, 40 if quick else 400, seed=0, workers=workers, digits_only=quick,
                                   festival=festival, cache=cache, copies=copies, keep=keep)
        fit, val = _split_val(corpus)
        if deadline is not None:  # leave time for features (~1 min) and saving within a hard wall-clock limit
            left = deadline - (time.perf_counter() - t_start) - 75
            max_time = min(max_time or left, left)
            log(f"training time capped at {max_time:.0f} s by --deadline")
        cfg = dict(hidden_size=64 if quick else hidden, num_layers=1 if quick else layers, epochs=epochs,
                   device=device, workers=workers, max_time=max_time or (90 if quick else None),
                   batch_frames=(2500 if quick else 16000) if device == "cpu" else batch_frames, lr=lr, dropout=dropout)
        if quick:
            cfg.update(conv_channels=8, lr=3e-3, specaugment=False, dropout=0.0)
        log(f"training {cfg}")
        t0 = time.perf_counter()
        asr = SpeechRecognizer(**cfg).fit(fit, val_data=val)
        asr.save(model)
        h = asr.history
        result["training"] = {"config": cfg, "seconds": round(time.perf_counter() - t0, 1), "epochs": h.epochs,
                              "best_val_loss": h.best_val_loss, "stop_reason": h.stop_reason,
                              "params": sum(p.numel() for p in asr.network.parameters())}
        test = corpus / "test.jsonl"
    else:
        asr = SpeechRecognizer.load(model)
        if lm_book:  # all verse lines of the shipped Shakespeare text, not only the spoken ones
            from rnnkit.data.speech_synth import book_lines

            asr.add_words(book_lines(1, 60))
            result["lm_book_words"] = len(asr.word_counts)
        if tune:
            result["tuning"] = _tune(asr, corpus.parent, festival, cache, workers)
        if lm_book or tune:
            asr.save(model)  # the model folder keeps the LM and the weights it was evaluated with
        test_corpus = corpus.parent / "heldout_eval"
        log("synthesizing a fresh held-out-voice test set")
        result["corpus"] = _corpus(test_corpus, 1.0, 40 if quick else 400, seed=12345, workers=workers,
                                   make_train=False, digits_only=quick, festival=festival, cache=cache)
        test = test_corpus / "test.jsonl"
    asr.network.to("cpu")
    if skip_eval:  # train elsewhere, evaluate later with --eval-only
        result["seconds"] = round(time.perf_counter() - t_start, 1)
        result["table"] = "(evaluation skipped: run with --eval-only --model DIR)"
        return result
    log("held-out voices")
    result["heldout_greedy"] = _by_kind(asr, test, beam=1)
    result["heldout_beam_lm"] = _by_kind(asr, test, beam=None)
    log("real recordings")
    from bench.pocketsphinx_baseline import REAL, score

    try:
        import pocketsphinx  # noqa: F401
        has_ps = True
    except ModuleNotFoundError:
        has_ps = False
    result["real"] = score(REAL, model, use_pocketsphinx=has_ps)
    result["real_greedy"] = score(REAL, model, use_pocketsphinx=False, beam=1)["systems"]["rnnkit"]
    log("CPU real-time factor")
    result["rtf_cpu_1thread"] = _rtf(asr, test)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    result["table"] = _table(result)
    return result


def _table(r: dict) -> str:
    rows = []
    for kind, g in r["heldout_greedy"]["by_kind"].items():
        b = r["heldout_beam_lm"]["by_kind"][kind]
        rows.append([f"held-out voices: {kind}", g["n"], f"{g['wer']:.3f}", f"{b['wer']:.3f}", f"{b['cer']:.3f}"])
    for key, g in r["heldout_greedy"]["by_engine"].items():
        b = r["heldout_beam_lm"]["by_engine"][key]
        rows.append([f"held-out voices: {key}", g["n"], f"{g['wer']:.3f}", f"{b['wer']:.3f}", f"{b['cer']:.3f}"])
    real = r["real"]["systems"]
    rows.append(["real recordings (12): rnnkit", r["real"]["utterances"], f"{r['real_greedy']['wer']:.3f}",
                 f"{real['rnnkit']['wer']:.3f}", f"{real['rnnkit']['cer']:.3f}"])
    if "pocketsphinx" in real:
        rows.append(["real recordings (12): pocketsphinx", r["real"]["utterances"], "-",
                     f"{real['pocketsphinx']['wer']:.3f}", f"{real['pocketsphinx']['cer']:.3f}"])
    t = markdown_table(["set", "utterances", "WER greedy", "WER beam+LM", "CER beam+LM"], rows)
    rtf = r["rtf_cpu_1thread"]
    return t + (f"\n\nCPU real-time factor (1 thread): greedy {rtf['greedy']:.4f}, beam+LM {rtf['beam_lm']:.4f}, "
                f"1-minute file in chunks {rtf['one_minute_file']:.4f}")


def main(quick: bool = False) -> dict:
    """`rnnkit bench` protocol."""
    result = run(quick=quick)
    write_results("speech", result, quick=quick)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="speech benchmark")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-time", type=float)
    ap.add_argument("--scale", type=float)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--skip-eval", action="store_true", help="only synthesize and train")
    ap.add_argument("--festival", type=float, default=0.0, help="share of utterances spoken by festival voices")
    ap.add_argument("--copies", type=int, default=1, help="augmented renderings per training utterance")
    ap.add_argument("--cache", type=Path, help="folder of clean festival/flite renderings")
    ap.add_argument("--keep", type=float, default=1.0, help="share of the planned training texts to synthesize")
    ap.add_argument("--render-cache", choices=["festival", "all"],
                    help="only render that engine's (or all) clean utterances of the training corpus into --cache")
    ap.add_argument("--batch-frames", type=int, default=40000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--deadline", type=float, help="seconds from start by which training must have ended")
    ap.add_argument("--lm-book", action="store_true", help="eval-only: add all shipped Shakespeare lines to the word LM")
    ap.add_argument("--tune", action="store_true", help="eval-only: tune alpha/beta on fresh train-voice synthetic data")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--rtf-only", nargs="+", type=Path, metavar="MODEL",
                    help="only the CPU real-time factor of these models on --corpus's test.jsonl (2 rounds each)")
    a = ap.parse_args()
    if a.rtf_only:
        import rnnkit

        res = {"machine": machine_info(), "manifest": str(a.corpus / "test.jsonl"),
               "rtf": {str(m): [_rtf(rnnkit.load(m), a.corpus / "test.jsonl") for _ in range(2)] for m in a.rtf_only}}
        write_results("speech_rtf", res)
        print(json.dumps(res["rtf"], indent=1))
        sys.exit(0)
    if a.render_cache:
        from rnnkit.data.speech_synth import render_cache

        cfg = _synth_config(a.scale or 1.0, 400, 0, festival=a.festival, cache=a.cache, copies=a.copies, keep=a.keep)
        print(render_cache(cfg, prefix=None if a.render_cache == "all" else a.render_cache, workers=a.workers))
        sys.exit(0)
    res = run(a.quick, a.corpus, a.model, a.eval_only, a.device, a.workers, a.max_time, a.scale, a.epochs,
              a.hidden, a.layers, a.skip_eval, a.festival, a.cache, a.copies, a.batch_frames, a.lr, a.dropout, a.deadline, a.lm_book, a.tune, a.keep)
    write_results("speech", res, quick=a.quick)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    print(res["table"])
