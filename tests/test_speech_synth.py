"""Festival backend, the rendering cache, corpus planning, waveform and feature augmentation."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rnnkit.data import speech_synth as synth
from rnnkit.data.features import SpecAugmentConfig, spec_augment, warp_frequency
from rnnkit.data.speech_augment import AugmentConfig, augment, lowpass, random_eq
from rnnkit.errors import UserError


def _need(program: str, package: str):
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (apt-get install {package}); test skipped")


def _small(**kw) -> synth.SynthConfig:
    base = dict(n_digits=6, n_numbers=2, n_words=2, n_sentences=3, n_book=0, n_test=4, p_festival=0.5,
                p_flite=0.2, p_augment=0.5)
    base.update(kw)
    return synth.SynthConfig(**base)


def test_festival_voices_speak_at_16k_and_follow_the_rate():
    _need("text2wave", "festival festvox-kdlpc16k festvox-us-slt-hts festvox-kallpc16k")
    slow = synth.speak("two three four", "festival:ked", rate=110)
    fast = synth.speak("two three four", "festival:ked", rate=220)
    assert slow.dtype == np.float32 and np.all(np.isfinite(slow)) and np.abs(slow).max() > 0.05
    assert 0.3 * 16000 < fast.size < slow.size  # Duration_Stretch follows the rate
    hts_slow = synth.speak("two three four", "festival:slt", rate=110)
    hts_fast = synth.speak("two three four", "festival:slt", rate=220)
    assert hts_fast.size < hts_slow.size  # the HTS engine's speed option
    assert synth.speak("five", "festival:kal").size > 0.2 * 16000
    with pytest.raises(UserError, match="unknown festival voice"):
        synth.speak("five", "festival:nobody")


def test_missing_festival_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    assert not synth.have_festival()
    with pytest.raises(UserError, match="apt-get install festival"):
        synth.speak("five", "festival:ked")


def test_plan_draws_the_same_corpus_whatever_is_installed(monkeypatch, tmp_path):
    _need("espeak-ng", "espeak-ng")
    cfg = _small(cache_dir=str(tmp_path / "cache"))
    monkeypatch.setattr(synth, "have_festival", lambda: True)
    with_festival = synth.plan_corpus(tmp_path, cfg)
    monkeypatch.setattr(synth, "have_festival", lambda: False)  # the cache stands in for festival
    assert synth.plan_corpus(tmp_path, cfg) == with_festival
    voices = {s["voice"].split(":")[0] for s in with_festival if ":" in s["voice"]}
    assert "festival" in voices
    test_fest = {s["voice"] for s in with_festival if s["split"] == "test" and s["voice"].startswith("festival")}
    assert test_fest <= {"festival:kal"}  # the held-out festival speaker
    doubled = synth.plan_corpus(tmp_path, _small(cache_dir=str(tmp_path / "cache"), copies=2))
    n_train = sum(s["split"] == "train" for s in with_festival)
    assert len(doubled) == len(with_festival) + n_train
    strip = lambda s: {k: v for k, v in s.items() if k != "i"}  # noqa: E731
    assert [strip(s) for s in doubled if s["i"] < len(with_festival)][:n_train] == \
        [strip(s) for s in with_festival if s["split"] == "train"]
    extra = doubled[len(with_festival):]
    assert all(s["augment"] and s["split"] == "train" for s in extra)


def test_rendered_cache_builds_the_corpus_without_festival(monkeypatch, tmp_path):
    _need("espeak-ng", "espeak-ng")
    _need("text2wave", "festival festvox-kdlpc16k festvox-us-slt-hts festvox-kallpc16k")
    cfg = _small(cache_dir=str(tmp_path / "cache"), p_flite=0.0)
    done = synth.render_cache(cfg, progress=False)
    cached = sorted((tmp_path / "cache").glob("*.ogg"))
    assert done["rendered"] == len(cached) > 0 and all(p.name.startswith("festival_") for p in cached)
    real_which = shutil.which
    monkeypatch.setattr(synth.shutil, "which", lambda name: None if name == "text2wave" else real_which(name))
    summary = synth.build_corpus(tmp_path / "corpus", cfg, progress=False)
    rows = [json.loads(l) for l in (tmp_path / "corpus" / "all.jsonl").read_text().splitlines()]
    assert summary["festival"] and len(rows) == summary["train"] + summary["test"]
    assert any(r["voice"].startswith("festival:") for r in rows)
    assert all((tmp_path / "corpus" / r["audio"]).stat().st_size > 1000 for r in rows)


def test_augmentations_keep_shape_and_level():
    rng = np.random.default_rng(0)
    wave = (0.5 * np.sin(np.arange(16000) * 0.3) + 0.3 * np.sin(np.arange(16000) * 2.5)).astype(np.float32)
    eq = random_eq(wave.astype(np.float64), rng, 8.0)
    assert eq.shape == wave.shape and np.all(np.isfinite(eq))
    lp = lowpass(wave.astype(np.float64), 3000.0)
    spec, orig = np.abs(np.fft.rfft(lp)), np.abs(np.fft.rfft(wave))
    hi = np.fft.rfftfreq(wave.size, 1 / 16000) > 3600
    assert lp.shape == wave.shape and spec[hi].max() < 1e-6 * orig.max()  # 2.5 rad/sample = 6.4 kHz gone
    assert spec[~hi].max() > 0.9 * orig[~hi].max()  # 0.3 rad/sample = 764 Hz kept
    cfg = AugmentConfig(p_speed=1.0, p_reverb=1.0, p_eq=1.0, p_lowpass=1.0, p_telephone=1.0, p_noise=1.0)
    out, applied = augment(wave, rng, cfg)
    assert [a[:4] for a in applied] == ["spee", "eq", "reve", "lowp", "tele", "nois"]
    assert 0.8 * 16000 < out.size < 2.2 * 16000 and np.abs(out).max() <= 1.0 and out.dtype == np.float32


def test_warp_frequency_moves_a_peak_and_keeps_shape():
    feats = torch.zeros(2, 5, 80)
    feats[:, :, 44] = 1.0
    same = warp_frequency(feats, torch.tensor([1.0, 1.0]))
    assert torch.allclose(same, feats)
    warped = warp_frequency(feats, torch.tensor([1.1, 1 / 1.1]))
    assert warped.shape == feats.shape
    assert int(warped[0, 0].argmax()) == 40  # bin 40 reads input bin 44: formants move down
    assert int(warped[1, 0].argmax()) in (48, 49)
    lengths = torch.tensor([5, 3])
    out = spec_augment(torch.randn(2, 5, 80), lengths, SpecAugmentConfig(freq_warp=0.2),
                       generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 5, 80) and torch.isfinite(out).all()


def test_synth_cli_rejects_bad_shares(tmp_path, capsys):
    _need("espeak-ng", "espeak-ng")
    from rnnkit.cli import main

    zero = ["--digits", "0", "--numbers", "0", "--words", "0", "--sentences", "0"]
    for flags in (["--festival", "1.5"], ["--flite", "0.6", "--festival", "0.6"], ["--copies", "0"],
                  ["--render-only", "festival"], ["--digits", "-5"], zero, ["--workers", "0"]):
        assert main(["speech", "synth", "--out", str(tmp_path / "c"), *flags]) == 2  # -5 and zero: empty corpora
        assert "rnnkit: error:" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    (tmp_path / "f").write_text("x")
    assert main(["speech", "synth", "--out", str(tmp_path / "f")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err  # was "f/wav: Not a directory"


def test_keep_takes_a_subset_without_changing_the_rest(tmp_path):
    _need("espeak-ng", "espeak-ng")
    full = synth.plan_corpus(tmp_path, _small(n_digits=40, cache_dir=str(tmp_path)))
    part = synth.plan_corpus(tmp_path, _small(n_digits=40, cache_dir=str(tmp_path), keep=0.5))
    key = lambda s: (s["split"], s["text"], s["voice"], s["rate"], s["pitch"], s["seed"])  # noqa: E731
    n_train = sum(s["split"] == "train" for s in full)
    assert 0.2 * n_train < sum(s["split"] == "train" for s in part) < 0.8 * n_train
    assert {key(s) for s in part} <= {key(s) for s in full}  # same draws, so cached renderings still match
    assert [key(s) for s in part if s["split"] == "test"] == [key(s) for s in full if s["split"] == "test"]


def test_opus_corpus_files_round_trip(tmp_path):
    from rnnkit.data.audio import load_audio, save_audio

    wave = (0.3 * np.sin(np.arange(16000) * 0.2)).astype(np.float32)
    save_audio(tmp_path / "a.ogg", wave)
    back = load_audio(tmp_path / "a.ogg")
    assert back.shape == wave.shape and (tmp_path / "a.ogg").stat().st_size < 16000  # ~20 kbit/s
    with pytest.raises(UserError, match="audio_format"):
        synth.plan_corpus(tmp_path, _small(audio_format="mp3"))
