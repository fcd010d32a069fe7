"""`rnnkit speech synth|train|transcribe|evaluate`: parse flags, call rnnkit.tasks.speech."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rnnkit.cli.common import (add_train_flags, check_out_dir, check_out_file, check_out_folder, removed_on_error,
                               resolve_config, save_trained)


def register(sub: argparse._SubParsersAction) -> None:
    from rnnkit.tasks.speech.task import SpeechConfig

    p = sub.add_parser("speech", help="speech to text: synthesize a corpus, train, transcribe, evaluate")
    ss = p.add_subparsers(dest="speech_command", metavar="COMMAND")

    s = ss.add_parser("synth", help="build a labelled corpus offline with espeak-ng + augmentation")
    s.add_argument("--out", required=True, help="output folder (wav/, train.jsonl, test.jsonl, all.jsonl)")
    s.add_argument("--text", help="extra UTF-8 text file, one utterance per line (added to training)")
    s.add_argument("--voices", type=int, default=None, help="number of training voice variants to use (default all)")
    s.add_argument("--digits", type=int, default=600, help="digit-string utterances")
    s.add_argument("--numbers", type=int, default=200, help="number utterances")
    s.add_argument("--words", type=int, default=300, help="command-word utterances")
    s.add_argument("--sentences", type=int, default=400, help="short-sentence utterances")
    s.add_argument("--book", type=int, default=0, help="lines of the shipped Shakespeare text (open vocabulary)")
    s.add_argument("--test", type=int, default=300, help="utterances by held-out voices (test.jsonl)")
    s.add_argument("--no-augment", action="store_true", help="clean synthesis only")
    s.add_argument("--flite", type=float, default=0.3, help="share of utterances spoken by flite voices (if installed)")
    s.add_argument("--festival", type=float, default=0.0,
                   help="share spoken by festival voices ked/slt (held out: kal); needs festival or a --cache of them")
    s.add_argument("--copies", type=int, default=1, help="augmented renderings of each training utterance")
    s.add_argument("--cache", help="folder of clean festival/flite renderings (read, and filled when missing)")
    s.add_argument("--render-only", choices=["festival", "flite"],
                   help="only render that engine's utterances into --cache (for a machine without it)")
    s.add_argument("--workers", type=int, default=1, help="synthesis processes")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_synth)

    t = ss.add_parser("train", help="train a CTC recogniser")
    t.add_argument("--data", required=True, help="MANIFEST.jsonl (rnnkit or NeMo), a LibriSpeech, Common Voice, Kaldi or "
                                                   "`speech synth` folder, or a folder of audio + same-name .txt")
    t.add_argument("--val-data", help="validation data, same forms as --data (early stopping)")
    add_train_flags(t, SpeechConfig)
    t.set_defaults(func=_train)

    r = ss.add_parser("transcribe", help="print one transcript per audio file, then the real-time factor")
    r.add_argument("--model", required=True)
    r.add_argument("files", nargs="+", help="audio files (wav/flac/ogg, any sample rate)")
    _decode_flags(r)
    r.set_defaults(func=_transcribe)

    e = ss.add_parser("evaluate", help="WER and CER with per-utterance errors")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True, help="same forms as `speech train --data`")
    e.add_argument("--json", help="also write the full report (per utterance) to this JSON file")
    _decode_flags(e)
    e.set_defaults(func=_evaluate)
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 2)[1])


def _decode_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, default=None, help="beam width (1 = greedy; default from the model)")
    p.add_argument("--no-lm", action="store_true", help="beam search without the word list")
    p.add_argument("--words", help="UTF-8 file of extra words or phrases (one per line) for the word LM")


def _load(args: argparse.Namespace):
    from rnnkit.data.text import read_text
    from rnnkit.errors import UserError
    from rnnkit.tasks.speech.task import SpeechRecognizer

    asr = SpeechRecognizer.load(args.model)
    if args.words:
        path = Path(args.words)
        if not path.is_file():
            raise UserError(f"word list not found: {path}")
        asr.add_words([line for line in read_text(path, "word list", allow_empty=True).splitlines() if line.strip()])
    return asr


def _synth(args: argparse.Namespace) -> int:
    from rnnkit.data.speech_synth import SynthConfig, build_corpus
    from rnnkit.data.text import read_text
    from rnnkit.errors import UserError

    from rnnkit.data.speech_synth import render_cache

    for name in ("flite", "festival"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UserError(f"--{name} must be a share between 0 and 1")
    if args.flite + args.festival > 1.0:
        raise UserError("--flite + --festival must not exceed 1")
    if args.copies < 1:
        raise UserError("--copies must be at least 1")
    counts = ("digits", "numbers", "words", "sentences", "book", "test")
    for name in counts:  # a negative count made an empty corpus with exit 0
        if getattr(args, name) < 0:
            raise UserError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if not args.render_only and not args.text and not any(getattr(args, name) for name in counts[:-1]):
        raise UserError("nothing to synthesise: every one of --digits --numbers --words --sentences --book is 0 "
                        "and there is no --text")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    check_out_folder(args.out)  # an existing file failed later as "OUT/wav: Not a directory"
    cfg = SynthConfig(n_digits=args.digits, n_numbers=args.numbers, n_words=args.words,
                      n_sentences=args.sentences, n_book=args.book, n_test=args.test, seed=args.seed,
                      p_flite=args.flite, p_festival=args.festival, copies=args.copies, cache_dir=args.cache)
    if args.voices is not None:
        if args.voices < 1:
            raise UserError("--voices must be at least 1")
        cfg.train_variants = cfg.train_variants[: args.voices]
    if args.no_augment:
        cfg.p_augment = cfg.p_augment_test = 0.0
    if args.text:
        path = Path(args.text)
        if not path.is_file():
            raise UserError(f"text file not found: {path}")
        cfg.extra_texts = [line.strip() for line in read_text(path, allow_empty=True).splitlines() if line.strip()]
    if args.render_only:
        if not args.cache:
            raise UserError("--render-only needs --cache DIR")
        print(json.dumps(render_cache(cfg, prefix=args.render_only, workers=args.workers)))
        return 0
    summary = build_corpus(args.out, cfg, workers=args.workers)
    print(json.dumps(summary))
    return 0


def _train(args: argparse.Namespace) -> int:
    from rnnkit.tasks.speech.task import SpeechConfig, SpeechRecognizer

    out = check_out_dir(args.out, args.resume, "speech")
    asr = SpeechRecognizer(resolve_config(args, SpeechConfig))
    with removed_on_error(out):  # a bad recording found while reading leaves no half-written folder
        asr.fit(args.data, val_data=args.val_data, out_dir=str(out), resume=args.resume)
        if save_trained(asr, out) is None:  # under torchrun only rank 0 writes the model folder
            return 0
    h = asr.history
    print(json.dumps({"model": str(out), "epochs": h.epochs, "best_val_loss": h.best_val_loss,
                      "stop_reason": h.stop_reason}))
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from rnnkit.data.audio import SAMPLE_RATE, load_audio, probe_audio

    for f in args.files:  # a missing or unreadable file fails before any transcript, not after some
        probe_audio(f)
    asr = _load(args)
    audio_s = compute_s = 0.0
    for f in args.files:
        wave = load_audio(f)
        start = time.perf_counter()
        text = asr.transcribe_wave(wave, beam=args.beam, use_lm=not args.no_lm)
        compute_s += time.perf_counter() - start
        audio_s += wave.size / SAMPLE_RATE
        print(f"{f}\t{text}", flush=True)
    print(f"real-time factor {compute_s / max(audio_s, 1e-9):.4f} ({audio_s:.1f} s of audio in {compute_s:.2f} s)",
          file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rnnkit.train.checkpoint import atomic_write_json

    if args.json:
        check_out_file(args.json, "--json")  # before decoding every utterance, not after
    asr = _load(args)
    report = asr.evaluate(args.data, beam=args.beam, use_lm=not args.no_lm)
    for u in report["utterances"]:
        if u["wer"] > 0:
            print(f"WER {u['wer']:.2f}  {u['audio']}\n  ref: {u['reference']}\n  hyp: {u['hypothesis']}")
    print(f"utterances {report['n']}  WER {report['wer']:.4f}  CER {report['cer']:.4f}  "
          f"real-time factor {report['rtf']:.4f}")
    if args.json:
        atomic_write_json(args.json, report)
    return 0
