"""The shared task layer: one config.json shape, the legacy key map, settings checked before
anything is built, the CLI generated from the config dataclasses, one rank-0 save."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit.cli import build_parser, main
from rnnkit.cli.common import save_trained
from rnnkit.errors import UserError

LEGACY = Path(__file__).parent / "data" / "legacy_0.1.0"
PRED = json.loads((LEGACY / "predictions.json").read_text())


def _series() -> pd.DataFrame:
    t = np.arange(60)
    return pd.DataFrame({"t": t, "y": 10 + np.sin(t / 3.0) + 0.01 * t})


def test_first_release_folders_load_and_predict_the_same():
    fc = rnnkit.load(LEGACY / "forecast")
    assert np.allclose(fc.predict(_series())["forecast"], PRED["forecast"], atol=1e-5)
    tm = rnnkit.load(LEGACY / "text")
    got = tm.next_words("the qu", k=3)
    assert [w for w, _ in got] == [w for w, _ in PRED["text"]]
    assert np.allclose([p for _, p in got], [p for _, p in PRED["text"]], atol=1e-5)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 10, 2)).astype(np.float32)
    X[1::2] += 1.0
    clf = rnnkit.load(LEGACY / "classify")
    assert np.allclose(clf.predict_proba(X[:4]), PRED["classify"], atol=1e-5)
    asr = rnnkit.load(LEGACY / "speech")
    wave = (0.1 * np.sin(np.arange(8000) * 0.05)).astype(np.float32)
    assert np.allclose(asr.log_probs(wave)[:3], PRED["speech"], atol=1e-4)
    assert asr.config.hidden_size == 8 and asr.network.cfg.num_layers == 1


def test_one_config_shape_for_every_task(tmp_path):
    for task in ("forecast", "text", "classify", "speech"):
        model = rnnkit.load(LEGACY / task)
        model.save(tmp_path / task)
        cfg = json.loads((tmp_path / task / "config.json").read_text())
        assert set(cfg) == {"task", "format", "net", "options", "rnnkit_version"}, (task, set(cfg))
        assert cfg["task"] == task and cfg["format"] == 2
        again = rnnkit.load(tmp_path / task)
        assert type(again) is type(model)


@pytest.mark.parametrize("edit, match", [
    ({"net": {"hidden_size": "x"}}, "hidden_size must be int"),
    ({"net": {"num_layers": 1_000_000_000}}, "num_layers"),
    ({"net": {"hidden_size": 10 ** 7}}, "hidden_size"),
    ({"net": {"hidden_size": 8192, "num_layers": 64}}, "describes a network of"),  # in bounds, not the file's
    ({"net": {"context": None}}, "context must be set"),
    ({"options": {"lr": "fast"}}, "lr must be float"),
    ({"task": ["forecast"]}, "task"),
    ({"format": 99}, "format"),
])
def test_bad_config_values_are_one_line_errors_before_building(tmp_path, edit, match):
    folder = tmp_path / "m"
    shutil.copytree(LEGACY / "forecast", folder)
    rnnkit.load(folder).save(tmp_path / "new")
    cfg = json.loads((tmp_path / "new" / "config.json").read_text())
    for key, value in edit.items():
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    (tmp_path / "new" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=match):
        rnnkit.load(tmp_path / "new")


def test_cli_flags_come_from_the_config_dataclass():
    from rnnkit.tasks.classify.task import ClassifierConfig
    from rnnkit.tasks.forecast.task import ForecastConfig

    parser = build_parser()
    fc = parser.parse_args(["forecast", "train", "--data", "x.csv", "--target", "y", "--out", "m", "--horizon", "3",
                            "--hidden-size", "16", "--num-layers", "2", "--no-highway", "--quantiles", "0.1,0.5,0.9"])
    assert (fc.hidden_size, fc.num_layers, fc.highway, fc.quantiles) == (16, 2, False, (0.1, 0.5, 0.9))
    assert not hasattr(fc, "lr")  # unset flags stay unset: the default lives in the dataclass only
    from rnnkit.cli.common import resolve_config

    assert resolve_config(fc, ForecastConfig).lr == ForecastConfig().lr
    cl = parser.parse_args(["classify", "train", "--data", "x.csv", "--out", "m", "--embed-size", "8", "--quiet"])
    cfg = resolve_config(cl, ClassifierConfig)
    assert cfg.embed_size == 8 and cfg.progress is False


def test_config_file_then_flags(tmp_path):
    from rnnkit.cli.common import resolve_config
    from rnnkit.tasks.forecast.task import ForecastConfig

    (tmp_path / "run.toml").write_text('horizon = 4\nhidden_size = 12\nlr = 0.01\n')
    args = build_parser().parse_args(["forecast", "train", "--data", "x.csv", "--target", "y", "--out", "m",
                                      "--config", str(tmp_path / "run.toml"), "--lr", "0.02"])
    cfg = resolve_config(args, ForecastConfig)
    assert (cfg.horizon, cfg.hidden_size, cfg.lr) == (4, 12, 0.02)
    # a model folder's config.json repeats its run exactly
    args = build_parser().parse_args(["forecast", "train", "--data", "x.csv", "--target", "y", "--out", "m",
                                      "--config", str(LEGACY / "forecast" / "config.json")])
    with pytest.raises(UserError, match="unknown setting"):  # first-release keys are not settings
        resolve_config(args, ForecastConfig)
    (tmp_path / "bad.toml").write_text('hidden_size = "big"\n')
    args = build_parser().parse_args(["forecast", "train", "--data", "x.csv", "--target", "y", "--out", "m",
                                      "--config", str(tmp_path / "bad.toml")])
    with pytest.raises(UserError, match="--hidden-size must be int"):
        resolve_config(args, ForecastConfig)


def test_forecast_train_cli_writes_the_resolved_config(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    _series().to_csv(csv, index=False)
    out = tmp_path / "m"
    assert main(["forecast", "train", "--data", str(csv), "--target", "y", "--time-col", "t", "--horizon", "3",
                 "--hidden-size", "8", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["options"]["hidden_size"] == 8 and cfg["net"]["hidden_size"] == 8
    again = tmp_path / "m2"
    assert main(["forecast", "train", "--data", str(csv), "--target", "y", "--time-col", "t", "--quiet",
                 "--config", str(out / "config.json"), "--out", str(again)]) == 0
    assert json.loads((again / "config.json").read_text())["options"] == cfg["options"]
    a, b = rnnkit.load(out), rnnkit.load(again)
    assert all(torch.equal(x, y) for x, y in zip(a.network.state_dict().values(), b.network.state_dict().values()))


class _Saving:
    def __init__(self):
        self.saved = []

    def save(self, out):
        self.saved.append(out)
        return out


def test_only_rank_zero_saves(monkeypatch, tmp_path):
    task = _Saving()
    monkeypatch.setenv("RANK", "1")
    assert save_trained(task, tmp_path) is None and task.saved == []
    monkeypatch.setenv("RANK", "0")
    assert save_trained(task, tmp_path) == tmp_path and task.saved == [tmp_path]


def test_every_train_command_saves_through_the_rank_zero_guard():
    """The speech CLI used to save on every torchrun rank: no command calls ``.save(`` itself."""
    cli = Path(rnnkit.__file__).parent / "cli"
    for name in ("forecast", "text", "classify", "speech"):
        source = (cli / f"{name}.py").read_text()
        assert "save_trained(" in source and ".save(" not in source, name


def test_network_is_one_attribute_and_untrained_is_one_error():
    for cls in (rnnkit.Forecaster, rnnkit.SequenceClassifier, rnnkit.TextModel, rnnkit.SpeechRecognizer):
        obj = cls(horizon=2) if cls is rnnkit.Forecaster else cls()
        assert obj.network is None
        with pytest.raises(UserError, match="not trained"):
            obj.require_trained()


def test_init_from_fine_tunes_a_saved_model(tmp_path):
    """--init-from starts from the saved weights (the first loss is the saved model's loss) and keeps its
    fitted vocabulary / classes; a folder of another task or an unknown class is a one-line error."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 12, 2)).astype(np.float32)
    y = np.array(["a", "b"] * 20)
    X[y == "b"] += 1.5
    base = rnnkit.SequenceClassifier(hidden_size=8, epochs=15, val_fraction=0.0, progress=False).fit(X, y)
    base.save(tmp_path / "base")
    tuned = rnnkit.SequenceClassifier(hidden_size=8, epochs=1, lr=1e-9, val_fraction=0.0, progress=False,
                                      init_from=str(tmp_path / "base")).fit(X[:10], y[:10])
    assert tuned.labels == base.labels
    assert np.allclose(tuned.predict_proba(X), base.predict_proba(X), atol=1e-4)  # lr ~ 0: unchanged weights
    fresh = rnnkit.SequenceClassifier(hidden_size=8, epochs=1, lr=1e-9, val_fraction=0.0, progress=False).fit(X, y)
    assert tuned.evaluate(X, y)["accuracy"] > fresh.evaluate(X, y)["accuracy"]
    with pytest.raises(UserError, match="not classes of that model"):
        rnnkit.SequenceClassifier(epochs=1, val_fraction=0.0, progress=False,
                                  init_from=str(tmp_path / "base")).fit(X[:4], ["a", "c", "a", "c"])
    with pytest.raises(UserError, match="not a 'classify' model"):
        rnnkit.SequenceClassifier(epochs=1, init_from=str(LEGACY / "forecast")).fit(X, y)


def test_tensorboard_logger_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    csv = tmp_path / "s.csv"
    _series().to_csv(csv, index=False)
    out = tmp_path / "m"
    assert main(["forecast", "train", "--data", str(csv), "--target", "y", "--time-col", "t", "--horizon", "3",
                 "--hidden-size", "8", "--epochs", "2", "--quiet", "--logger", "tensorboard", "--out", str(out)]) == 0
    assert (out / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert len(acc.Scalars("train_loss")) == 2
