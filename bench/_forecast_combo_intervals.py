"""Coverage of the calibrated bands with the blend (combine.py) vs the RNN alone, from the same trained
models (the combination only moves the quantiles at prediction time): the shipped airline and stocks
panels with bench/forecast.py's splits (M1 yearly has > 100 series: no blend), defaults with calibration
on, ``--max-time 60`` per fold (shared by the model and its 3 calibration twins).

    nice .venv/bin/python bench/_forecast_combo_intervals.py   # -> runs/forecast_suite/combo_intervals.json
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import setup  # noqa: E402
from bench.forecast_intervals import load_set  # noqa: E402
from bench.forecast_suite import WORK  # noqa: E402
from rnnkit.data.series import truncate  # noqa: E402
from rnnkit.metrics.forecast import coverage, mase  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster  # noqa: E402

setup(threads=1)
out = {}
for name in ("airline", "stocks"):
    ss, H, K, _ = load_set(name)
    got: dict = {"blend": {"mase": [], "cov80": [], "cov90": []}, "none": {"mase": [], "cov80": [], "cov90": []}}
    for k in range(K):
        cut = {s.id: len(s) - H * (K - k) for s in ss.series}
        train = truncate(ss, cut)
        fc = Forecaster(config=ForecastConfig(horizon=H, progress=False, max_time=60.0)).fit(train, strict=False)
        lv = list(fc.network.cfg.quantiles)
        chosen = fc.config.combine
        for rule in ("blend", "none"):
            fc.config.combine = rule
            q = fc.predict_quantiles(train)
            for i, s in enumerate(ss.series):
                o = cut[s.id]
                y = s.y[o:o + H]
                got[rule]["mase"].append(mase(y, q[i, :, lv.index(0.5)], s.y[:o], ss.season))
                got[rule]["cov80"].append(coverage(y, q[i, :, lv.index(0.1)], q[i, :, lv.index(0.9)]))
                got[rule]["cov90"].append(coverage(y, q[i, :, lv.index(0.05)], q[i, :, lv.index(0.95)]))
        fc.config.combine = chosen
        print(name, k + 1, chosen, {r: {m: round(float(np.mean(v)), 3) for m, v in g.items()} for r, g in got.items()},
              file=sys.stderr, flush=True)
    out[name] = {r: {m: round(float(np.mean(v)), 4) for m, v in g.items()} for r, g in got.items()}
(WORK / "combo_intervals.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(out, indent=1))
