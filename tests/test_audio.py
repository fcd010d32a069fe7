"""Audio loading: resampling, mono mixing, and clear errors for bad files."""
import numpy as np
import pytest

sf = pytest.importorskip("soundfile")

from rnnkit.cli import main  # noqa: E402
from rnnkit.data.audio import AudioLimits, check_wave, load_audio, save_audio  # noqa: E402
from rnnkit.errors import UserError  # noqa: E402


def _tone(sr: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("sr,fmt", [(44100, "wav"), (8000, "flac"), (22050, "ogg")])
def test_resample_to_16k_keeps_the_tone(tmp_path, sr, fmt):
    path = tmp_path / f"tone.{fmt}"
    sf.write(str(path), _tone(sr), sr)
    wave = load_audio(path)
    assert wave.dtype == np.float32
    assert abs(wave.size - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(wave))
    peak_hz = np.argmax(spectrum) * 16000 / wave.size
    assert abs(peak_hz - 440) < 3


def test_stereo_is_mixed_to_mono(tmp_path):
    x = _tone(16000)
    sf.write(str(tmp_path / "st.wav"), np.stack([x, np.zeros_like(x)], axis=1), 16000)
    wave = load_audio(tmp_path / "st.wav")
    assert wave.ndim == 1 and np.allclose(wave, x / 2, atol=1e-4)


def test_save_audio_round_trip_is_atomic(tmp_path):
    x = _tone(16000)
    save_audio(tmp_path / "a.wav", x)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]
    assert np.allclose(load_audio(tmp_path / "a.wav"), x, atol=1e-4)


def test_bad_audio_gives_clear_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 10)
    sf.write(str(tmp_path / "silent.wav"), np.zeros(16000, dtype=np.float32), 16000)
    sf.write(str(tmp_path / "noframes.wav"), np.zeros(0, dtype=np.float32), 16000)
    sf.write(str(tmp_path / "long.wav"), _tone(16000, 3.0), 16000)
    with pytest.raises(UserError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(UserError, match="cannot read audio file .*junk.wav"):
        load_audio(tmp_path / "junk.wav")
    with pytest.raises(UserError, match="silent"):
        load_audio(tmp_path / "silent.wav")
    with pytest.raises(UserError, match="no samples"):
        load_audio(tmp_path / "noframes.wav")
    with pytest.raises(UserError, match="too long"):
        load_audio(tmp_path / "long.wav", limits=AudioLimits(max_seconds=2.0))
    with pytest.raises(UserError, match="too large"):
        load_audio(tmp_path / "long.wav", limits=AudioLimits(max_bytes=1000))
    with pytest.raises(UserError, match="not found"):
        load_audio(tmp_path / "missing.wav")


def test_cli_transcribe_bad_audio_exit_2(tmp_path, capsys):
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunk")
    code = main(["speech", "transcribe", "--model", str(tmp_path / "nomodel"), str(tmp_path / "junk.wav")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rnnkit: error:") and "Traceback" not in err


@pytest.mark.parametrize("wave, match", [
    (np.full(100, np.nan, np.float32), "NaN or infinite"),             # transcribed as '' before
    (np.zeros((100, 2), np.float32), r"mono samples of shape \(samples,\)"),
    ((np.arange(100) * 30).astype(np.int16), "divide by 32768"),       # unscaled PCM gave garbage
    (np.full(100, 1e30, np.float32), "amplitude 1e\\+30"),
])
def test_in_memory_wave_for_transcription_is_checked(wave, match):
    with pytest.raises(UserError, match=match):
        check_wave(wave)
    assert check_wave(np.zeros(5)).dtype == np.float32
