"""Speech model: a tiny model learns a few espeak-ng words, save/load round trip, CLI end to end."""
import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("soundfile")
pytest.importorskip("jiwer")

from rnnkit.cli import main  # noqa: E402
from rnnkit.data.audio import save_audio  # noqa: E402
from rnnkit.errors import UserError  # noqa: E402
from rnnkit.tasks.speech.task import SpeechRecognizer, split_long  # noqa: E402
from rnnkit.tasks.speech.data import Utterance, read_dataset  # noqa: E402

WORDS = ["yes", "no", "stop", "go"]
TRAIN_VOICES = ["en-us+m1", "en-us+f2", "en-gb+m3", "en-us+klatt", "en-gb+f4", "en-us+m7"]
TEST_VOICES = ["en-us+m4", "en-gb+f3"]  # never heard in training


def _need_espeak():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); speech synthesis tests skipped")


@pytest.fixture(scope="module")
def word_corpus(tmp_path_factory):
    _need_espeak()
    from rnnkit.data.speech_synth import add_noise_floor, speak

    rng = np.random.default_rng(0)

    root = tmp_path_factory.mktemp("words")
    train, test = [], []
    for voices, rates, out in ((TRAIN_VOICES, (140, 180), train), (TEST_VOICES, (160,), test)):
        for v in voices:
            for w in WORDS:
                for rate in rates:
                    p = root / f"{v.replace('+', '_')}_{w}_{rate}.wav"
                    save_audio(p, add_noise_floor(speak(w, v, rate) * 0.7, rng))
                    p.with_suffix(".txt").write_text(w)
                    out.append(Utterance(p, w))
    manifest = root / "test.jsonl"
    manifest.write_text("".join(json.dumps({"audio": u.audio.name, "text": u.text}) + "\n" for u in test))
    return root, train, test


@pytest.fixture(scope="module")
def tiny_model(word_corpus, tmp_path_factory):
    torch.set_num_threads(1)
    _, train, _ = word_corpus
    asr = SpeechRecognizer(hidden_size=64, num_layers=1, conv_channels=8, epochs=60, lr=3e-3, batch_frames=800,
                           specaugment=False, dropout=0.0, patience=0, progress=False)
    asr.fit(train)
    path = tmp_path_factory.mktemp("model") / "asr"
    asr.save(path)
    return asr, path


def test_tiny_model_learns_words_of_unseen_voices(word_corpus, tiny_model):
    _, _, test = word_corpus
    asr, _ = tiny_model
    assert asr.history.rows[-1]["train_loss"] < 0.5 * asr.history.rows[1]["train_loss"]
    beam = [asr.transcribe(u.audio) for u in test]  # beam search + the training word list
    correct = sum(h == u.text for h, u in zip(beam, test))
    assert correct >= 6, list(zip(beam, [u.text for u in test]))
    report = asr.evaluate(test, beam=1)  # greedy, no word list: characters are mostly right
    assert report["cer"] < 0.6 and report["n"] == len(test)


def test_save_load_round_trip(tiny_model, word_corpus):
    asr, path = tiny_model
    assert {p.name for p in path.iterdir()} >= {"config.json", "model.safetensors", "vocab.json", "words.json"}
    again = SpeechRecognizer.load(path)
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    assert np.allclose(asr.log_probs(wave), again.log_probs(wave), atol=1e-5)
    _, _, test = word_corpus
    assert again.transcribe(test[0].audio) == asr.transcribe(test[0].audio)


def test_load_errors_are_clear(tmp_path, tiny_model):
    _, path = tiny_model
    with pytest.raises(UserError, match="not found"):
        SpeechRecognizer.load(tmp_path / "missing")
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError):
        SpeechRecognizer.load(broken)


def test_read_dataset_formats_and_errors(tmp_path, word_corpus):
    root, _, test = word_corpus
    assert len(read_dataset(root)) == len(list(root.glob("*.wav")))
    assert [u.text for u in read_dataset(root / "test.jsonl")] == [u.text for u in test]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"audio": "a.wav", "text": "x"}\n{"audio": "b.wav"}\n')
    with pytest.raises(UserError, match="bad.jsonl:2"):
        read_dataset(bad)
    with pytest.raises(UserError, match="no audio files"):
        read_dataset(tmp_path)


def test_split_long_cuts_at_quiet_points():
    sr = 16000
    tone = (0.5 * np.sin(np.arange(sr) * 0.2)).astype(np.float32)
    wave = np.concatenate([tone, np.zeros(sr // 2, np.float32)] * 50)  # 75 s, a pause every 1.5 s
    pieces = split_long(wave, chunk_seconds=20.0)
    assert sum(p.size for p in pieces) == wave.size and len(pieces) >= 3
    for p in pieces[:-1]:
        assert abs(p[-1]) < 1e-6  # each cut falls inside a pause
    assert len(split_long(tone)) == 1


def test_cli_transcribe_evaluate_and_errors(tiny_model, word_corpus, tmp_path, capsys):
    root, _, test = word_corpus
    _, model = tiny_model
    assert main(["speech", "transcribe", "--model", str(model)] + [str(u.audio) for u in test[:3]]) == 0
    out = capsys.readouterr()
    assert len(out.out.strip().splitlines()) == 3 and "real-time factor" in out.err
    report = tmp_path / "report.json"
    assert main(["speech", "evaluate", "--model", str(model), "--data", str(root / "test.jsonl"),
                 "--json", str(report)]) == 0
    assert "WER" in capsys.readouterr().out and json.loads(report.read_text())["n"] == len(test)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    assert main(["speech", "transcribe", "--model", str(model), str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error:") and "junk.wav" in err
    # a bad file among good ones fails before any transcript (was: the good ones printed, then the error)
    assert main(["speech", "transcribe", "--model", str(model), str(test[0].audio), str(junk)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "junk.wav" in out.err
    for beam in ("-3", "100000"):  # -3 decoded greedily without a word; 100,000 ran for minutes
        assert main(["speech", "transcribe", "--model", str(model), "--beam", beam, str(test[0].audio)]) == 2
        assert "--beam must lie in 0..1024" in capsys.readouterr().err
    assert main(["speech", "evaluate", "--model", str(model), "--data", str(root / "test.jsonl"),
                 "--json", str(tmp_path)]) == 2  # checked before decoding every utterance
    out = capsys.readouterr()
    assert out.out == "" and "--json" in out.err and "is a folder" in out.err


def test_cli_train_small_and_malformed_input(word_corpus, tmp_path, capsys):
    root, _, _ = word_corpus
    out = tmp_path / "m"
    assert main(["speech", "train", "--data", str(root / "test.jsonl"), "--out", str(out), "--epochs", "1",
                 "--hidden-size", "16", "--num-layers", "1", "--seed", "1"]) == 0
    assert (out / "model.safetensors").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    out2 = tmp_path / "m2"
    assert main(["speech", "train", "--data", str(bad), "--out", str(out2)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err and not out2.exists()
    assert main(["speech", "train", "--data", str(root / "test.jsonl"), "--out", str(out2), "--dropout", "1.5"]) == 2
    assert "--dropout" in capsys.readouterr().err and not out2.exists()


def test_synth_cli_builds_a_voice_held_out_corpus(tmp_path, capsys):
    _need_espeak()
    out = tmp_path / "corpus"
    assert main(["speech", "synth", "--out", str(out), "--digits", "4", "--numbers", "2", "--words", "2",
                 "--sentences", "2", "--test", "3", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train"] == 10 and summary["test"] == 3
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    held_out = set(summary["test_voices"])

    def speaker(voice: str) -> str:  # 'en-us+m4' -> 'm4'; 'flite:kal16' stays
        return voice if voice.startswith("flite:") else voice.split("+")[1]

    assert all(speaker(r["voice"]) not in held_out for r in train)
    assert all(speaker(r["voice"]) in held_out for r in test)
    assert {r["kind"] for r in train} == {"digits", "numbers", "words", "sentences"}
    assert all((out / r["audio"]).is_file() and r["duration"] > 0.2 for r in train + test)


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path, capsys):
    import rnnkit.data.speech_synth as synth

    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="espeak-ng"):
        synth.require_espeak()
    assert main(["speech", "synth", "--out", str(tmp_path / "c")]) == 2
    assert "apt-get install espeak-ng" in capsys.readouterr().err


def test_augment_keeps_length_sane_and_level_bounded():
    from rnnkit.data.speech_synth import AugmentConfig, augment, number_to_words

    rng = np.random.default_rng(0)
    wave = (0.5 * np.sin(np.arange(16000) * 0.1)).astype(np.float32)
    cfg = AugmentConfig(p_speed=1.0, p_reverb=1.0, p_telephone=1.0, p_noise=1.0, p_eq=0.0, p_lowpass=0.0)
    out, applied = augment(wave, rng, cfg)
    assert [a[:5] for a in applied] == ["speed", "rever", "telep", "noise"]
    assert 0.8 * 16000 < out.size < 2.2 * 16000 and np.abs(out).max() <= 1.0 and np.all(np.isfinite(out))
    assert number_to_words(405) == "four hundred and five"
    assert number_to_words(12019) == "twelve thousand and nineteen"


@pytest.mark.slow
def test_demo_section_quick(tmp_path):
    _need_espeak()
    from rnnkit.demo.speech import speech_demo as demo_section

    text = demo_section(tmp_path, quick=True)
    assert "| said | transcribed |" in text and "WER" in text
    assert (tmp_path / "speech_demo.png").stat().st_size > 1000


def test_add_words_extends_the_word_lm(tiny_model, tmp_path, word_corpus, capsys):
    asr, path = tiny_model
    again = SpeechRecognizer.load(path)
    assert "clubs" not in again.word_counts
    again.add_words(["ten of clubs", "clubs"], weight=2)
    assert again.word_counts["clubs"] == 4 and again.bigram_counts["of"]["clubs"] == 2
    assert again.lm.score("clubs") > again.lm.oov_logp
    words = tmp_path / "words.txt"
    words.write_text("ten of clubs\n")
    _, _, test = word_corpus
    assert main(["speech", "transcribe", "--model", str(path), "--words", str(words), str(test[0].audio)]) == 0
    assert main(["speech", "transcribe", "--model", str(path), "--words", str(tmp_path / "nope.txt"),
                 str(test[0].audio)]) == 2
