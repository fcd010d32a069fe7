"""Log-mel features against kaldi-native-fbank (Kaldi's fbank), normalisation and SpecAugment."""
import numpy as np
import pytest
import torch

from rnnkit.data.features import FbankConfig, features, log_mel, mel_filterbank, spec_augment

knf = pytest.importorskip("kaldi_native_fbank")


def _kaldi_fbank(wave: np.ndarray, n_mels: int = 80) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0  # deterministic; ours has no dither
    opts.mel_opts.num_bins = n_mels
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, (wave * 32768.0).tolist())
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])


@pytest.mark.parametrize("seed", [0, 1])
def test_log_mel_matches_kaldi_native_fbank(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * 1.37)) / 16000
    # a chirp + noise: energy in every band, and an odd length (partial last frame dropped)
    wave = (0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    ref = _kaldi_fbank(wave)
    ours = log_mel(wave).numpy()
    assert ours.shape == ref.shape == (1 + (t.size - 400) // 160, 80)
    assert np.abs(ours - ref).max() < 1e-3


def test_filterbank_shape_and_coverage():
    fb = mel_filterbank(80, 512, 16000, 20.0, 0.0)
    assert fb.shape == (257, 80)
    assert torch.all(fb.sum(0) > 0)  # no empty filter
    assert fb[-1].sum() == 0  # Nyquist bin unused, as in Kaldi


def test_features_are_normalised_per_utterance():
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    f = features(wave)
    assert torch.allclose(f.mean(0), torch.zeros(80), atol=1e-4)
    assert torch.allclose(f.std(0, unbiased=False), torch.ones(80), atol=1e-3)
    assert log_mel(np.zeros(100, dtype=np.float32)).shape == (0, 80)  # shorter than one frame


def test_spec_augment_masks_within_length():
    feats = torch.ones(2, 100, 80)
    lengths = torch.tensor([100, 50])
    g = torch.Generator().manual_seed(0)
    out = spec_augment(feats, lengths, generator=g)
    assert out.shape == feats.shape and torch.equal(feats, torch.ones(2, 100, 80))  # input untouched
    assert (out == 0).any()
    assert torch.all(out[1, 50:].sum(-1) >= 80 - 2 * 15)  # no time mask past the utterance end
    assert FbankConfig().n_fft == 512
