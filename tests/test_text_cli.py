"""`rnnkit text ...`: train -> generate / next-word / evaluate, and one-line errors with exit 2."""
import json

import pytest
import torch

from rnnkit.cli import main

PHRASES = "the cat sat on the mat.\nthe dog ate the bone.\n" * 40
SMALL = ["--hidden-size", "32", "--embed-size", "32", "--bptt", "8", "--batch-size", "4", "--lr", "1e-2",
         "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("text")
    data = folder / "phrases.txt"
    data.write_text(PHRASES, encoding="utf-8")
    out = folder / "model"
    assert main(["text", "train", "--data", str(data), "--out", str(out), "--level", "word", "--epochs", "25", "--dropout", "0", *SMALL]) == 0
    return folder, out


def test_train_writes_a_model_folder_and_metrics(trained, capsys):
    folder, out = trained
    assert {"config.json", "model.safetensors", "vocab.json", "metrics.json"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "text" and config["options"]["level"] == "word" and config["net"]["tie_weights"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["loss"] < 1.0


def test_generate_same_seed_same_text(trained, capsys):
    _, out = trained
    args = ["text", "generate", "--model", str(out), "--prompt", "the dog", "--length", "12", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("the dog ate")


def test_next_word_and_evaluate(trained, capsys):
    folder, out = trained
    assert main(["text", "next-word", "--model", str(out), "--prompt", "the cat sat on the", "--k", "3", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert ranked[0]["word"] == "mat" and len(ranked) == 3
    assert main(["text", "next-word", "--model", str(out), "--prompt", "the cat sat on the"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split("\t")[1] == "mat"
    assert main(["text", "next-word", "--model", str(out), "--prompt", "the", "--k", "1000000000"]) == 2
    assert "--k must lie in 1..1000" in capsys.readouterr().err  # a character model's beam search never ended
    held = folder / "held.txt"
    held.write_text("the dog ate the bone.\n" * 5, encoding="utf-8")
    assert main(["text", "evaluate", "--model", str(out), "--data", str(held)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"loss", "perplexity", "bits_per_char", "top1_accuracy", "top5_accuracy"} <= set(scores)
    assert scores["top1_accuracy"] > 0.8


def test_unknown_prompt_word_is_a_warning(trained, capsys):
    _, out = trained
    assert main(["text", "next-word", "--model", str(out), "--prompt", "the zebra sat on"]) == 0
    err = capsys.readouterr().err
    assert "rnnkit: warning:" in err and "zebra" in err


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"caf\xe9 cr\xe8me br\xfbl\xe9e\n" * 50, "UTF-8"),
    (b"too small\n", "too small"),
])
def test_bad_training_data_exit_2_nothing_written(tmp_path, capsys, content, message):
    data = tmp_path / "bad.txt"
    data.write_bytes(content)
    out = tmp_path / "model"
    assert main(["text", "train", "--data", str(data), "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_model_and_options_exit_2(trained, tmp_path, capsys):
    _, out = trained
    assert main(["text", "generate", "--model", str(tmp_path / "none")]) == 2
    assert main(["text", "generate", "--model", str(out), "--top-p", "1.5"]) == 2
    assert main(["text", "evaluate", "--model", str(out), "--data", str(tmp_path / "missing.txt")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["text", "train", "--data", "x", "--out", str(tmp_path / "m"), "--level", "byte"])
    assert exc.value.code == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("rnnkit: error:") for line in errs) and len(errs) == 4


def test_resume_continues_training(tmp_path, capsys):
    torch.set_num_threads(1)
    data = tmp_path / "phrases.txt"
    data.write_text(PHRASES, encoding="utf-8")
    out = tmp_path / "model"
    base = ["text", "train", "--data", str(data), "--out", str(out), "--level", "char", *SMALL]
    assert main([*base, "--epochs", "2"]) == 0
    assert main([*base, "--epochs", "3", "--resume"]) == 0
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # header + epochs 1, 2 (first run) and 3 (resumed)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3
