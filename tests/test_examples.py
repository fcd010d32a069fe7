"""The three tutorial examples meet their goals (issue 3, section 5), with small settings.

Each test trains a real model: sine held-out RMSE <= 0.01, one-unit counting MAE <= 0.1
and extrapolation within 0.5, i2h names accuracy far above the majority class.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnkit.data.synthetic import count_pairs, next_value_windows, sine_series
from rnnkit.tutorials.count import PLAIN_TUTORIAL, CountConfig, load_counter, run_count, save_counter
from rnnkit.tutorials.names_i2h import I2HConfig, predict, run_i2h
from rnnkit.tutorials.sine import SineConfig, run_sine

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ------------------------------------------------------------------------- data
def test_sine_series_and_windows_keep_holdout_out_of_training():
    t, s = sine_series()
    assert len(t) == 301 and t[-1] == pytest.approx(30.0) and np.allclose(s, np.sin(t))
    series = np.arange(50, dtype=np.float64)  # values = indices, so we can see what a window touches
    x, y = next_value_windows(series, window=5, first_target=5, end=40)
    assert x.shape == y.shape == (35, 5, 1)
    assert float(y.max()) == 39 and float(x.max()) == 38  # nothing at or after index 40
    assert torch.equal(y[:, :-1], x[:, 1:])  # targets are the inputs shifted by one step
    xh, yh = next_value_windows(series, window=5, first_target=40, end=50)
    assert yh[:, -1, 0].tolist() == list(range(40, 50))  # every scored target is held out


def test_count_pairs():
    x, y = count_pairs()
    assert x[:, :, 0].tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    assert y[:, :, 0].tolist() == [[6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]


# ------------------------------------------------------------------------- sine
def test_sine_heldout_one_step_rmse_below_0_01():
    r = run_sine(SineConfig(epochs=80, progress=False))  # seed 0: 0.0033 (60 epochs: 0.0070)
    assert r.split == 241 and r.t[r.split] == pytest.approx(24.1)
    assert r.model.rnn.hidden_size == 100 and r.model.rnn.nonlinearity == "relu"
    assert r.rmse_holdout <= 0.01, r.rmse_holdout
    assert np.isfinite(r.pred[r.split:]).all()


# ------------------------------------------------------------------------- count
def test_plain_tutorial_saturates():
    r = run_count(CountConfig(**{**PLAIN_TUTORIAL.__dict__, "epochs": 200, "progress": False}))
    assert max(r.extrap_pred) <= 1.0 and r.train_mae > 5  # tanh output can never reach the targets


def test_count_fits_and_extrapolates_with_one_unit(tmp_path: Path):
    r = run_count(CountConfig(progress=False))
    assert r.model.rnn.hidden_size == 1
    assert r.train_mae <= 0.1, r.train_mae
    assert r.extrap_max_err <= 0.5, r.extrap_pred
    # the scaler is part of the model: it is in the safetensors file and comes back on load
    save_counter(r.model, r.config, tmp_path / "m")
    tensors = load_file(tmp_path / "m" / "model.safetensors")
    assert float(tensors["shift"]) == 1.0 and float(tensors["scale"]) == 14.0
    again = load_counter(tmp_path / "m")
    x = torch.arange(11.0, 16.0).view(1, 5, 1)
    with torch.no_grad():
        assert torch.allclose(again(x), r.model(x))


# ------------------------------------------------------------------------- i2h
def test_i2h_names_classifier_beats_majority_baseline():
    r = run_i2h(I2HConfig(epochs=3, train_limit=6000, progress=False))
    assert len(r.classes) == 31 and r.n_test > 2000
    assert r.majority_accuracy < 0.2
    assert r.test_accuracy >= max(0.35, 2 * r.majority_accuracy), (r.test_accuracy, r.majority_accuracy)
    assert int(r.confusion.sum()) == r.n_test
    cell = r.model.rnn.cells[0]
    assert cell.log_softmax and hasattr(cell, "i2h") and hasattr(cell, "i2o")
    assert all(p in r.classes for p in predict(r.model, r.vocab, r.classes, ["Kowalczyk", "Ó Corra", "Ŋŋ"]))


# ------------------------------------------------------------------------- scripts
def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_count_script_runs_and_saves_model(tmp_path: Path):
    p = _run("examples/count_sequence.py", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "rnnkit model: meets the goals" in p.stdout
    assert (tmp_path / "model" / "model.safetensors").is_file() and (tmp_path / "count.png").stat().st_size > 1000


def test_sine_and_i2h_scripts_run(tmp_path: Path):
    p = _run("examples/sine_next_value.py", "--epochs", "3", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "held-out stretch" in p.stdout and (tmp_path / "sine.png").is_file()
    p = _run("examples/i2h_rnn_classifier.py", "--epochs", "1", "--train-limit", "500", "Kowalski")
    assert p.returncode == 0, p.stderr
    assert "test accuracy" in p.stdout and "Kowalski" in p.stdout


# ------------------------------------------------------------------------- demo
def test_demo_sections_write_pngs_and_markdown(tmp_path: Path):
    from rnnkit.demo.tutorials import count_section, i2h_section, sine_section

    for section, png in [(sine_section, "sine.png"), (count_section, "count.png"), (i2h_section, "i2h_confusion.png")]:
        md = section(tmp_path, True)
        assert f"]({png})" in md and (tmp_path / png).stat().st_size > 5000
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temp files


def test_i2h_padded_batch_equals_one_name_at_a_time():
    from rnnkit.data.names import labels, load_names
    from rnnkit.tutorials.names_i2h import CharVocab, I2HClassifier

    names = ["Li", "Kowalczyk", "Papadopoulos", "Ó Corra"]
    vocab = CharVocab(names)
    torch.manual_seed(0)
    model = I2HClassifier(len(vocab), 16, len(labels(load_names()))).eval()
    with torch.no_grad():
        batched = model(*vocab.encode(names))
        alone = torch.cat([model(*vocab.encode([n])) for n in names])
    assert torch.allclose(batched, alone, atol=1e-6)
