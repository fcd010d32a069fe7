"""`rnnkit forecast predict --onnx` and `rnnkit text generate --onnx`: the same output as the
PyTorch path, and a missing, unreadable or mismatched .onnx file -> exit 2, one line, no output."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnnkit.cli import main  # noqa: E402

TEXT = "the cat sat on the mat.\nthe dog ran to the cat.\na cat and a dog sat.\n" * 6


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny forecaster and a tiny char LM, each exported (text: step and sequence graphs)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("onnx_cli")
    t = np.arange(60)
    pd.DataFrame({"id": ["a"] * 60 + ["b"] * 60,
                  "y": np.r_[50 + 10 * np.sin(2 * np.pi * t / 12), 5 + np.cos(2 * np.pi * t / 12)]}
                 ).to_csv(root / "series.csv", index=False)
    assert main(["forecast", "train", "--data", str(root / "series.csv"), "--target", "y", "--id-col", "id",
                 "--horizon", "4", "--cell", "gru", "--hidden-size", "8", "--epochs", "1", "--quiet",
                 "--out", str(root / "fc")]) == 0
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    assert main(["text", "train", "--data", str(root / "text.txt"), "--out", str(root / "lm"), "--level", "char",
                 "--hidden-size", "16", "--embed-size", "8", "--bptt", "8", "--batch-size", "4", "--epochs", "1",
                 "--device", "cpu"]) == 0
    for model, out, graph in (("fc", "fc.onnx", "sequence"), ("lm", "lm_step.onnx", "step"),
                              ("lm", "lm_seq.onnx", "sequence")):
        assert main(["export", "--model", str(root / model), "--format", "onnx", "--out", str(root / out),
                     "--graph", graph]) == 0
    (root / "garbage.onnx").write_bytes(b"not an onnx file")
    return root


def test_forecast_predict_onnx_equals_pytorch(models, capsys):
    r = models
    base = ["forecast", "predict", "--model", str(r / "fc"), "--data", str(r / "series.csv"), "--quantiles", "0.1,0.9"]
    assert main(base + ["--out", str(r / "pt.csv")]) == 0
    assert main(base + ["--out", str(r / "ort.csv"), "--onnx", str(r / "fc.onnx")]) == 0
    pt, ort = pd.read_csv(r / "pt.csv"), pd.read_csv(r / "ort.csv")
    assert list(pt.columns) == list(ort.columns) and len(pt) == len(ort) == 8
    for col in ("forecast", "q0.1", "q0.9"):
        np.testing.assert_allclose(ort[col].to_numpy(), pt[col].to_numpy(), rtol=1e-5, atol=1e-4)


def test_text_generate_onnx_equals_pytorch(models, capsys):
    r = models
    base = ["text", "generate", "--model", str(r / "lm"), "--prompt", "the ", "--length", "30", "--seed", "2"]
    assert main(base) == 0
    pt = capsys.readouterr().out
    assert main(base + ["--onnx", str(r / "lm_step.onnx")]) == 0
    assert capsys.readouterr().out == pt
    assert main(base + ["--temperature", "0", "--onnx", str(r / "lm_step.onnx")]) == 0
    greedy_ort = capsys.readouterr().out
    assert main(base + ["--temperature", "0"]) == 0
    assert capsys.readouterr().out == greedy_ort


BAD_FORECAST = {"missing": ("nope.onnx", "not found"), "garbage": ("garbage.onnx", "not a readable ONNX"),
                "text graph": ("lm_step.onnx", "forecast network")}


@pytest.mark.parametrize("case", list(BAD_FORECAST))
def test_forecast_predict_bad_onnx_exit_2_no_output(models, tmp_path, capsys, case):
    r = models
    name, message = BAD_FORECAST[case]
    out = tmp_path / "pred.csv"
    assert main(["forecast", "predict", "--model", str(r / "fc"), "--data", str(r / "series.csv"),
                 "--out", str(out), "--onnx", str(r / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error:") and message in err[0]
    assert not out.exists() and not list(tmp_path.iterdir())


BAD_TEXT = {"missing": ("nope.onnx", "not found"), "garbage": ("garbage.onnx", "not a readable ONNX"),
            "sequence graph": ("lm_seq.onnx", "--graph step"), "forecast graph": ("fc.onnx", "--graph step")}


@pytest.mark.parametrize("case", list(BAD_TEXT))
def test_text_generate_bad_onnx_exit_2_nothing_printed(models, capsys, case):
    r = models
    name, message = BAD_TEXT[case]
    assert main(["text", "generate", "--model", str(r / "lm"), "--prompt", "the ", "--length", "5",
                 "--onnx", str(r / name)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit: error:") and message in err[0]
    assert captured.out == ""


def test_onnx_of_another_model_of_the_same_task_is_refused(models, tmp_path, capsys):
    """A step graph exported from a differently sized LM passes the input-name check but not the
    state-size check; a forecaster with another horizon fails the horizon check."""
    r = models
    assert main(["text", "train", "--data", str(r / "text.txt"), "--out", str(tmp_path / "lm2"), "--level", "char",
                 "--hidden-size", "12", "--embed-size", "8", "--bptt", "8", "--batch-size", "4", "--epochs", "1",
                 "--device", "cpu"]) == 0
    assert main(["export", "--model", str(tmp_path / "lm2"), "--out", str(tmp_path / "lm2.onnx"),
                 "--graph", "step"]) == 0
    capsys.readouterr()
    assert main(["text", "generate", "--model", str(r / "lm"), "--length", "5", "--onnx",
                 str(tmp_path / "lm2.onnx")]) == 2
    captured = capsys.readouterr()
    assert "exported from another model" in captured.err and captured.out == ""
    assert main(["forecast", "train", "--data", str(r / "series.csv"), "--target", "y", "--id-col", "id",
                 "--horizon", "3", "--cell", "gru", "--hidden-size", "8", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "fc3")]) == 0
    assert main(["export", "--model", str(tmp_path / "fc3"), "--out", str(tmp_path / "fc3.onnx")]) == 0
    capsys.readouterr()
    out = tmp_path / "p.csv"
    assert main(["forecast", "predict", "--model", str(r / "fc"), "--data", str(r / "series.csv"), "--out", str(out),
                 "--onnx", str(tmp_path / "fc3.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rnnkit: error:" in err[0] and not out.exists()
