"""Waveform augmentation for synthetic speech: push clean synthesis towards real microphones.

Applied once per synthesized utterance by ``rnnkit.data.speech_synth`` (feature-domain
augmentation, SpecAugment and vocal-tract-length warping, runs on every training batch instead:
see ``rnnkit.data.features.spec_augment``). All functions take and return ``(samples,)`` float
arrays at 16 kHz.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnkit.data.audio import SAMPLE_RATE, resample


@dataclass
class AugmentConfig:
    """Probabilities and ranges of each augmentation (applied independently, in this order)."""

    speed: tuple[float, float] = (0.8, 1.2)
    p_speed: float = 0.6
    p_reverb: float = 0.4
    rt60: tuple[float, float] = (0.15, 0.8)       # seconds
    p_eq: float = 0.6                             # random smooth microphone / room colouring
    eq_db: float = 8.0                            # max +- gain of the colouring curve
    p_lowpass: float = 0.3
    lowpass_hz: tuple[float, float] = (2500.0, 7000.0)
    p_telephone: float = 0.2
    p_noise: float = 0.6
    snr_db: tuple[float, float] = (5.0, 30.0)
    gain_db: tuple[float, float] = (-18.0, 3.0)
    pad_s: tuple[float, float] = (0.05, 0.4)      # leading/trailing silence (with the noise floor)


def _colored_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise, unit RMS (shaped in the frequency domain)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size) + 1.0
    spec = spec / f ** rng.choice([0.0, 0.5, 1.0])
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def random_eq(x: np.ndarray, rng: np.random.Generator, max_db: float = 8.0) -> np.ndarray:
    """Multiply the spectrum by a smooth random curve (+-max_db, 6 control points on a log-frequency
    axis from 100 Hz to 8 kHz): the colouring of a cheap microphone, a laptop or a small room."""
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    knots = np.log(np.geomspace(100.0, SAMPLE_RATE / 2, 6))
    gains_db = rng.uniform(-max_db, max_db, size=knots.size)
    curve_db = np.interp(np.log(np.maximum(freqs, 100.0)), knots, gains_db)
    return np.fft.irfft(spec * 10 ** (curve_db / 20), x.size)


def lowpass(x: np.ndarray, cutoff_hz: float, width_hz: float = 500.0) -> np.ndarray:
    """Zero-phase low-pass with a raised-cosine roll-off of ``width_hz`` above ``cutoff_hz``."""
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    ramp = np.clip((freqs - cutoff_hz) / width_hz, 0.0, 1.0)
    return np.fft.irfft(spec * 0.5 * (1 + np.cos(np.pi * ramp)), x.size)


def augment(wave: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig | None = None) -> tuple[np.ndarray, list[str]]:
    """Randomly augmented copy of wave (samples,) at 16 kHz, and the names of what was applied."""
    cfg = cfg or AugmentConfig()
    x, applied = wave.astype(np.float64), []
    if rng.random() < cfg.p_speed:
        factor = rng.uniform(*cfg.speed)  # resampling changes tempo and pitch together, like tape speed
        x = resample(x.astype(np.float32), int(SAMPLE_RATE * factor), SAMPLE_RATE).astype(np.float64)
        applied.append(f"speed{factor:.2f}")
    pad = lambda: np.zeros(int(rng.uniform(*cfg.pad_s) * SAMPLE_RATE))  # noqa: E731
    x = np.concatenate([pad(), x, pad()])
    if rng.random() < cfg.p_eq:
        x = random_eq(x, rng, cfg.eq_db)
        applied.append("eq")
    if rng.random() < cfg.p_reverb:
        rt60 = rng.uniform(*cfg.rt60)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
        ir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path
        ir /= np.sqrt(np.sum(ir ** 2))
        x = np.fft.irfft(np.fft.rfft(x, x.size + ir.size) * np.fft.rfft(ir, x.size + ir.size))[:x.size]
        applied.append(f"reverb{rt60:.2f}")
    if rng.random() < cfg.p_lowpass:
        cutoff = rng.uniform(*cfg.lowpass_hz)
        x = lowpass(x, cutoff)
        applied.append(f"lowpass{cutoff:.0f}")
    if rng.random() < cfg.p_telephone:
        # telephone: 300-3400 Hz band and an 8 kHz round trip
        spec = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
        spec[(freqs < 300) | (freqs > 3400)] = 0
        x = np.fft.irfft(spec, x.size)
        x = resample(resample(x.astype(np.float32), SAMPLE_RATE, 8000), 8000, SAMPLE_RATE).astype(np.float64)
        applied.append("telephone")
    rms = np.sqrt(np.mean(x ** 2)) + 1e-9
    if rng.random() < cfg.p_noise:
        snr = rng.uniform(*cfg.snr_db)
        x = x + _colored_noise(rng, x.size) * rms / 10 ** (snr / 20)
        applied.append(f"noise{snr:.0f}dB")
    peak = np.abs(x).max() + 1e-9
    gain = 10 ** (rng.uniform(*cfg.gain_db) / 20)
    x = x / peak * 0.9 * gain  # normalise the level first, then a random gain
    return x.astype(np.float32), applied


def add_noise_floor(wave: np.ndarray, rng: np.random.Generator, db: tuple[float, float] = (-75.0, -55.0)) -> np.ndarray:
    """Add faint white noise: espeak's pauses are exact digital zeros, which real microphones never
    give, and a model that learns "silence = -inf log energy" is lost on real recordings."""
    return (wave + rng.standard_normal(wave.size) * 10 ** (rng.uniform(*db) / 20)).astype(np.float32)
