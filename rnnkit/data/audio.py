"""Read audio files into 16 kHz mono float32 waveforms, with clear errors for bad input.

WAV/FLAC/OGG are read with ``soundfile`` (libsndfile); headerless ``.raw`` files are read
as 16 kHz 16-bit little-endian mono (the CMU Sphinx convention). Any other sample rate is
resampled with ``soxr`` (a real band-limited resampler, not linear interpolation).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError, exc_summary
from rnnkit.io import atomic_path

SAMPLE_RATE = 16000


@dataclass
class AudioLimits:
    """What counts as unusable audio."""

    max_seconds: float = 3600.0      # longer files are refused: they would not fit a sane memory budget
    max_bytes: int = 2 * 1024 ** 3   # checked before decoding, so a huge file is refused cheaply
    silence_peak: float = 1e-4       # peak amplitude below this (about -80 dBFS) is treated as silence
    min_rate: int = 1000             # sample rates outside [min_rate, max_rate] are header damage, not audio:
    max_rate: int = 384000           # 2**31-1 Hz "resamples" to zero samples and an empty transcript
    max_channels: int = 64
    max_amplitude: float = 1e3       # float files may exceed 1.0 a little (headroom), never by 1e30
    max_decoded_bytes: int = 4 * 1024 ** 3  # frames * channels * 4 from the header, before allocating them


def _need(module: str):
    try:
        return __import__(module)
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise UserError(f"speech needs the '{module}' package: pip install 'rnnkit[speech]'") from exc


def resample(wave: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling. wave: (samples,) float32 -> (samples * sr_out / sr_in,)."""
    if sr_in == sr_out:
        return wave.astype(np.float32, copy=False)
    soxr = _need("soxr")
    return soxr.resample(wave.astype(np.float32, copy=False), sr_in, sr_out, quality="HQ").astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               limits: AudioLimits | None = None, allow_silent: bool = False) -> np.ndarray:
    """Load any supported audio file as mono float32 in [-1, 1] at ``sample_rate``.

    Returns wave: (samples,). Raises UserError (naming the file) when it is missing,
    unreadable, empty, silent (unless ``allow_silent``) or too large.
    """
    limits = limits or AudioLimits()
    p = Path(path)
    probe_audio(p, limits)
    if p.suffix.lower() in (".raw", ".pcm"):
        wave, sr = np.fromfile(p, dtype="<i2").astype(np.float32) / 32768.0, SAMPLE_RATE
    else:
        sf = _need("soundfile")
        try:
            data, sr = sf.read(str(p), dtype="float32", always_2d=True)
        except MemoryError:
            raise UserError(f"audio file too large to decode: {p}") from None
        except Exception as exc:
            raise UserError(f"cannot read audio file {p}: {exc_summary(exc)}") from None
        _check_samples(p, data, limits)
        wave = data.mean(axis=1)  # mono: average the channels
    if wave.size == 0:
        raise UserError(f"audio file has no samples: {p}")
    if wave.size > limits.max_seconds * sr:
        raise UserError(f"audio file too long ({wave.size / sr:.0f} s > {limits.max_seconds:.0f} s): {p}")
    if not allow_silent and float(np.abs(wave).max()) < limits.silence_peak:
        raise UserError(f"audio file is silent (peak amplitude < {limits.silence_peak:g}): {p}")
    out = resample(wave, int(sr), sample_rate)
    if out.size == 0:  # a few samples at a high rate resample to nothing
        raise UserError(f"audio file too short ({wave.size} samples at {sr} Hz): {p}")
    return out


def probe_audio(path: str | os.PathLike, limits: AudioLimits | None = None) -> None:
    """The checks that need no decoding (exists, size, a readable header with sane rate, channels,
    duration and at least one sample): a batch of files can be checked before any is processed."""
    limits = limits or AudioLimits()
    p = Path(path)
    if not p.is_file():
        raise UserError(f"audio file not found: {p}")
    size = p.stat().st_size
    if size == 0:
        raise UserError(f"audio file is empty (0 bytes): {p}")
    if size > limits.max_bytes:
        raise UserError(f"audio file too large ({size / 1e6:.0f} MB > {limits.max_bytes / 1e6:.0f} MB): {p}")
    if p.suffix.lower() in (".raw", ".pcm"):
        return
    sf = _need("soundfile")
    try:
        info = sf.info(str(p))
    except Exception as exc:  # libsndfile raises its own error types; all mean "cannot decode"
        raise UserError(f"cannot read audio file {p}: {exc_summary(exc)}") from None
    _check_header(p, info.samplerate, info.channels, info.frames, limits)
    if info.frames == 0:
        raise UserError(f"audio file has no samples: {p}")


def _check_header(p: Path, rate: int, channels: int, frames: int, limits: AudioLimits) -> None:
    """Refuse what the header says before decoding: rate, channels, duration, decoded size."""
    if not limits.min_rate <= rate <= limits.max_rate:
        raise UserError(f"audio file has sample rate {rate} Hz, outside {limits.min_rate}..{limits.max_rate} Hz "
                        f"(a damaged header?): {p}")
    if not 1 <= channels <= limits.max_channels:
        raise UserError(f"audio file has {channels} channels (1..{limits.max_channels} supported): {p}")
    if frames > limits.max_seconds * rate:
        raise UserError(f"audio file too long ({frames / rate:.0f} s > {limits.max_seconds:.0f} s): {p}")
    if frames * channels * 4 > limits.max_decoded_bytes:
        raise UserError(f"audio file too large to decode ({frames * channels * 4 / 1e9:.1f} GB of samples): {p}")


def _check_samples(p: Path, data: np.ndarray, limits: AudioLimits) -> None:
    """Decoded samples (frames, channels): finite and of a sane amplitude (checked per channel,
    before averaging, so +1e30 and -1e30 do not cancel out)."""
    problem = _sample_problem(data, limits)
    if problem:
        raise UserError(f"audio file {problem}: {p}")


def _sample_problem(a: np.ndarray, limits: AudioLimits) -> str:
    """What is wrong with samples ``a`` (any shape): non-finite values or an amplitude past the limit; ''."""
    if not np.all(np.isfinite(a)):
        return "contains NaN or infinite samples"
    peak = float(np.abs(a).max()) if a.size else 0.0
    if peak > limits.max_amplitude:
        return f"has samples of amplitude {peak:.3g} (more than {limits.max_amplitude:g}; audio is expected in [-1, 1])"
    return ""



def check_wave(wave, limits: AudioLimits | None = None, where: str = "wave") -> np.ndarray:
    """An in-memory waveform for inference: mono ``(samples,)`` float samples in about [-1, 1],
    finite. Returns it as float32; UserError otherwise (int16 samples, a stereo (samples, 2) array or
    NaN would be transcribed as garbage or nothing)."""
    limits = limits or AudioLimits()
    a = np.asarray(wave)
    if a.ndim != 1:
        raise UserError(f"{where}: expected mono samples of shape (samples,), got {a.shape}; for "
                        f"(samples, channels) average the channels first")
    if a.dtype.kind != "f":
        raise UserError(f"{where}: expected float samples in [-1, 1], got dtype {a.dtype} (int16 PCM: divide by 32768)")
    problem = _sample_problem(a, limits)
    if problem:
        raise UserError(f"{where}: {problem}")
    return a.astype(np.float32, copy=False)


def save_audio(path: str | os.PathLike, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV (FLAC for ``.flac``, Opus ~20 kbit/s for ``.ogg``: a compact corpus to move
    between machines) atomically: temp file in the same folder, then rename."""
    sf = _need("soundfile")
    p = Path(path)
    suffix = p.suffix.lower()
    kw = ({"format": "OGG", "subtype": "OPUS", "compression_level": 0.95} if suffix == ".ogg"
          else {"format": "FLAC" if suffix == ".flac" else "WAV", "subtype": "PCM_16"})
    with atomic_path(p) as tmp:
        sf.write(str(tmp), np.clip(wave, -1.0, 1.0), sample_rate, **kw)


def duration_seconds(path: str | os.PathLike) -> float:
    """Duration from the header only (no decoding)."""
    p = Path(path)
    if p.suffix.lower() in (".raw", ".pcm"):
        return p.stat().st_size / 2 / SAMPLE_RATE
    sf = _need("soundfile")
    try:
        info = sf.info(str(p))
    except Exception as exc:
        raise UserError(f"cannot read audio file {p}: {exc_summary(exc)}") from None
    _check_header(p, info.samplerate, info.channels, info.frames, AudioLimits())
    return info.frames / info.samplerate
