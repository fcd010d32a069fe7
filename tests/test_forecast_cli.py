"""`rnnkit forecast train|predict|backtest`: round trip, and bad input -> exit 2, one line, no output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.cli import main

torch.set_num_threads(1)
SMALL = ["--hidden-size", "16", "--epochs", "2", "--quiet"]


def _csv(tmp_path, df: pd.DataFrame, name: str = "data.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return str(p)


def _series(n=40, ids=("a", "b")) -> pd.DataFrame:
    rows = []
    for k, sid in enumerate(ids):
        for i, d in enumerate(pd.date_range("2001-01-01", periods=n, freq="MS")):
            rows.append({"sid": sid, "date": d.strftime("%Y-%m-%d"), "y": 100 + 10 * k + i + 5 * np.sin(i)})
    return pd.DataFrame(rows)


def test_train_predict_backtest_round_trip(tmp_path, capsys):
    data = _csv(tmp_path, _series())
    model, pred, bt = tmp_path / "m", tmp_path / "pred.csv", tmp_path / "bt"
    assert main(["forecast", "train", "--data", data, "--target", "y", "--time-col", "date", "--id-col", "sid",
                 "--horizon", "3", "--out", str(model), "--cell", "gru", *SMALL]) == 0
    assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()
    assert main(["forecast", "predict", "--model", str(model), "--data", data, "--out", str(pred),
                 "--quantiles", "0.1,0.5,0.9"]) == 0
    df = pd.read_csv(pred)
    assert list(df.columns) == ["id", "time", "step", "forecast", "q0.1", "q0.5", "q0.9"]
    assert len(df) == 6 and df["time"].iloc[0] == "2004-05-01"
    assert main(["forecast", "backtest", "--data", data, "--target", "y", "--time-col", "date", "--id-col", "sid",
                 "--horizon", "3", "--folds", "2", "--baselines", "naive,seasonal_naive", "--out", str(bt),
                 *SMALL]) == 0
    out = capsys.readouterr().out
    assert "| rnnkit-lstm |" in out and "| naive |" in out
    assert {p.name for p in bt.iterdir()} == {"scores.csv", "summary.csv", "summary.md", "forecast.png",
                                              "forecasts.csv"}


BAD = {
    "missing column": (pd.DataFrame({"x": [1.0] * 20}), ["--target", "y"], "column 'y' not found"),
    "non-numeric": (pd.DataFrame({"y": ["1"] * 10 + ["abc"] + ["2"] * 9}), ["--target", "y"], "non-numeric value 'abc'"),
    "nan": (pd.DataFrame({"y": [1.0] * 10 + [np.nan] + [2.0] * 9}), ["--target", "y"], "missing/non-finite"),
    "duplicate time": (pd.DataFrame({"t": list(range(10)) + [9] + list(range(10, 19)), "y": [1.0] * 20}),
                       ["--target", "y", "--time-col", "t"], "duplicate timestamp 9"),
    "too short": (pd.DataFrame({"y": [1.0, 2.0, 3.0]}), ["--target", "y"], "has 3 points"),
    "horizon 0": (pd.DataFrame({"y": [1.0] * 20}), ["--target", "y", "--horizon", "0"], "--horizon = "),
    "horizon -2": (pd.DataFrame({"y": [1.0] * 20}), ["--target", "y", "--horizon", "-2"], "--horizon = "),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("command", ["train", "backtest"])
def test_bad_input_exit_2_one_line_no_output(tmp_path, capsys, case, command):
    df, flags, message = BAD[case]
    data = _csv(tmp_path, df)
    out = tmp_path / "out"
    args = ["forecast", command, "--data", data, *flags, "--out", str(out), *SMALL]
    if "--horizon" not in flags:
        args += ["--horizon", "4"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit: error:") and message in err and "\n" not in err, err
    assert not out.exists()


def test_predict_bad_input(tmp_path, capsys):
    data = _csv(tmp_path, _series(ids=("a",)))
    model = tmp_path / "m"
    assert main(["forecast", "train", "--data", data, "--target", "y", "--time-col", "date", "--horizon", "2",
                 "--out", str(model), *SMALL]) == 0
    pred = tmp_path / "p.csv"
    cases = [
        (["--data", data, "--quantiles", "0.5,abc"], "--quantiles must be numbers"),
        (["--data", data, "--quantiles", "0.001"], "outside the trained range"),
        (["--data", _csv(tmp_path, pd.DataFrame({"date": ["2001-01-01"], "z": [1.0]}), "bad.csv")], "column 'y' not found"),
        (["--data", str(tmp_path / "nope.csv")], "data file not found"),
    ]
    for extra, message in cases:
        assert main(["forecast", "predict", "--model", str(model), "--out", str(pred), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
        assert not pred.exists()
    assert main(["forecast", "predict", "--model", str(tmp_path / "nomodel"), "--data", data, "--out", str(pred)]) == 2
    assert "model folder not found" in capsys.readouterr().err and not pred.exists()


def test_failed_train_leaves_no_folder_and_backtest_checks_out_first(tmp_path, capsys, monkeypatch):
    """Fuzzing: a training that failed after the Trainer made --out (a static column holding inf made it
    diverge) left an empty model folder; backtest --out naming a file failed only after all the folds."""
    from rnnkit.errors import UserError
    from rnnkit.tasks.forecast import task

    data = _csv(tmp_path, _series(ids=("a",)))
    out = tmp_path / "m"

    def diverge(self, batches):
        Path(self.cfg.out_dir).mkdir(parents=True, exist_ok=True)
        raise UserError("training diverged: loss is nan at step 5 (epoch 1)")

    monkeypatch.setattr(task.Trainer, "fit", diverge)
    args = ["--data", data, "--target", "y", "--time-col", "date", "--horizon", "2", *SMALL]
    assert main(["forecast", "train", *args, "--out", str(out)]) == 2
    assert "diverged" in capsys.readouterr().err and not out.exists()
    monkeypatch.undo()
    assert main(["forecast", "backtest", *args, "--folds", "1", "--out", data]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rnnkit: error: --out {data}: exists and is not a folder", err
