"""Speech corpora as people have them: layout detection and one reader per layout.

``read_corpus(path)`` returns ``Utterance`` rows (audio path, transcript, optional offset and
duration in seconds) for any of these, detected from ``path``:

==================  ===========================================================================
layout              what ``--data`` points at
==================  ===========================================================================
``manifest``        a JSON-lines file, one object per line: rnnkit's ``{"audio", "text"}`` or
                    NeMo's ``{"audio_filepath", "text", "duration", "offset"}``; relative audio
                    paths are relative to the manifest's folder
``synth``           the folder ``rnnkit speech synth`` writes: its ``train.jsonl`` is read
``kaldi``           a Kaldi data folder: ``wav.scp`` (``utt-or-recording-id path``) + ``text``
                    (``utt-id transcript``), optional ``segments`` (``utt-id rec-id start end``).
                    Only plain file paths: command pipes (``sox ... |``) and ``ark:`` offsets are
                    refused with a clear message, convert them to files first
``commonvoice``     a Common Voice release folder (``train.tsv`` else ``validated.tsv``, audio in
                    ``clips/``) or one of its ``.tsv`` files; columns ``path`` and ``sentence``
``librispeech``     a LibriSpeech folder (any level): ``SPEAKER-CHAPTER.trans.txt`` per chapter
                    with ``UTT-ID TRANSCRIPT`` lines, audio ``UTT-ID.flac`` next to it
``pairs``           a folder of audio files (``.wav``, ``.flac``, ``.ogg``, ``.mp3``, ``.raw``)
                    each with a same-name ``.txt`` transcript
==================  ===========================================================================
"""
from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np

from rnnkit.data.audio import SAMPLE_RATE, AudioLimits, _check_header, _check_samples, load_audio, resample
from rnnkit.errors import UserError, exc_summary

@dataclass
class Utterance:
    audio: Path
    text: str
    duration: float | None = None   # seconds (with ``offset``: the segment's length)
    offset: float = 0.0             # seconds into the file where the utterance starts


def _utf8(raw: bytes, p: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{p}:{line}: not valid UTF-8 (byte {exc.start})") from None


def _seconds(row: dict, key: str, p: Path, i: int) -> float | None:
    value = row.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not 0 <= value < float("inf")):
        raise UserError(f"{p}:{i}: '{key}' must be a non-negative number of seconds, got {json.dumps(value)[:80]}")
    return None if value is None else float(value)


def _manifest_row(line: str, p: Path, i: int) -> Utterance:
    """One manifest line (rnnkit's ``audio`` or NeMo's ``audio_filepath``, ``text``, optional
    ``duration`` / ``offset``) -> Utterance; wrong types are UserErrors naming the line."""
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{p}:{i}: not valid JSON ({type(exc).__name__})") from None
    key = "audio_filepath" if isinstance(row, dict) and "audio_filepath" in row else "audio"
    if not isinstance(row, dict) or key not in row or "text" not in row:
        raise UserError(f"{p}:{i}: expected a JSON object with 'audio' (or NeMo's 'audio_filepath') and 'text'")
    audio, text = row[key], row["text"]
    if not isinstance(audio, str) or not audio.strip() or "\x00" in audio:
        raise UserError(f"{p}:{i}: '{key}' must be a non-empty file path string, got {json.dumps(audio)[:80]}")
    if not isinstance(text, str):
        raise UserError(f"{p}:{i}: 'text' must be a string")
    duration, offset = _seconds(row, "duration", p, i), _seconds(row, "offset", p, i)
    a = Path(audio)
    return Utterance(a if a.is_absolute() else p.parent / a, text, duration, offset or 0.0)


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".raw")
SYNTH_MANIFESTS = ("train.jsonl", "all.jsonl")


# ---------------------------------------------------------------------------------------- detection
def detect_layout(path: Union[str, Path]) -> str:
    """The layout name of ``path`` (see the module docstring); UserError when none fits."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() in (".jsonl", ".json"):
            return "manifest"
        if p.suffix.lower() == ".tsv":
            return "commonvoice"
        if p.name == "wav.scp":
            return "kaldi"
        raise UserError(f"{p}: not a speech manifest (.jsonl), Common Voice .tsv or Kaldi wav.scp")
    if not p.is_dir():
        raise UserError(f"speech data not found: {p}")
    if any((p / m).is_file() for m in SYNTH_MANIFESTS):
        return "synth"
    if (p / "wav.scp").is_file():
        return "kaldi"
    if (p / "clips").is_dir() and any(p.glob("*.tsv")):
        return "commonvoice"
    if next(p.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    return "pairs"


def read_corpus(path: Union[str, Path]) -> list[Utterance]:
    """Utterances of the corpus at ``path`` in any supported layout."""
    layout = detect_layout(path)
    rows = READERS[layout](Path(path))
    if not rows:
        raise UserError(f"{path}: no utterances found ({layout} layout)")
    return rows


# ---------------------------------------------------------------------------------------- readers
def read_manifest(p: Path) -> list[Utterance]:
    """JSON lines with ``audio`` or NeMo's ``audio_filepath``, ``text``, optional ``duration`` / ``offset``."""
    out = [_manifest_row(line, p, i)  # not splitlines: JSON may hold U+2028
           for i, line in enumerate(_utf8(p.read_bytes(), p).split("\n"), start=1) if line.strip()]
    if not out:
        raise UserError(f"{p}: manifest has no utterances")
    return out


def read_synth(p: Path) -> list[Utterance]:
    """The folder of ``rnnkit speech synth``: its training manifest."""
    return read_manifest(next(p / m for m in SYNTH_MANIFESTS if (p / m).is_file()))


def read_kaldi(p: Path) -> list[Utterance]:
    """A Kaldi data folder: ``wav.scp`` + ``text`` (+ ``segments``)."""
    folder = p.parent if p.is_file() else p
    if not (folder / "text").is_file():
        raise UserError(f"{folder}: Kaldi data folder has wav.scp but no 'text' file")
    wavs = {}
    for i, (key, rest) in enumerate(_kaldi_lines(folder / "wav.scp"), start=1):
        if rest.endswith("|") or rest.startswith("ark:") or ".ark:" in rest:
            raise UserError(f"{folder / 'wav.scp'}:{i}: only plain audio paths are supported, not command pipes "
                            "or ark offsets; write the audio to files first (e.g. with Kaldi's wav-copy or sox)")
        wavs[key] = _resolve(rest, folder)
    texts = dict(_kaldi_lines(folder / "text"))
    out = []
    if (folder / "segments").is_file():
        for i, (utt, rest) in enumerate(_kaldi_lines(folder / "segments"), start=1):
            try:
                rec, start, end = rest.split()
                start_s, end_s = float(start), float(end)
            except ValueError:
                raise UserError(f"{folder / 'segments'}:{i}: expected 'utt-id recording-id start end'") from None
            if not 0 <= start_s < float("inf") or (end_s > 0 and not start_s < end_s < float("inf")):
                raise UserError(f"{folder / 'segments'}:{i}: start {start} and end {end} must be seconds with "
                                "0 <= start < end (end <= 0: to the end of the recording)")
            if rec not in wavs:
                raise UserError(f"{folder / 'segments'}:{i}: recording {rec!r} is not in wav.scp")
            if utt in texts:
                out.append(Utterance(wavs[rec], texts[utt], end_s - start_s if end_s > 0 else None, start_s))
    else:
        out = [Utterance(wavs[utt], text) for utt, text in texts.items() if utt in wavs]
    missing = len(texts) - len(out)
    if missing:
        print(f"rnnkit: warning: {missing} transcripts in {folder / 'text'} have no audio in wav.scp", file=sys.stderr)
    return out


def read_commonvoice(p: Path) -> list[Utterance]:
    """A Common Voice folder (``train.tsv``, else ``validated.tsv``) or one of its .tsv files."""
    if p.is_dir():
        tsv = next((p / n for n in ("train.tsv", "validated.tsv") if (p / n).is_file()), None)
        if tsv is None:
            raise UserError(f"{p}: Common Voice folder has no train.tsv or validated.tsv; pass the .tsv to use")
    else:
        tsv = p
    clips = tsv.parent / "clips"
    out = []
    text = _utf8(tsv.read_bytes(), tsv)  # a UnicodeDecodeError from the csv reader was a traceback
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    if not reader.fieldnames or not {"path", "sentence"} <= set(reader.fieldnames):
        raise UserError(f"{tsv}: expected Common Voice columns 'path' and 'sentence', found {reader.fieldnames}")
    for row in reader:
        if row["path"] and row["sentence"]:
            out.append(Utterance(clips / row["path"], row["sentence"]))
    return out


def read_librispeech(p: Path) -> list[Utterance]:
    """Every ``*.trans.txt`` below ``p``: ``UTT-ID TRANSCRIPT`` lines, audio ``UTT-ID.flac`` beside it."""
    out = []
    for trans in sorted(p.rglob("*.trans.txt")):
        for i, line in enumerate(_utf8(trans.read_bytes(), trans).splitlines(), start=1):
            if not line.strip():
                continue
            utt, _, text = line.strip().partition(" ")
            audio = next((trans.parent / (utt + s) for s in (".flac", ".wav") if (trans.parent / (utt + s)).is_file()), None)
            if audio is None:
                raise UserError(f"{trans}:{i}: audio {utt}.flac not found next to the transcript")
            out.append(Utterance(audio, text))
    return out


def read_pairs(p: Path) -> list[Utterance]:
    """Audio files with a same-name ``.txt`` transcript."""
    audio = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
    out = []
    for f in audio:
        txt = f.with_suffix(".txt")
        if txt.is_file():
            out.append(Utterance(f, _utf8(txt.read_bytes(), txt).strip()))
    if not out:
        raise UserError(f"{p}: no speech corpus found: expected a manifest (.jsonl), a LibriSpeech, Common Voice "
                        "or Kaldi folder, or audio files with a same-name .txt transcript (no audio files with "
                        "a same-name .txt transcript found)")
    if len(out) < len(audio):  # never silently train on part of the folder
        first = next(f for f in audio if not f.with_suffix(".txt").is_file())
        print(f"rnnkit: warning: {len(audio) - len(out)} of {len(audio)} audio files in {p} have no same-name .txt "
              f"transcript and are skipped (first: {first})", file=sys.stderr)
    return out


READERS: dict[str, Callable[[Path], list[Utterance]]] = {
    "manifest": read_manifest, "synth": read_synth, "kaldi": read_kaldi, "commonvoice": read_commonvoice,
    "librispeech": read_librispeech, "pairs": read_pairs,
}


# ---------------------------------------------------------------------------------------- audio
def load_utterance(u: Utterance, limits: AudioLimits | None = None) -> np.ndarray:
    """The utterance's samples (16 kHz mono float32, (samples,)): the whole file, or the segment
    ``[offset, offset + duration)`` when the corpus gives an offset (NeMo, Kaldi ``segments``)."""
    if not u.offset:
        return load_audio(u.audio, limits=limits)
    import soundfile as sf

    limits = limits or AudioLimits()
    if not Path(u.audio).is_file():
        raise UserError(f"audio file not found: {u.audio}")
    try:
        info = sf.info(str(u.audio))
    except Exception as exc:  # libsndfile's own error types: all mean "cannot decode"
        raise UserError(f"cannot read audio file {u.audio}: {exc_summary(exc)}") from None
    _check_header(Path(u.audio), info.samplerate, info.channels, info.frames, limits)
    start = int(round(u.offset * info.samplerate))
    frames = -1 if u.duration is None else int(round(u.duration * info.samplerate))
    try:
        data, sr = sf.read(str(u.audio), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise UserError(f"cannot read audio file {u.audio}: {exc_summary(exc)}") from None
    _check_samples(Path(u.audio), data, limits)
    wave = data.mean(axis=1)
    if wave.size == 0:
        raise UserError(f"{u.audio}: segment at {u.offset:.2f} s has no samples (past the end of the file?)")
    if float(np.abs(wave).max()) < limits.silence_peak:
        raise UserError(f"{u.audio}: segment at {u.offset:.2f} s is silent")
    return resample(wave, int(sr), SAMPLE_RATE)


# ---------------------------------------------------------------------------------------- helpers
def _resolve(audio: str, base: Path) -> Path:
    a = Path(audio)
    return a if a.is_absolute() else base / a


def _kaldi_lines(path: Path):
    """(key, rest) per non-empty line of a Kaldi table file."""
    for line in _utf8(path.read_bytes(), path).splitlines():
        key, _, rest = line.strip().partition(" ")
        if key:
            yield key, rest.strip()
