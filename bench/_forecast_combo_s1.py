"""Seed 1 of the dev tails (2026-12-03): that run started after the blend became the default but before
the cache kept the RNN's own median, so its cached ``yhat`` is the blend; the RNN's median is recovered
by inverting the blend (rnn = (yhat - mean(ETS, Theta) / 3) * 3 / 2) for panels of <= 100 series."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.forecast_combo import mase_per_series, panel_table, product_rule  # noqa: E402
from bench.forecast_suite import WORK, panels  # noqa: E402

rows = {}
for name, spec in panels("dev").items():
    t = panel_table(name, spec, "eval", 60.0, seed=1, over={})  # yhat (the blend) read as "rnn"
    prod = t["rnn"].to_numpy()
    small = t["unique_id"].nunique() <= 100
    rnn = (prod - t[["ets", "theta"]].mean(axis=1).to_numpy() / 3) * 1.5 if small else prod
    t = t.assign(rnn=rnn)
    assert np.allclose(product_rule(t), prod)
    rows[name] = {"rnn": float(mase_per_series(t, rnn).mean()), "auto": float(mase_per_series(t, prod).mean())}
    print(f"{name:22s} rnn {rows[name]['rnn']:.3f} auto {rows[name]['auto']:.3f}")
print("mean over panels", {k: round(float(np.mean([r[k] for r in rows.values()])), 4) for k in ("rnn", "auto")})
(WORK / "combo_eval_s1.json").write_text(json.dumps(rows, indent=1) + "\n")
