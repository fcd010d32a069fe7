"""Model folders: round trip, tied weights, atomic writes, and one-line UserErrors for bad folders."""
from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.errors import UserError
from rnnkit.train.checkpoint import (flatten_tree, load_model, load_state_into, rng_state, save_model,
                                     set_rng_state, unflatten_tree)


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


class Tied(nn.Module):
    """Embedding and output layer share one weight (the usual LM trick)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.emb.weight


def test_round_trip(tmp_path):
    model = small_model()
    d = save_model(tmp_path / "m", model, {"task": "demo", "hidden": 4}, {"vocab": ["a", "b"], "scaler": {"mu": 1.5}})
    assert sorted(os.listdir(d)) == ["config.json", "model.safetensors", "scaler.json", "vocab.json"]
    config, state, extras = load_model(d)
    assert config == {"task": "demo", "hidden": 4, "rnnkit_version": rnnkit.__version__}
    assert extras == {"vocab": ["a", "b"], "scaler": {"mu": 1.5}}
    other = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    load_state_into(other, state)
    x = torch.randn(5, 3)
    assert torch.equal(model(x), other(x))


def test_tied_weights_stay_tied(tmp_path):
    model = Tied()
    save_model(tmp_path / "m", model, {"task": "lm"})
    _, state, _ = load_model(tmp_path / "m")
    fresh = Tied()
    load_state_into(fresh, state)
    assert torch.equal(fresh.emb.weight, model.emb.weight)
    assert fresh.out.weight is fresh.emb.weight


def test_overwrite_keeps_other_files_and_leaves_no_temp(tmp_path):
    d = tmp_path / "m"
    save_model(d, small_model(), {"task": "a"})
    (d / "metrics.csv").write_text("epoch\n")
    save_model(d, small_model(), {"task": "b"})
    assert load_model(d)[0]["task"] == "b"
    assert (d / "metrics.csv").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    assert not [p for p in os.listdir(d) if p.startswith(".")]


def test_failed_save_leaves_no_folder(tmp_path):
    with pytest.raises(ValueError):
        save_model(tmp_path / "m", small_model(), {"task": "x", "bad": object()})
    assert os.listdir(tmp_path) == []


def expect_user_error(path, match):
    with pytest.raises(UserError, match=match) as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_bad_folders_raise_one_line_user_errors(tmp_path):
    expect_user_error(tmp_path / "nope", "not found")
    good = save_model(tmp_path / "good", small_model(), {"task": "x"})
    raw = (good / "model.safetensors").read_bytes()

    d = save_model(tmp_path / "no_config", small_model(), {"task": "x"})
    (d / "config.json").unlink()
    expect_user_error(d, "config.json")

    d = save_model(tmp_path / "bad_config", small_model(), {"task": "x"})
    (d / "config.json").write_text('{"task": "x", ')
    expect_user_error(d, "corrupt or truncated")

    d = save_model(tmp_path / "no_weights", small_model(), {"task": "x"})
    (d / "model.safetensors").unlink()
    expect_user_error(d, "model.safetensors")

    for cut in (len(raw) // 2, 4, len(raw) - 1):  # truncated at several places
        d = save_model(tmp_path / f"trunc{cut}", small_model(), {"task": "x"})
        (d / "model.safetensors").write_bytes(raw[:cut])
        expect_user_error(d, "corrupt or truncated")

    d = save_model(tmp_path / "garbage", small_model(), {"task": "x"})
    (d / "model.safetensors").write_bytes(b"\x00" * 100)
    expect_user_error(d, "corrupt or truncated")

    d = save_model(tmp_path / "future", small_model(), {"task": "x"})
    cfg = json.loads((d / "config.json").read_text())
    cfg["rnnkit_version"] = "99.0.0"
    (d / "config.json").write_text(json.dumps(cfg))
    expect_user_error(d, "newer")

    f = tmp_path / "file.txt"
    f.write_text("x")
    expect_user_error(f, "not a model folder")


def test_shape_mismatch_names_the_parameter(tmp_path):
    save_model(tmp_path / "m", small_model(), {"task": "x"})
    _, state, _ = load_model(tmp_path / "m")
    wrong = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    with pytest.raises(UserError, match=r"0\.weight has shape \(4, 3\) in the file but \(5, 3\)") as info:
        load_state_into(wrong, state)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="missing 2.weight"):
        load_state_into(small_model(), {k: v for k, v in state.items() if k != "2.weight"})


def test_tensor_tree_and_rng_round_trip():
    tree = {"a": (torch.ones(2), None, [1, 2.5, "s"]), 3: {"b": torch.zeros(1, dtype=torch.int64)}}
    tensors: dict = {}
    skel = flatten_tree(tree, "x", tensors)
    json.dumps(skel)  # the skeleton is plain JSON
    back = unflatten_tree(json.loads(json.dumps(skel)), tensors)
    assert back["a"][1] is None and back["a"][2] == [1, 2.5, "s"] and torch.equal(back[3]["b"], tree[3]["b"])
    import random

    import numpy as np
    state = rng_state()
    a = (torch.rand(3), np.random.rand(), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_a_folder_of_another_task_is_refused_by_name(tmp_path):
    save_model(tmp_path / "m", nn.Linear(2, 3), {"task": "text"})
    assert load_model(tmp_path / "m", task="text")[0]["task"] == "text"
    with pytest.raises(UserError, match=r"a 'text' model, not a 'forecast' model"):
        load_model(tmp_path / "m", task="forecast")
    with pytest.raises(UserError, match="not a 'classify' model"):
        rnnkit.SequenceClassifier.load(tmp_path / "m")
