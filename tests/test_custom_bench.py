"""Smoke tests of the speed benches this area owns (bench/custom_cell.py, bench/grid.py's
efficiency part) at tiny sizes: they run and their numbers are consistent (no timing asserts)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("bench.grid"), importlib.import_module("bench.custom_cell")


def test_efficiency_pairs_layer_and_peak_per_round(bench):
    grid, _ = bench
    torch.set_num_threads(1)
    rows = grid.efficiency(repeats=2, quick=True, n=128)
    assert len(rows) == 1 and rows[0]["batch"] == 64
    r = rows[0]
    assert len(r["times_s"]["peak"]) == len(r["times_s"]["rnnkit|infer"]) == 2
    assert 0 < r["efficiency_min"] <= r["efficiency_median"] <= r["efficiency_max"]
    assert r["rnnkit_gflops_median"] > 0 and r["peak_gflops_median"] > 0


def test_custom_cell_cases_agree_with_the_fused_layer(bench, monkeypatch):
    _, cc = bench
    monkeypatch.setattr(cc, "B", 3)
    monkeypatch.setattr(cc, "T", 6)
    monkeypatch.setattr(cc, "H", 8)
    x = torch.randn(3, 6, cc.I)
    cases = cc._cases(x, compile_=False)
    with torch.no_grad():
        ref = cases["torch.nn.LSTM (fused)"].fwd()
        for name, case in cases.items():
            y = case.fwd()
            if case.output:
                torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6, msg=name)
