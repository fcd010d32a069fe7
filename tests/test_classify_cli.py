"""`rnnkit classify train|predict|evaluate`: the happy path and malformed input (exit 2, nothing written)."""
import json

import numpy as np
import pandas as pd
import pytest

from rnnkit.cli import main

QUICK = ["--epochs", "2", "--hidden-size", "8", "--quiet", "--device", "cpu"]


def _csv(path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(["vowelly", "consonant"])
        pool = list("aeiou") if label == "vowelly" else list("bcdkt")
        rows.append(("".join(rng.choice(pool, size=rng.integers(3, 9))), label))
    pd.DataFrame(rows, columns=["sequence", "label"]).to_csv(path, index=False)
    return path


def test_train_predict_evaluate_csv(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv")
    model = tmp_path / "model"
    assert main(["classify", "train", "--data", str(data), "--out", str(model), "--lr", "0.02", *QUICK]) == 0
    for f in ("config.json", "model.safetensors", "labels.json", "vocab.json"):
        assert (model / f).is_file()
    assert json.loads((model / "config.json").read_text())["task"] == "classify"
    capsys.readouterr()
    pred = tmp_path / "pred.csv"
    assert main(["classify", "predict", "--model", str(model), "--data", str(data), "--out", str(pred)]) == 0
    df = pd.read_csv(pred)
    assert list(df.columns[-2:]) == ["p_consonant", "p_vowelly"] and len(df) == 120
    np.testing.assert_allclose(df[["p_consonant", "p_vowelly"]].sum(axis=1), 1.0, atol=1e-5)
    assert (df["label"] == df["true_label"]).mean() > 0.9  # an easy task
    ev = tmp_path / "eval"
    assert main(["classify", "evaluate", "--model", str(model), "--data", str(data), "--out", str(ev)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "| true \\ pred |" in out
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.9 and (ev / "confusion.png").stat().st_size > 1000


def test_train_npz_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6, 3)).astype(np.float32)
    y = np.array(["up", "down"] * 20)
    X[y == "up", :, 0] += 2.0
    np.savez(tmp_path / "d.npz", X=X, y=y, lengths=rng.integers(2, 7, 40))
    assert main(["classify", "train", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m1"), *QUICK]) == 0
    assert (tmp_path / "m1" / "scaler.json").is_file()
    folder = tmp_path / "classes"
    folder.mkdir()
    (folder / "greek.txt").write_text("Papadopoulos\nNikolaidis\nGeorgiou\n", encoding="utf-8")
    (folder / "irish.txt").write_text("O'Brien\nMurphy\nKelly\n", encoding="utf-8")
    assert main(["classify", "train", "--data", str(folder), "--out", str(tmp_path / "m2"), *QUICK]) == 0
    assert json.loads((tmp_path / "m2" / "labels.json").read_text()) == ["greek", "irish"]


def _bad_inputs(tmp_path):
    good = _csv(tmp_path / "good.csv", n=30)
    one = tmp_path / "one.csv"
    one.write_text("sequence,label\nab,x\nac,x\nbd,y\n", encoding="utf-8")
    empty_class = tmp_path / "folder"
    empty_class.mkdir()
    (empty_class / "a.txt").write_text("x\ny\n")
    (empty_class / "b.txt").write_text("")
    np.savez(tmp_path / "shape.npz", X=np.zeros((5, 4, 2)), y=np.array(["a", "b", "a", "b"]))
    nan = np.zeros((4, 3, 2))
    nan[2, 1, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=nan, y=np.array(["a", "b", "a", "b"]))
    return {
        "unknown label column": ([str(good), "--label-col", "nope"], "no label column 'nope'"),
        "one example": ([str(one)], "class 'y' has 1 example"),
        "empty class": ([str(empty_class)], "class 'b' has no examples"),
        "npz shapes": ([str(tmp_path / "shape.npz")], "X has 5 examples but y has 4"),
        "NaN": ([str(tmp_path / "nan.npz")], "non-finite value"),
        "missing file": ([str(tmp_path / "nope.csv")], "no such file"),
    }


@pytest.mark.parametrize("case", ["unknown label column", "one example", "empty class", "npz shapes", "NaN",
                                  "missing file"])
def test_bad_input_exit_2_and_nothing_written(tmp_path, capsys, case):
    args, msg = _bad_inputs(tmp_path)[case]
    out = tmp_path / "model"
    code = main(["classify", "train", "--data", args[0], *args[1:], "--out", str(out), *QUICK])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rnnkit: error:") and msg in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_predict_bad_model_and_refuses_to_overwrite(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", n=30)
    pred = tmp_path / "pred.csv"
    assert main(["classify", "predict", "--model", str(tmp_path / "none"), "--data", str(data), "--out", str(pred)]) == 2
    assert not pred.exists()
    model = tmp_path / "m"
    assert main(["classify", "train", "--data", str(data), "--out", str(model), *QUICK]) == 0
    capsys.readouterr()
    assert main(["classify", "train", "--data", str(data), "--out", str(model), *QUICK]) == 2
    assert "already holds a model" in capsys.readouterr().err
    # output paths are checked before predicting: a folder as the CSV (the error named a temp file),
    # a file as evaluate's folder (it printed the metrics, then failed)
    assert main(["classify", "predict", "--model", str(model), "--data", str(data), "--out", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp*"))
    assert main(["classify", "evaluate", "--model", str(model), "--data", str(data), "--out", str(data)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "exists and is not a folder" in err


def test_resume_continues_training(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", n=40)
    model = tmp_path / "m"
    args = ["classify", "train", "--data", str(data), "--out", str(model), "--hidden-size", "8", "--quiet", "--device", "cpu"]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    rows = (model / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]  # epoch 1 kept, epoch 2 added
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs"] == 2
