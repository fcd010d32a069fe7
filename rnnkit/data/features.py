"""Log-mel filterbank features in torch (Kaldi's ``fbank`` recipe), normalisation and SpecAugment.

The maths follows Kaldi's ``compute-fbank-feats`` (and so ``kaldi-native-fbank``, which the
tests use as the reference): 25 ms frames every 10 ms (``snip_edges``), per-frame DC removal,
pre-emphasis 0.97, the "povey" window (Hann^0.85), a 512-point power spectrum, triangular
filters that are linear on the mel scale ``mel(f) = 1127 ln(1 + f / 700)`` from 20 Hz to
Nyquist, then ``log(max(energy, eps))``. Written in torch so it batches and needs no extra
package at inference time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass
class FbankConfig:
    """Feature settings (defaults: 80 bins, 25 ms / 10 ms at 16 kHz)."""

    sample_rate: int = 16000
    n_mels: int = 80
    frame_ms: float = 25.0
    shift_ms: float = 10.0
    low_freq: float = 20.0
    high_freq: float = 0.0     # <= 0 means Nyquist + high_freq (Kaldi convention)
    preemph: float = 0.97
    eps: float = 1.1920929e-07  # float32 epsilon: Kaldi's log floor

    @property
    def frame_length(self) -> int:
        return int(self.sample_rate * self.frame_ms / 1000)

    @property
    def frame_shift(self) -> int:
        return int(self.sample_rate * self.shift_ms / 1000)

    @property
    def n_fft(self) -> int:
        return 1 << (self.frame_length - 1).bit_length()  # next power of two


def _mel(f: np.ndarray | float) -> np.ndarray | float:
    return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)


@lru_cache(maxsize=8)
def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, low: float, high: float) -> torch.Tensor:
    """Kaldi mel banks. Returns (n_fft // 2 + 1, n_mels); the Nyquist bin has weight 0 as in Kaldi."""
    nyquist = sample_rate / 2
    high = nyquist + high if high <= 0 else high
    mel_low, mel_high = _mel(low), _mel(high)
    delta = (mel_high - mel_low) / (n_mels + 1)
    # centre of each FFT bin on the mel scale; Kaldi uses bins 0 .. n_fft/2 - 1
    fft_mel = _mel(np.arange(n_fft // 2) * sample_rate / n_fft)
    left = mel_low + np.arange(n_mels) * delta
    center, right = left + delta, left + 2 * delta
    up = (fft_mel[:, None] - left) / (center - left)
    down = (right - fft_mel[:, None]) / (right - center)
    weights = np.clip(np.minimum(up, down), 0.0, None)
    weights = np.vstack([weights, np.zeros((1, n_mels))])  # Nyquist row
    return torch.tensor(weights, dtype=torch.float32)


@lru_cache(maxsize=8)
def _povey_window(n: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * i / (n - 1))).pow(0.85).float()


def num_frames(num_samples: int, cfg: FbankConfig | None = None) -> int:
    cfg = cfg or FbankConfig()
    if num_samples < cfg.frame_length:
        return 0
    return 1 + (num_samples - cfg.frame_length) // cfg.frame_shift


def log_mel(wave: torch.Tensor | np.ndarray, cfg: FbankConfig | None = None) -> torch.Tensor:
    """Kaldi-style log-mel filterbank.

    wave: (samples,) float in [-1, 1] at ``cfg.sample_rate`` (scaled to the int16 range
    internally, as Kaldi expects). Returns (frames, n_mels) float32; frames may be 0.
    """
    cfg = cfg or FbankConfig()
    x = torch.as_tensor(wave, dtype=torch.float32).flatten() * 32768.0
    n = num_frames(x.numel(), cfg)
    if n == 0:
        return torch.zeros(0, cfg.n_mels)
    frames = x.unfold(0, cfg.frame_length, cfg.frame_shift)[:n]        # (frames, frame_length)
    frames = frames - frames.mean(dim=1, keepdim=True)                # remove DC offset
    prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)          # Kaldi: x[0] -= c * x[0]
    frames = (frames - cfg.preemph * prev) * _povey_window(cfg.frame_length)
    spec = torch.fft.rfft(frames, n=cfg.n_fft).abs().pow(2)          # (frames, n_fft/2 + 1)
    fb = mel_filterbank(cfg.n_mels, cfg.n_fft, cfg.sample_rate, cfg.low_freq, cfg.high_freq)
    return torch.clamp(spec @ fb, min=cfg.eps).log()


def normalize(feats: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean/variance normalisation of each bin. feats: (frames, n_mels)."""
    if feats.shape[0] == 0:
        return feats
    mean = feats.mean(dim=0, keepdim=True)
    std = feats.std(dim=0, keepdim=True, unbiased=False)
    return (feats - mean) / (std + 1e-5)


def features(wave: torch.Tensor | np.ndarray, cfg: FbankConfig | None = None) -> torch.Tensor:
    """What the speech model consumes: normalised log-mel, (frames, n_mels)."""
    return normalize(log_mel(wave, cfg))


@dataclass
class SpecAugmentConfig:
    """SpecAugment (Park et al. 2019) without time warping: frequency and time masks, plus a random
    mel-axis warp per utterance (VTLP, Jaitly & Hinton 2013) for speaker variety."""

    freq_masks: int = 2
    freq_width: int = 15          # max bins per frequency mask
    time_masks: int = 2
    time_width: float = 0.05      # max fraction of the utterance per time mask
    max_time_width: int = 40      # frames
    freq_warp: float = 0.1        # vocal-tract-length perturbation: mel axis scaled by 1 +- up to this


def warp_frequency(feats: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Vocal-tract-length perturbation on the mel axis: output bin k reads input bin k * factor
    (linear interpolation, clamped at the top bin). A factor > 1 moves formants down, as a longer
    vocal tract would (approximately: the warp is linear in mel, not in Hz).

    feats: (batch, time, n_mels); factors: (batch,). Returns a new tensor of the same shape.
    """
    n_mels = feats.shape[-1]
    pos = (torch.arange(n_mels, device=feats.device, dtype=feats.dtype)[None, :] * factors[:, None].to(feats))
    pos = pos.clamp(0, n_mels - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n_mels - 1)
    w = (pos - lo.to(pos.dtype))[:, None, :]
    shape = (feats.shape[0], feats.shape[1], n_mels)
    return (feats.gather(2, lo[:, None, :].expand(shape)) * (1 - w)
            + feats.gather(2, hi[:, None, :].expand(shape)) * w)


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, cfg: SpecAugmentConfig | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Warp the mel axis (VTLP), then mask random frequency bands and time spans with 0 (the normalised mean).

    feats: (batch, time, n_mels); lengths: (batch,) valid frames. Returns a new tensor.
    """
    cfg = cfg or SpecAugmentConfig()
    batch, _, n_mels = feats.shape
    if cfg.freq_warp > 0:
        factors = 1 + cfg.freq_warp * (2 * torch.rand(batch, generator=generator) - 1)
        out = warp_frequency(feats, factors.to(feats.device))
    else:
        out = feats.clone()

    def rand(high: int) -> int:
        return int(torch.randint(0, max(high, 0) + 1, (1,), generator=generator))

    for b in range(batch):
        length = int(lengths[b])
        for _ in range(cfg.freq_masks):
            w = rand(cfg.freq_width)
            f0 = rand(n_mels - w)
            out[b, :, f0:f0 + w] = 0.0
        max_w = min(cfg.max_time_width, int(cfg.time_width * length))
        for _ in range(cfg.time_masks):
            w = rand(max_w)
            t0 = rand(length - w)
            out[b, t0:t0 + w, :] = 0.0
    return out
