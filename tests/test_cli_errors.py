"""Bad files through the command line (issue 15): one line ``rnnkit: error: ...`` on stderr,
exit code 2, nothing on stdout and no output folder or file -- for the issue's own examples."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import rnnkit
from rnnkit.cli import main

TS = b"@problemName T\n@classLabel true a b\n@data\n1,2,3:a\n3,2,1:b\n1,2,2:a\n3,3,1:b\n"


def assert_one_line_error(capsys, argv: list[str], match: str) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rnnkit: error: ") and match in err, err
    assert "Traceback" not in err and out == ""
    return err


def test_npz_with_scalar_x(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", X=np.array(1.0), y=np.arange(4))
    assert_one_line_error(capsys, ["classify", "train", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m")],
                          "X must have shape")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("content, match", [
    (TS, "not a valid gzip file"),  # a plain file named .ts.gz
    (gzip.compress(TS.replace(b"@data", b"@d\xe9ta"), mtime=0), "not valid UTF-8"),
    (gzip.compress(TS.replace(b"3,2,1:b", b"3,inf,1:b"), mtime=0), "non-finite value"),  # trained with exit 0 before
    (gzip.compress(TS.replace(b"3,2,1:b", b"3,1e39,1:b"), mtime=0), "d.ts.gz:5: dimension 0, value 2"),
])
def test_ts_gz_problems(tmp_path, capsys, content, match):
    p = tmp_path / "d.ts.gz"
    p.write_bytes(content)
    assert_one_line_error(capsys, ["classify", "train", "--data", str(p), "--out", str(tmp_path / "m")], match)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("last", ["1e20", "9" * 400])
def test_forecast_target_that_would_overflow(tmp_path, capsys, last):
    p = tmp_path / "s.csv"
    p.write_text("t,y\n" + "".join(f"{i},{np.sin(i):.3f}\n" for i in range(40)) + f"40,{last}\n")
    assert_one_line_error(capsys, ["forecast", "train", "--data", str(p), "--target", "y", "--time-col", "t",
                                   "--horizon", "3", "--out", str(tmp_path / "m")], "line 42")
    assert not (tmp_path / "m").exists()


def test_nan_weights_refused_before_predicting(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 5, 1)).astype(np.float32)
    y = np.array(["a", "b"] * 8)
    rnnkit.SequenceClassifier(hidden_size=8, epochs=1, progress=False).fit(X, y).save(tmp_path / "m")
    t = load_file(str(tmp_path / "m" / "model.safetensors"))
    k = sorted(t)[-1]
    t[k] = np.full_like(t[k], np.nan)
    save_file(t, str(tmp_path / "m" / "model.safetensors"))
    np.savez(tmp_path / "x.npz", X=X[:3])
    assert_one_line_error(capsys, ["classify", "predict", "--model", str(tmp_path / "m"), "--data",
                                   str(tmp_path / "x.npz"), "--out", str(tmp_path / "p.csv")], f"tensor '{k}'")
    assert not (tmp_path / "p.csv").exists()


def test_manifest_with_boolean_audio(tmp_path, capsys):
    p = tmp_path / "train.jsonl"
    p.write_text('{"audio": "a.wav", "text": "one"}\n{"audio": true, "text": "two"}\n')
    assert_one_line_error(capsys, ["speech", "train", "--data", str(p), "--out", str(tmp_path / "m")],
                          "train.jsonl:2: 'audio' must be")


def test_text_not_utf8(tmp_path, capsys):
    p = tmp_path / "t.txt"
    p.write_bytes(b"hello there\n\xff\xfe broken\n")
    assert_one_line_error(capsys, ["text", "train", "--data", str(p), "--out", str(tmp_path / "m")], "not valid UTF-8 (line 2)")


def test_os_error_is_one_line(tmp_path, capsys):
    """An OSError outside the loaders' checks (here: --out below a file) is one line too."""
    (tmp_path / "file").write_text("x")
    np.savez(tmp_path / "d.npz", X=np.random.default_rng(0).normal(size=(8, 4)), y=np.arange(8) % 2)
    assert_one_line_error(capsys, ["classify", "train", "--data", str(tmp_path / "d.npz"), "--epochs", "1",
                                   "--out", str(tmp_path / "file" / "m")], "file")


def test_message_quoting_a_line_break_stays_one_line(tmp_path, capsys):
    """A quoted CSV header holding a line break is named in the error, escaped."""
    p = tmp_path / "d.csv"
    p.write_text('"my\ntext",label\nabc,a\n')
    assert_one_line_error(capsys, ["classify", "train", "--data", str(p), "--out", str(tmp_path / "m")],
                          "columns are my\\ntext, label")


def test_failed_train_leaves_no_model_folder(tmp_path, capsys):
    """Bad data found after --out was created (an unseen class in --val-data, a corrupt .gz corpus)
    removes the folder again, for classify and text as for forecast."""
    train, val = tmp_path / "t.csv", tmp_path / "v.csv"
    train.write_text("text,label\n" + "".join(f"w{i},{'ab'[i % 2]}\n" for i in range(10)))
    val.write_text("text,label\nw1,a\nw2,zzz\n")
    assert_one_line_error(capsys, ["classify", "train", "--data", str(train), "--val-data", str(val), "--epochs", "1", "--quiet",
                                   "--out", str(tmp_path / "m")], "'zzz'")
    assert not (tmp_path / "m").exists()
    corpus = tmp_path / "c.txt.gz"
    corpus.write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    assert_one_line_error(capsys, ["text", "train", "--data", str(corpus), "--quiet", "--out", str(tmp_path / "t")], "cannot read")
    assert not (tmp_path / "t").exists()


def test_resume_into_another_tasks_folder_is_refused_untouched(tmp_path, capsys):
    """classify --resume on a text model folder wrote resolved_config.json into it, then failed on shapes."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\n" * 200)
    model = tmp_path / "m"
    assert main(["text", "train", "--data", str(corpus), "--out", str(model), "--epochs", "1", "--bptt", "16",
                 "--batch-size", "4", "--hidden-size", "8", "--quiet"]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in model.iterdir())
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"w{i},{'ab'[i % 2]}\n" for i in range(10)))
    assert_one_line_error(capsys, ["classify", "train", "--data", str(data), "--resume", "--quiet",
                                   "--out", str(model)], "holds a 'text' model, not a 'classify' model")
    assert sorted(p.name for p in model.iterdir()) == before
    series = tmp_path / "s.csv"
    series.write_text("unique_id,ds,y\n" + "".join(f"a,{i},{i % 5}\n" for i in range(40)))
    assert_one_line_error(capsys, ["forecast", "train", "--data", str(series), "--horizon", "3", "--resume",
                                   "--out", str(model)], "holds a 'text' model, not a 'forecast' model")
    assert sorted(p.name for p in model.iterdir()) == before


def test_config_file_of_another_task_is_named(tmp_path, capsys):
    """A --config file with another task's settings names the file, not only 'settings'."""
    cfg, data = tmp_path / "c.toml", tmp_path / "d.csv"
    cfg.write_text("bptt = 5\n")
    data.write_text("text,label\na,x\nb,y\n")
    assert_one_line_error(capsys, ["classify", "train", "--data", str(data), "--out", str(tmp_path / "m"),
                                   "--config", str(cfg)], f"--config {cfg} and flags): unknown setting(s) bptt")
