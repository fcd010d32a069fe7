"""Smoke test of bench/grid.py's helpers at tiny shapes (no timing assertions)."""
from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def grid():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("bench.grid")


def test_lstm_flops_formula(grid):
    # 8·B·H·(I+H) per LSTM step forward
    assert grid.lstm_flops(2, 3, 5, i=7) == 8 * 2 * 5 * (7 + 5) * 3
    assert grid.lstm_flops(1, 1, 4, i=4, gates=1) == 2 * 4 * 8


def test_grid_points_budget(grid):
    run, skipped = grid.grid_points(quick=False)
    assert len(run) + 3 * len(skipped) == 3 * 27
    assert {(s["batch"], s["time"], s["hidden"]) for s in skipped} == {(64, 200, 1024), (64, 1000, 1024), (16, 1000, 1024)}
    assert len(grid.grid_points(quick=True)[0]) == 6


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_measure_point_tiny(grid, kind):
    torch.set_num_threads(1)
    rows = grid.measure_point(kind, 2, 3, 4, with_keras=True, warmup=0, repeats=1)
    assert [r["mode"] for r in rows] == ["train", "infer"]
    for r in rows:
        assert r["rnnkit_ms"] > 0 and r["torch_ms"] > 0 and math.isfinite(r["vs_torch"])
        assert "vs_keras" in r and r["keras_ms"] > 0


def test_task_helpers_tiny(grid):
    tasks = grid.tasks
    tg = tasks.text_generation(train_seconds=0.3, length=5, repeats=1, chars=3000, hidden_size=16)
    assert tg["hidden_size"] == 16 and tg["chars_per_s"] > 0
    fc = tasks.forecast_latency(repeats=1)
    assert fc["dataframe"]["median_ms"] > 0 and fc["csv_path"]["median_ms"] > 0
