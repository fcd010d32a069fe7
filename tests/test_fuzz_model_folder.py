"""``rnnkit.load`` on broken model folders (issue 15): every damaged file is a ``UserError`` that
names the problem -- never a traceback, a hang, or a model that predicts NaN.

The base folder is a real tiny classifier trained and saved through the public API; config.json
values are checked against the settings' declared types and bounds (``rnnkit.options``)."""
from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

import rnnkit
from rnnkit.errors import UserError



class Hang(BaseException):
    """A BaseException so that no ``except Exception`` in the loader swallows it."""


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6, 2)).astype(np.float32)
    y = np.array(["a", "b"] * 12)
    X[y == "a"] += 1.0
    folder = tmp_path_factory.mktemp("model") / "clf"
    rnnkit.SequenceClassifier(hidden_size=8, epochs=1, progress=False).fit(X, y).save(folder)
    return folder, X[:4]


def load_guarded(path: Path, seconds: float = 10.0):
    """``rnnkit.load`` under a timer: a hang fails the test instead of stalling the suite."""
    def on_alarm(signum, frame):
        raise Hang(f"rnnkit.load did not return within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return rnnkit.load(str(path))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def edit_json(name: str, fn):
    def apply(d: Path) -> None:
        p = d / name
        p.write_text(json.dumps(fn(json.loads(p.read_text()))))
    return apply


def set_key(section: str, key: str, value):
    def fn(cfg):
        cfg[section][key] = value
        return cfg
    return edit_json("config.json", fn)


def write(name: str, data: bytes):
    return lambda d: (d / name).write_bytes(data)


def remove(name: str):
    return lambda d: (d / name).unlink()


def truncate_weights(frac: float):
    def apply(d: Path) -> None:
        p = d / "model.safetensors"
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * frac)])
    return apply


def edit_tensor(how: str):
    def apply(d: Path) -> None:
        p = d / "model.safetensors"
        t = load_file(str(p))
        k = sorted(t)[0]
        if how in ("nan", "inf"):
            t[k] = t[k].copy()
            t[k].flat[0] = np.nan if how == "nan" else np.inf
        elif how == "rename":
            t[k + "_renamed"] = t.pop(k)
        elif how == "drop":
            t.pop(k)
        elif how == "reshape":
            t[k] = np.zeros((3,) + t[k].shape, t[k].dtype)
        save_file(t, str(p))
    return apply


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


FILE_CASES = {
    "no config.json": remove("config.json"),
    "config.json not JSON": write("config.json", b'{"task": "classify",'),
    "config.json binary": write("config.json", b"\xff\xfe\x00\x01garbage"),
    "config.json a list": write("config.json", b"[]"),
    "config.json a number": write("config.json", b"5"),
    "config.json nested 100000 deep": write("config.json", nested(100_000)),
    'task ["classify"]': edit_json("config.json", lambda c: {**c, "task": ["classify"]}),
    "task unknown": edit_json("config.json", lambda c: {**c, "task": "translate"}),
    "task missing": edit_json("config.json", lambda c: {k: v for k, v in c.items() if k != "task"}),
    "written by rnnkit 99": edit_json("config.json", lambda c: {**c, "rnnkit_version": "99.0.0"}),
    "no model.safetensors": remove("model.safetensors"),
    "weights empty": truncate_weights(0.0),
    "weights truncated to 8 bytes": lambda d: (d / "model.safetensors").write_bytes(
        (d / "model.safetensors").read_bytes()[:8]),
    "weights truncated by half": truncate_weights(0.5),
    "weights missing last byte": truncate_weights(0.9999),
    "weights header garbage": lambda d: (d / "model.safetensors").write_bytes(
        b"\xff" * 8 + (d / "model.safetensors").read_bytes()[8:]),
    "NaN weight": edit_tensor("nan"),  # loaded silently and predicted NaN before
    "inf weight": edit_tensor("inf"),
    "renamed tensor": edit_tensor("rename"),
    "dropped tensor": edit_tensor("drop"),
    "reshaped tensor": edit_tensor("reshape"),
    "no labels.json": remove("labels.json"),
    "labels.json a number": write("labels.json", b"5"),
    "labels.json three labels": write("labels.json", b'["a", "b", "c"]'),
    "labels.json a class twice": write("labels.json", b'["a", "a"]'),
    "no scaler.json": remove("scaler.json"),
    "scaler.json a list": write("scaler.json", b"[1, 2]"),
    "scaler.json NaN mean": edit_json("scaler.json", lambda s: {**s, "mean": [float("nan")] * len(s["mean"])}),
    "scaler.json std 0": edit_json("scaler.json", lambda s: {**s, "std": [0.0] * len(s["std"])}),
    "scaler.json std strings": edit_json("scaler.json", lambda s: {**s, "std": ["x"] * len(s["std"])}),
}

SCHEMA_CASES = {
    'net.hidden_size "x"': set_key("net", "hidden_size", "x"),
    "net.num_layers 10**9 (hung)": set_key("net", "num_layers", 10 ** 9),
    "net.hidden_size 10**6 (huge allocation)": set_key("net", "hidden_size", 10 ** 6),
    'net.pooling ["last"]': set_key("net", "pooling", ["last"]),
    "net.dropout {}": set_key("net", "dropout", {}),
    "net.cell 5": set_key("net", "cell", 5),
    "options a list": edit_json("config.json", lambda c: {**c, "options": [1]}),
    "net.cell unknown": set_key("net", "cell", "nope"),
    "net.input_kind nu-meric": set_key("net", "input_kind", "nu-meric"),
    "net in bounds but not the file's": set_key("net", "hidden_size", 4096),
}


def fresh(base_folder: Path, tmp_path: Path) -> Path:
    d = tmp_path / "model"
    shutil.copytree(base_folder, d)
    return d


def test_base_folder_loads_and_predicts(base):
    folder, X = base
    proba = np.asarray(load_guarded(folder).predict_proba(X))
    assert proba.shape == (4, 2) and np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_damaged_file_is_a_user_error(base, tmp_path, case):
    d = fresh(base[0], tmp_path)
    FILE_CASES[case](d)
    with pytest.raises(UserError) as exc:
        load_guarded(d)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_bad_config_value_is_a_user_error(base, tmp_path, case):
    d = fresh(base[0], tmp_path)
    SCHEMA_CASES[case](d)
    with pytest.raises(UserError):
        load_guarded(d)


@pytest.mark.parametrize("what", ["missing folder", "a file", "empty folder"])
def test_not_a_model_folder(tmp_path, what):
    p = tmp_path / "m"
    if what == "a file":
        p.write_text("x")
    elif what == "empty folder":
        p.mkdir()
    with pytest.raises(UserError):
        load_guarded(p)


def test_nan_weight_error_names_the_tensor(base, tmp_path):
    d = fresh(base[0], tmp_path)
    edit_tensor("nan")(d)
    first = sorted(load_file(str(base[0] / "model.safetensors")))[0]
    with pytest.raises(UserError, match=f"tensor '{first}'.*non-finite"):
        load_guarded(d)


@settings(max_examples=50, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["model.safetensors", "labels.json", "scaler.json"]),
       where=st.floats(0, 1), payload=st.binary(min_size=1, max_size=6), cut=st.booleans())
def test_byte_damage_gives_user_error_or_a_sound_model(base, tmp_path_factory, name, where, payload, cut):
    """Overwritten bytes anywhere (header, weights, JSON) or a truncation: a UserError, or a model whose
    predictions are finite probabilities (a flip inside a weight may leave a valid, different model)."""
    d = fresh(base[0], tmp_path_factory.mktemp("damaged"))
    p = d / name
    data = bytearray(p.read_bytes())
    i = int(where * (len(data) - 1))
    if cut:
        del data[i:]
    else:
        data[i:i + len(payload)] = payload
    p.write_bytes(bytes(data))
    try:
        model = load_guarded(d)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    proba = np.asarray(model.predict_proba(base[1]))
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1, atol=1e-4)
