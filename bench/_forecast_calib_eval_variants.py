"""Post-hoc, NOT for choosing: the evaluated backtests of bench/forecast_intervals.py (same splits, default
forecaster) re-run once, with every fold's calibration windows kept, so that the shipped scheme and the
ones it was chosen against (bench/_forecast_calib_schemes.py, on the dev suite's training parts) are
scored on the same trained models. The shipped scheme was fixed before this ran; these columns are
reported next to it in docs/benchmarks.md (issue 17), never used to pick it.

    nice .venv/bin/python bench/_forecast_calib_eval_variants.py   # -> bench/results/forecast_calib_eval_variants.json
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, log, machine_info, setup  # noqa: E402
from bench.forecast_intervals import SETS, load_set  # noqa: E402
from rnnkit.data.series import truncate  # noqa: E402
from rnnkit.tasks.forecast import calibration as cal  # noqa: E402
from rnnkit.tasks.forecast.backtest import quantile_pairs  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster  # noqa: E402

VARIANTS = {  # name -> fit_factors options (twin weights: rho ** twin index)
    "pair, per step n0=20 (fix only)": {"mode": "pair", "n0": 20},
    "pair, steps pooled, twins 0.5^j": {"mode": "pair", "n0": np.inf, "rho": 0.5},
    "common, steps pooled, twins 0.5^j (shipped)": {"mode": "common", "n0": np.inf, "rho": 0.5},
}


def main() -> None:
    setup(threads=1)
    kept: list = []
    real = cal.multi_origin_windows

    def keep(*a, **k):  # the shipped code path, with its windows kept for the other variants
        got = real(*a, **k)
        kept.append(got)
        return got

    cal.multi_origin_windows = keep
    out: dict = {"machine": machine_info(), "sets": {}}
    for name in SETS:
        ss, H, folds, _ = load_set(name)
        hits: dict = {}
        for k in range(folds):
            origin = {s.id: len(s) - H * (folds - k) for s in ss.series}
            train = truncate(ss, origin)
            kept.clear()
            fc = Forecaster(config=ForecastConfig(horizon=H, progress=False)).fit(train, strict=False)
            levels = tuple(fc.network.cfg.quantiles)
            q_raw = fc.predict_quantiles(train, calibrated=False)
            y = np.stack([s.y[origin[s.id]:origin[s.id] + H] for s in ss.series])
            qs = {"raw": q_raw, "shipped as fitted": fc.predict_quantiles(train)}
            q, yy, m, _, twin = kept[0]
            for v, kw in VARIANTS.items():
                kw = dict(kw)
                rho = kw.pop("rho", None)
                w = None if rho is None else rho ** twin.astype(np.float64)
                f = cal.fit_factors(q, yy, m, levels, kind="ratio", weights=w, **kw)
                qs[v] = cal.Calibration(levels, f, len(q), 0, "ratio", kw["mode"]).apply(q_raw)
            for v, qv in qs.items():
                for lv, lo, hi in quantile_pairs(levels):
                    inside = (y >= qv[..., levels.index(lo)]) & (y <= qv[..., levels.index(hi)])
                    hits.setdefault(v, {}).setdefault(f"{lv:g}", []).append(inside.ravel())
        out["sets"][name] = {v: {p: round(float(np.concatenate(h).mean()), 3) for p, h in d.items()}
                             for v, d in hits.items()}
        for v, c in out["sets"][name].items():
            log(f"{name:10s} {v:45s} " + " ".join(f"{p}:{x:.3f}" for p, x in c.items()))
    (RESULTS / "forecast_calib_eval_variants.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
