"""Speech corpus layouts (LibriSpeech, Common Voice, NeMo, Kaldi, `speech synth`, audio + .txt) on small
files made here: detection, transcripts, audio segments, features, and `speech train --data` on each."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")

from rnnkit.cli import main  # noqa: E402
from rnnkit.data.features import FbankConfig  # noqa: E402
from rnnkit.errors import UserError  # noqa: E402
from rnnkit.tasks.speech.corpora import detect_layout, load_utterance, read_corpus  # noqa: E402
from rnnkit.tasks.speech.ctc_decode import CharVocab  # noqa: E402
from rnnkit.tasks.speech.data import FeatureSet, Utterance, read_dataset  # noqa: E402

SR = 16000
TEXTS = ["yes", "no", "stop", "go"]


def _tone(i: int, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    """A different chirp per utterance (not silence: the loader refuses silent audio)."""
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * (200 + 80 * i) * t * (1 + t))).astype(np.float32)


def _write(path, wave, sr=SR, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sr, **kw)


def _check(utts, texts, n_frames_min=50):
    assert sorted(u.text.lower() for u in utts) == sorted(texts)
    feats = FeatureSet(utts, CharVocab(), FbankConfig())  # every file decodes into features
    assert len(feats) == len(texts) and all(f.shape[0] >= n_frames_min for f in feats.feats)
    return feats


def test_librispeech_layout(tmp_path):
    root = tmp_path / "LibriSpeech" / "train-clean-5"
    for spk, chap in ((19, 198), (26, 495)):
        d = root / str(spk) / str(chap)
        lines = []
        for k, text in enumerate(TEXTS[:2]):
            utt = f"{spk}-{chap}-{k:04d}"
            _write(d / f"{utt}.flac", _tone(k + spk), format="FLAC")
            lines.append(f"{utt} {text.upper()}")
        (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    assert detect_layout(tmp_path / "LibriSpeech") == "librispeech"
    utts = read_corpus(tmp_path / "LibriSpeech")
    assert all(u.audio.suffix == ".flac" for u in utts)
    _check(utts, TEXTS[:2] * 2)
    (root / "19" / "198" / "19-198-0001.flac").unlink()
    with pytest.raises(UserError, match=r"19-198\.trans\.txt:2: audio 19-198-0001\.flac not found"):
        read_corpus(root)


def test_common_voice_layout_with_mp3(tmp_path):
    root = tmp_path / "cv-corpus" / "en"
    mp3 = "MP3" in sf.available_formats()
    ext = "mp3" if mp3 else "wav"  # libsndfile >= 1.1 writes MP3; older ones: WAV clips, same reader
    rows = ["client_id\tpath\tsentence_id\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment"]
    for k, text in enumerate(TEXTS):
        name = f"common_voice_en_{k}.{ext}"
        _write(root / "clips" / name, _tone(k, sr=48000), sr=48000,
               **({"format": "MP3"} if mp3 else {}))
        rows.append(f"c{k}\t{name}\ts{k}\t{text.capitalize()}.\t2\t0\t\t\t\ten\t")
    (root / "train.tsv").write_text("\n".join(rows[:3]) + "\n")
    (root / "dev.tsv").write_text("\n".join([rows[0], *rows[3:]]) + "\n")
    assert detect_layout(root) == "commonvoice" and detect_layout(root / "dev.tsv") == "commonvoice"
    train = read_corpus(root)  # the folder: train.tsv
    _check(train, ["yes.", "no."])
    _check(read_corpus(root / "dev.tsv"), ["stop.", "go."])
    if not mp3:
        pytest.skip("this libsndfile cannot write MP3; Common Voice read from WAV clips instead")
    assert train[0].audio.suffix == ".mp3"


def test_nemo_manifest_with_offsets(tmp_path):
    # one long recording holding two utterances, plus one file of its own
    long = np.concatenate([_tone(0), np.zeros(SR // 2, np.float32), _tone(1)])
    _write(tmp_path / "audio" / "long.wav", long)
    _write(tmp_path / "audio" / "single.flac", _tone(2), format="FLAC")
    rows = [{"audio_filepath": "audio/long.wav", "duration": 1.0, "offset": 0.0, "text": "yes"},
            {"audio_filepath": "audio/long.wav", "duration": 1.0, "offset": 1.5, "text": "no"},
            {"audio_filepath": str(tmp_path / "audio" / "single.flac"), "duration": 1.0, "text": "stop"}]
    manifest = tmp_path / "train_manifest.json"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    utts = read_corpus(manifest)
    assert [u.offset for u in utts] == [0.0, 1.5, 0.0] and utts[0].audio == tmp_path / "audio" / "long.wav"
    second = load_utterance(utts[1])
    assert second.shape == (SR,) and np.allclose(second, _tone(1), atol=1e-3)  # the segment, not the file
    _check(utts, ["yes", "no", "stop"])
    (tmp_path / "bad.json").write_text('{"audio_filepath": "a.wav", "text": "x", "offset": -1}\n')
    with pytest.raises(UserError, match="bad.json:1: 'offset'"):
        read_corpus(tmp_path / "bad.json")


def test_kaldi_layout_with_segments_and_pipes_refused(tmp_path):
    d = tmp_path / "data" / "train"
    d.mkdir(parents=True)
    _write(tmp_path / "wav" / "rec1.wav", np.concatenate([_tone(0), _tone(1)]))
    _write(tmp_path / "wav" / "rec2.wav", _tone(2))
    (d / "wav.scp").write_text(f"rec1 {tmp_path / 'wav' / 'rec1.wav'}\nrec2 {tmp_path / 'wav' / 'rec2.wav'}\n")
    (d / "text").write_text("utt1 YES\nutt2 NO\nutt3 STOP\n")
    (d / "segments").write_text("utt1 rec1 0.0 1.0\nutt2 rec1 1.0 2.0\nutt3 rec2 0.0 -1\n")
    assert detect_layout(d) == "kaldi"
    utts = read_corpus(d)
    assert [(u.offset, u.duration) for u in utts] == [(0.0, 1.0), (1.0, 1.0), (0.0, None)]
    _check(utts, ["yes", "no", "stop"])
    (d / "segments").unlink()  # without segments: wav.scp is keyed by utterance
    (d / "wav.scp").write_text(f"utt3 {tmp_path / 'wav' / 'rec2.wav'}\n")
    assert [u.text for u in read_corpus(d / "wav.scp")] == ["STOP"]
    (d / "wav.scp").write_text("utt1 sox rec1.flac -t wav - |\n")
    with pytest.raises(UserError, match="only plain audio paths"):
        read_corpus(d)
    (d / "wav.scp").write_text(f"rec1 {tmp_path / 'wav' / 'rec1.wav'}\n")
    (d / "segments").write_text("utt1 rec1 0.9 0.1\n")  # end before start: was "audio too short (8 frames)"
    with pytest.raises(UserError, match=r"segments:1: start 0.9 and end 0.1"):
        read_corpus(d)


def test_common_voice_tsv_not_utf8(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "train.tsv").write_bytes(b"client_id\tpath\tsentence\nc0\ta.wav\tcaf\xe9\n")
    with pytest.raises(UserError, match=r"train.tsv:2: not valid UTF-8"):  # was a UnicodeDecodeError traceback
        read_corpus(tmp_path)


def test_pairs_without_transcripts_are_named(tmp_path, capsys):
    for k, text in enumerate(TEXTS):
        _write(tmp_path / f"u{k}.wav", _tone(k))
        if k != 2:
            (tmp_path / f"u{k}.txt").write_text(text)
    assert len(read_corpus(tmp_path)) == 3  # trained on 3 of 4 files without a word before
    err = capsys.readouterr().err
    assert "warning: 1 of 4 audio files" in err and "u2.wav" in err


def test_detection_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_dataset(tmp_path / "missing")
    with pytest.raises(UserError, match="no audio files with a same-name .txt"):
        read_dataset(tmp_path)
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(UserError, match="not a speech manifest"):
        read_dataset(tmp_path / "notes.csv")


def _synth_like(root):
    """The layout `rnnkit speech synth` writes: wav/ + train.jsonl / test.jsonl / all.jsonl."""
    rows = {"train": [], "test": []}
    for i in range(8):
        split = "test" if i >= 6 else "train"
        name = f"wav/{split}_{i:06d}.wav"
        _write(root / name, _tone(i % 4))
        rows[split].append({"audio": name, "text": TEXTS[i % 4], "duration": 1.0})
    for split in ("train", "test"):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[split]))
    (root / "all.jsonl").write_text((root / "train.jsonl").read_text() + (root / "test.jsonl").read_text())


def test_speech_train_reads_a_synth_folder(tmp_path, capsys):
    """The README's `speech synth --out corpus/ && speech train --data corpus/` works: the folder's
    train.jsonl is read (on files laid out like synth's, so no synthesizer is needed)."""
    torch.set_num_threads(1)
    corpus = tmp_path / "corpus"
    _synth_like(corpus)
    assert detect_layout(corpus) == "synth" and len(read_corpus(corpus)) == 6
    out = tmp_path / "asr"
    args = ["speech", "train", "--data", str(corpus), "--out", str(out), "--hidden-size", "16", "--num-layers", "1",
            "--epochs", "2", "--val-data", str(corpus / "test.jsonl")]
    assert main(args) == 0, capsys.readouterr().err
    assert (out / "model.safetensors").is_file()
    assert main(["speech", "evaluate", "--model", str(out), "--data", str(corpus / "test.jsonl")]) == 0
    assert "WER" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_readme_synth_then_train(tmp_path, capsys):
    torch.set_num_threads(1)
    corpus = tmp_path / "corpus"
    assert main(["speech", "synth", "--out", str(corpus), "--digits", "6", "--numbers", "0", "--words", "4",
                 "--sentences", "0", "--test", "2", "--voices", "2", "--flite", "0"]) == 0
    assert main(["speech", "train", "--data", str(corpus), "--out", str(tmp_path / "asr"), "--hidden-size", "16",
                 "--num-layers", "1", "--epochs", "1"]) == 0, capsys.readouterr().err


def test_disk_feature_cache_equals_in_memory_and_is_reused(tmp_path):
    from rnnkit.tasks.speech import feature_cache
    from rnnkit.tasks.speech.feature_cache import DiskFeatureSet

    utts = []
    for k in range(6):
        _write(tmp_path / f"u{k}.wav", _tone(k, seconds=0.5 + 0.25 * k))
        utts.append(Utterance(tmp_path / f"u{k}.wav", TEXTS[k % 4]))
    mem = FeatureSet(utts, CharVocab(), FbankConfig())
    old = feature_cache.SHARD_BYTES
    feature_cache.SHARD_BYTES = 40_000  # several shards even for these few utterances
    try:
        disk = DiskFeatureSet(utts, CharVocab(), FbankConfig())
    finally:
        feature_cache.SHARD_BYTES = old
    assert not disk.reused and len(disk.shards) > 1 and disk.texts == mem.texts
    for a, b in zip(mem.batches(300, shuffle=True, seed=3), disk.batches(300, shuffle=True, seed=3)):
        assert all(torch.equal(x, y) for x, y in zip(a, b))  # same buckets, same float16 features
    again = DiskFeatureSet(utts, CharVocab(), FbankConfig())
    assert again.reused and again.folder == disk.folder
    (tmp_path / "u0.wav").unlink()
    _write(tmp_path / "u0.wav", _tone(5, seconds=0.6))  # changed audio: features computed again
    assert not DiskFeatureSet(utts, CharVocab(), FbankConfig()).reused


def test_letters_outside_the_alphabet_are_counted_on_stderr(capsys):
    """A German corpus trained with 'schön' read as 'sch n' and no word said."""
    from rnnkit.tasks.speech.task import _warn_dropped_letters

    utts = [Utterance(Path("a.wav"), "Schön, grüß dich!"), Utterance(Path("b.wav"), "Yes. It's 42")]
    _warn_dropped_letters(utts, CharVocab())
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: warning: 3 transcript letters") and "'ö' (1)" in err and "'ß' (1)" in err
    _warn_dropped_letters(utts[1:], CharVocab())  # punctuation and digits are normalisation, not a warning
    assert capsys.readouterr().err == ""
