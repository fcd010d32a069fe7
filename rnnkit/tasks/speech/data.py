"""Speech datasets: read manifests / folders, precompute features, length-bucketed batches.

A dataset is either a JSON-lines manifest (``{"audio": path, "text": ..., "duration": ...}``,
NeMo style; relative paths are relative to the manifest's folder) or a folder of audio files
(``.wav``, ``.flac``, ``.ogg``) each with a same-name ``.txt`` transcript.
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.audio import load_audio
from rnnkit.data.features import FbankConfig, features
from rnnkit.errors import UserError
from rnnkit.tasks.speech.ctc_decode import CharVocab

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".raw")


@dataclass
class Utterance:
    audio: Path
    text: str
    duration: float | None = None


def read_dataset(path: str | Path) -> list[Utterance]:
    """Utterances of a manifest (.jsonl/.json) or a folder of audio + .txt files."""
    p = Path(path)
    if p.is_dir():
        audio = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
        out = []
        for f in audio:
            txt = f.with_suffix(".txt")
            if txt.is_file():
                out.append(Utterance(f, _utf8(txt.read_bytes(), txt).strip()))
        if not out:
            raise UserError(f"{p}: no audio files with a same-name .txt transcript found")
        return out
    if not p.is_file():
        raise UserError(f"speech data not found: {p}")
    out = []
    for i, line in enumerate(_utf8(p.read_bytes(), p).split("\n"), start=1):  # not splitlines: JSON may hold U+2028
        if line.strip():
            out.append(_manifest_row(line, p, i))
    if not out:
        raise UserError(f"{p}: manifest has no utterances")
    return out


def _utf8(raw: bytes, p: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{p}:{line}: not valid UTF-8 (byte {exc.start})") from None


def _manifest_row(line: str, p: Path, i: int) -> Utterance:
    """One manifest line -> Utterance; wrong types are UserErrors naming the line."""
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{p}:{i}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(row, dict) or "audio" not in row or "text" not in row:
        raise UserError(f"{p}:{i}: expected a JSON object with 'audio' and 'text'")
    audio, text, duration = row["audio"], row["text"], row.get("duration")
    if not isinstance(audio, str) or not audio.strip() or "\x00" in audio:
        raise UserError(f"{p}:{i}: 'audio' must be a non-empty file path string, got {json.dumps(audio)[:80]}")
    if not isinstance(text, str):
        raise UserError(f"{p}:{i}: 'text' must be a string")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or not 0 <= duration < float("inf")):
        raise UserError(f"{p}:{i}: 'duration' must be a non-negative number of seconds, got {json.dumps(duration)[:80]}")
    a = Path(audio)
    return Utterance(a if a.is_absolute() else p.parent / a, text, duration)


class FeatureSet:
    """Normalised log-mel features and encoded transcripts of a dataset, held in memory (float16)."""

    def __init__(self, utterances: list[Utterance], vocab: CharVocab, fbank: FbankConfig | None = None,
                 progress: bool = False, workers: int = 1) -> None:
        self.feats: list[Tensor] = []
        self.targets: list[Tensor] = []
        self.texts: list[str] = []
        extract = lambda u: features(load_audio(u.audio), fbank)  # noqa: E731
        if workers > 1:  # decoding and the FFTs release the GIL, so threads help
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(workers) as pool:
                computed = pool.map(extract, utterances)
        else:
            computed = map(extract, utterances)
        iterable = zip(utterances, computed)
        if progress:
            from tqdm import tqdm
            iterable = tqdm(iterable, total=len(utterances), desc="features", unit="utt", file=sys.stderr)
        for u, f in iterable:
            ids = vocab.encode(u.text)
            if not ids:
                raise UserError(f"{u.audio}: transcript is empty after normalisation: {u.text!r}")
            if (f.shape[0] + 3) // 4 < len(ids):
                raise UserError(f"{u.audio}: audio too short ({f.shape[0]} frames) for its transcript of {len(ids)} characters")
            self.feats.append(f.half())
            self.targets.append(torch.tensor(ids, dtype=torch.long))
            self.texts.append(vocab.normalize(u.text))

    def __len__(self) -> int:
        return len(self.feats)

    def batches(self, max_frames: int = 12000, shuffle: bool = False, seed: int = 0) -> list[tuple]:
        """Length-bucketed batches: sort by length, fill each batch up to ``max_frames`` padded frames.

        Returns a list of (feats (B, T, F), lengths (B,), targets (sum U,), target_lengths (B,)).
        """
        order = sorted(range(len(self)), key=lambda i: self.feats[i].shape[0])
        if shuffle:  # jitter within similar lengths so batches differ between epochs
            rng = random.Random(seed)
            order = sorted(order, key=lambda i: self.feats[i].shape[0] * rng.uniform(0.9, 1.1))
        groups, cur = [], []
        for i in order:
            longest = max([self.feats[j].shape[0] for j in cur] + [self.feats[i].shape[0]])
            if cur and longest * (len(cur) + 1) > max_frames:
                groups.append(cur)
                cur = []
            cur.append(i)
        if cur:
            groups.append(cur)
        if shuffle:
            random.Random(seed + 1).shuffle(groups)
        return [self.collate(g) for g in groups]

    def collate(self, idx: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        lengths = torch.tensor([self.feats[i].shape[0] for i in idx])
        x = torch.zeros(len(idx), int(lengths.max()), self.feats[idx[0]].shape[1])
        for k, i in enumerate(idx):
            x[k, : lengths[k]] = self.feats[i].float()
        targets = torch.cat([self.targets[i] for i in idx])
        target_lengths = torch.tensor([len(self.targets[i]) for i in idx])
        return x, lengths, targets, target_lengths
