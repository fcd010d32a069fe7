"""Speech features computed once into an on-disk cache, read back per batch (bounded RAM).

    feats = DiskFeatureSet(utterances, vocab, fbank, progress=True)   # builds or reuses the cache
    for x, lengths, targets, target_lengths in feats.batches(16000, shuffle=True, seed=1): ...

The cache entry ``$RNNKIT_CACHE_DIR/features/KEY`` holds the normalised log-mel features of every
utterance back to back as float16 in shards of at most ``SHARD_BYTES`` (``shard_000.f16``, ...),
``index.npz`` (per utterance: shard, first frame, frames; transcript ids and their offsets) and
``manifest.json`` (written last; texts, sizes). KEY hashes the audio paths with their sizes,
modification times, offsets and durations, the transcripts, the feature settings and the alphabet,
so a second run (or a resumed one) starts without decoding any audio. Memory holds the index and
the texts, never the features: a batch reads its utterances from the shards (memory maps opened per
read, so touched pages do not pile up in the process's resident set).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.features import FbankConfig
from rnnkit.data.cache import build_once, cache_dir
from rnnkit.errors import UserError
from rnnkit.tasks.speech.ctc_decode import CharVocab
from rnnkit.tasks.speech.data import FeatureSet, Utterance, check_utterance, extract_features

VERSION = 1
SHARD_BYTES = 1 << 30  # 1 GiB of float16 features per shard file


def feature_cache_root() -> Path:
    """``$RNNKIT_CACHE_DIR/features`` (``rnnkit.data.cache``)."""
    return cache_dir("features")


def cache_key(utterances: list[Utterance], vocab: CharVocab, fbank: FbankConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": VERSION, "fbank": asdict(fbank), "chars": vocab.chars}, sort_keys=True).encode())
    for u in utterances:
        try:
            st = os.stat(u.audio)
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None  # missing: the build names the file
        h.update(json.dumps([str(u.audio), stamp, u.offset, u.duration, u.text]).encode())
    return h.hexdigest()[:20]


class DiskFeatureSet(FeatureSet):
    """``FeatureSet`` whose features live in a cached folder of shards (see the module docstring)."""

    def __init__(self, utterances: list[Utterance], vocab: CharVocab, fbank: FbankConfig | None = None,
                 progress: bool = False, workers: int = 1) -> None:
        if not utterances:
            raise UserError("speech data has no utterances")
        fbank = fbank or FbankConfig()
        self.folder = feature_cache_root() / cache_key(utterances, vocab, fbank)
        _, self.reused = build_once(self.folder, lambda: self if self._open() else None,
                                    lambda tmp: _build(tmp, utterances, vocab, fbank, progress, workers))

    def _open(self) -> bool:
        """Read the index of a complete cache entry; False when there is none."""
        try:
            manifest = json.loads((self.folder / "manifest.json").read_text(encoding="utf-8"))
            if manifest.get("version") != VERSION:
                return False
            with np.load(self.folder / "index.npz", allow_pickle=False) as z:
                self.shard, self.start, self.lengths = z["shard"], z["start"], z["frames"]
                self._ids, self._id_start = z["ids"], z["id_start"]
        except (OSError, KeyError, ValueError, json.JSONDecodeError):
            return False
        self.texts = list(manifest["texts"])
        self.n_mels = int(manifest["n_mels"])
        self.shards = [self.folder / name for name in manifest["shards"]]
        self.manifest = manifest
        return True

    def __len__(self) -> int:
        return len(self.lengths)

    def frames(self, i: int) -> int:
        return int(self.lengths[i])

    def feature(self, i: int) -> Tensor:
        n = int(self.lengths[i])
        mm = np.memmap(self.shards[int(self.shard[i])], dtype=np.float16, mode="r")
        a = int(self.start[i]) * self.n_mels
        out = np.array(mm[a:a + n * self.n_mels]).reshape(n, self.n_mels)
        del mm
        return torch.from_numpy(out)

    @property
    def targets(self) -> "_Targets":
        return _Targets(self._ids, self._id_start)

    @property
    def feats(self) -> "_Feats":
        return _Feats(self)


class _Targets:
    def __init__(self, ids: np.ndarray, start: np.ndarray) -> None:
        self.ids, self.start = ids, start

    def __len__(self) -> int:
        return len(self.start) - 1

    def __getitem__(self, i: int) -> Tensor:
        return torch.from_numpy(self.ids[self.start[i]:self.start[i + 1]].astype(np.int64))


class _Feats:
    """``FeatureSet.feats`` as a lazy sequence (each item read from disk)."""

    def __init__(self, owner: DiskFeatureSet) -> None:
        self.owner = owner

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, i: int) -> Tensor:
        return self.owner.feature(i)

    def __iter__(self) -> Iterator[Tensor]:
        return (self.owner.feature(i) for i in range(len(self.owner)))


def _build(folder: Path, utterances: list[Utterance], vocab: CharVocab, fbank: FbankConfig,
           progress: bool, workers: int) -> None:
    items = extract_features(utterances, fbank, progress, workers)
    shard_of, start, frames, ids, id_start, texts, shards = [], [], [], [], [0], [], []
    fh, used, seconds = None, 0, 0.0
    try:
        for u, f in items:
            target = check_utterance(u, f.shape[0], vocab)
            data = f.half().numpy()
            if fh is None or used + data.nbytes > SHARD_BYTES:
                if fh is not None:
                    fh.close()
                shards.append(f"shard_{len(shards):03d}.f16")
                fh, used = open(folder / shards[-1], "wb"), 0  # noqa: SIM115
            shard_of.append(len(shards) - 1)
            start.append(used // (2 * data.shape[1]))
            frames.append(data.shape[0])
            fh.write(data.tobytes())
            used += data.nbytes
            ids.extend(target)
            id_start.append(len(ids))
            texts.append(vocab.normalize(u.text))
            seconds += data.shape[0] * fbank.shift_ms / 1000
    finally:
        if fh is not None:
            fh.close()
    np.savez(folder / "index.npz", shard=np.asarray(shard_of, np.int32), start=np.asarray(start, np.int64),
             frames=np.asarray(frames, np.int64), ids=np.asarray(ids, np.int16), id_start=np.asarray(id_start, np.int64))
    manifest = {"version": VERSION, "utterances": len(frames), "hours": round(seconds / 3600, 3), "n_mels": fbank.n_mels,
                "shards": shards, "bytes": sum((folder / s).stat().st_size for s in shards), "texts": texts}
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest), encoding="utf-8")
    tmp.replace(folder / "manifest.json")
