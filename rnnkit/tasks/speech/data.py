"""Speech datasets: read corpora (layouts in ``corpora``), precompute features, length-bucketed batches.

A dataset is a JSON-lines manifest (rnnkit's ``{"audio", "text"}`` or NeMo's ``{"audio_filepath",
"text", "duration", "offset"}``), a LibriSpeech / Common Voice / Kaldi / ``speech synth`` folder,
or a folder of audio files each with a same-name ``.txt`` transcript.
"""
from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor

from rnnkit.data.features import FbankConfig, features
from rnnkit.errors import UserError
from rnnkit.tasks.speech.corpora import Utterance, load_utterance, read_corpus
from rnnkit.tasks.speech.ctc_decode import CharVocab


def read_dataset(path: str | Path) -> list[Utterance]:
    """Utterances of a manifest, a corpus folder (LibriSpeech, Common Voice, Kaldi, ``speech synth``)
    or a folder of audio + .txt files: ``rnnkit.tasks.speech.corpora.read_corpus``."""
    return read_corpus(path)


class FeatureSet:
    """Normalised log-mel features and encoded transcripts of a dataset, held in memory (float16)."""

    def __init__(self, utterances: list[Utterance], vocab: CharVocab, fbank: FbankConfig | None = None,
                 progress: bool = False, workers: int = 1) -> None:
        self.feats: list[Tensor] = []
        self.targets: list[Tensor] = []
        self.texts: list[str] = []
        iterable = extract_features(utterances, fbank, progress, workers)
        for u, f in iterable:
            ids = check_utterance(u, f.shape[0], vocab)
            self.feats.append(f.half())
            self.targets.append(torch.tensor(ids, dtype=torch.long))
            self.texts.append(vocab.normalize(u.text))

    def __len__(self) -> int:
        return len(self.feats)

    def frames(self, i: int) -> int:
        """Feature frames of utterance ``i`` (without touching its features)."""
        return self.feats[i].shape[0]

    def feature(self, i: int) -> Tensor:
        """(frames, n_mels) float16 features of utterance ``i``."""
        return self.feats[i]

    def batches(self, max_frames: int = 12000, shuffle: bool = False, seed: int = 0) -> "Batches":
        """Length-bucketed batches: sort by length, fill each batch up to ``max_frames`` padded frames.

        Returns a sequence of (feats (B, T, F), lengths (B,), targets (sum U,), target_lengths (B,)),
        each collated when it is read (so only one padded batch is in memory at a time).
        """
        n = [self.frames(i) for i in range(len(self))]
        order = sorted(range(len(self)), key=lambda i: n[i])
        if shuffle:  # jitter within similar lengths so batches differ between epochs
            rng = random.Random(seed)
            order = sorted(order, key=lambda i: n[i] * rng.uniform(0.9, 1.1))
        groups, cur, longest = [], [], 0
        for i in order:
            if cur and max(longest, n[i]) * (len(cur) + 1) > max_frames:
                groups.append(cur)
                cur, longest = [], 0
            cur.append(i)
            longest = max(longest, n[i])
        if cur:
            groups.append(cur)
        if shuffle:
            random.Random(seed + 1).shuffle(groups)
        return Batches(groups, self.collate)

    def collate(self, idx: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        feats = [self.feature(i) for i in idx]
        lengths = torch.tensor([f.shape[0] for f in feats])
        x = torch.zeros(len(idx), int(lengths.max()), feats[0].shape[1])
        for k, f in enumerate(feats):
            x[k, : lengths[k]] = f.float()
        targets = torch.cat([self.targets[i] for i in idx])
        target_lengths = torch.tensor([len(self.targets[i]) for i in idx])
        return x, lengths, targets, target_lengths


class Batches(Sequence):
    """Index groups collated on access: ``len`` and indexing like a list of batches."""

    def __init__(self, groups: list[list[int]], collate: Callable[[list[int]], tuple]) -> None:
        self.groups, self._collate = groups, collate

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self._collate(g) for g in self.groups[k]]
        return self._collate(self.groups[k])


def extract_features(utterances: list[Utterance], fbank: FbankConfig | None, progress: bool = False,
                     workers: int = 1) -> Iterator[tuple[Utterance, Tensor]]:
    """(utterance, features (frames, n_mels) float32) in order, decoded by ``workers`` threads
    (audio decoding and the FFTs release the GIL)."""

    def extract(u: Utterance) -> Tensor:
        return features(load_utterance(u), fbank)

    pool = None
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(workers)
        computed = pool.map(extract, utterances)
    else:
        computed = map(extract, utterances)
    items = zip(utterances, computed)
    if progress:
        from tqdm import tqdm
        items = tqdm(items, total=len(utterances), desc="features", unit="utt", file=sys.stderr)
    try:
        yield from items
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def check_utterance(u: Utterance, frames: int, vocab: CharVocab) -> list[int]:
    """The transcript's ids, or a UserError when it is empty or too long for the audio (CTC needs
    at least one output frame, a quarter of the input frames, per character)."""
    ids = vocab.encode(u.text)
    if not ids:
        raise UserError(f"{u.audio}: transcript is empty after normalisation: {u.text!r}")
    if (frames + 3) // 4 < len(ids):
        raise UserError(f"{u.audio}: audio too short ({frames} frames) for its transcript of {len(ids)} characters")
    return ids
