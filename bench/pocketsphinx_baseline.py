"""Score pocketsphinx's default English model and an rnnkit speech model side by side.

    python bench/pocketsphinx_baseline.py --data DIR|MANIFEST.jsonl [--model MODEL_DIR] [--out report.json]

``--data`` is any folder of audio + same-name ``.txt`` transcripts (or a JSON-lines manifest);
the default is the 12 real human recordings shipped in ``rnnkit/data/datasets/speech_real``.
pocketsphinx (PyPI ``pocketsphinx==5.1.1``, in the ``baselines`` extra) runs with its bundled
en-us acoustic model, 3-gram language model and CMU dictionary, untouched. Both systems get
the same 16 kHz mono audio from ``rnnkit.data.audio.load_audio``; transcripts are normalised
the same way (lower case, letters/apostrophes/spaces) before jiwer scores them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnkit.data.audio import SAMPLE_RATE, load_audio  # noqa: E402
from rnnkit.errors import UserError  # noqa: E402
from rnnkit.metrics.speech import cer, wer  # noqa: E402
from rnnkit.tasks.speech.ctc_decode import CharVocab  # noqa: E402
from rnnkit.tasks.speech.data import read_dataset  # noqa: E402

REAL = ROOT / "rnnkit" / "data" / "datasets" / "speech_real"


class PocketSphinx:
    """pocketsphinx's default en-us model, one utterance at a time."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ModuleNotFoundError:
            raise UserError("pocketsphinx is not installed: pip install pocketsphinx==5.1.1") from None
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def __call__(self, wave: np.ndarray) -> str:
        pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def score(data: str | Path, model_dir: str | Path | None = None, use_pocketsphinx: bool = True,
          beam: int | None = None) -> dict:
    """Transcribe every utterance with each system; WER/CER/real-time factor per system + rows."""
    utts = read_dataset(data)
    vocab = CharVocab()
    systems = {}
    if use_pocketsphinx:
        systems["pocketsphinx"] = PocketSphinx()
    if model_dir is not None:
        from rnnkit.tasks.speech.task import SpeechRecognizer

        asr = SpeechRecognizer.load(model_dir)
        systems["rnnkit"] = lambda w: asr.transcribe_wave(w, beam=beam)
    if not systems:
        raise UserError("nothing to score: give --model and/or keep pocketsphinx")
    refs, rows, audio_s = [], [], 0.0
    hyps = {name: [] for name in systems}
    seconds = {name: 0.0 for name in systems}
    for u in utts:
        wave = load_audio(u.audio)
        audio_s += wave.size / SAMPLE_RATE
        row = {"audio": u.audio.name, "reference": vocab.normalize(u.text)}
        for name, fn in systems.items():
            t0 = time.perf_counter()
            hyp = vocab.normalize(fn(wave))
            seconds[name] += time.perf_counter() - t0
            hyps[name].append(hyp)
            row[name] = hyp
        refs.append(row["reference"])
        rows.append(row)
    result = {"data": str(data), "utterances": len(utts), "audio_seconds": round(audio_s, 2), "systems": {}}
    for name in systems:
        result["systems"][name] = {"wer": wer(refs, hyps[name]), "cer": cer(refs, hyps[name]),
                                   "rtf": seconds[name] / max(audio_s, 1e-9)}
    result["rows"] = rows
    return result


def table(result: dict) -> str:
    lines = ["| system | WER | CER | real-time factor |", "|---|---|---|---|"]
    for name, s in result["systems"].items():
        lines.append(f"| {name} | {s['wer']:.3f} | {s['cer']:.3f} | {s['rtf']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REAL), help="folder of audio + .txt, or a manifest (default: shipped real recordings)")
    ap.add_argument("--model", help="rnnkit speech model folder to score next to pocketsphinx")
    ap.add_argument("--no-pocketsphinx", action="store_true")
    ap.add_argument("--beam", type=int, default=None)
    ap.add_argument("--out", help="write the full JSON report here")
    args = ap.parse_args(argv)
    try:
        result = score(args.data, args.model, not args.no_pocketsphinx, args.beam)
    except UserError as exc:
        print(f"pocketsphinx_baseline: error: {exc}", file=sys.stderr)
        return 2
    for row in result["rows"]:
        print(json.dumps(row))
    print(table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
