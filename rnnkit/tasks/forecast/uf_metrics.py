"""Score a backtest with utilsforecast's metrics (``pip install 'rnnkit[nixtla]'``).

The backtest keeps every fold's forecasts in utilsforecast's cross-validation layout
(``BacktestResult.forecasts``: ``unique_id, ds, cutoff, y, <method>..., <model>-lo-L, <model>-hi-L``);
``utilsforecast_summary`` runs ``utilsforecast.evaluation.evaluate`` on it with MASE, sMAPE,
RMSE and the coverage of every level, and returns one row per method, means over series and
folds, in rnnkit's units (sMAPE in percent of 0-200, as the M4 definition: utilsforecast's
``smape`` is the same ratio on a 0-1 scale, so it is multiplied by 200).
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from rnnkit.data.series import SeriesSet
from rnnkit.errors import UserError
from rnnkit.tasks.forecast.formats import level_name


def available() -> bool:
    """Whether utilsforecast can be used: False when it is not installed; UserError (one line, the
    package and its error) when it is installed but its import fails, e.g. an AttributeError from a
    version clash with pandas / numpy or a missing dependency, instead of that traceback."""
    try:
        import utilsforecast.evaluation  # noqa: F401
        import utilsforecast.losses  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name == "utilsforecast":  # not installed; a missing submodule is a broken (too old) install
            return False
        raise UserError(_broken(exc)) from None
    except Exception as exc:  # any failure inside its import: a broken install, not a missing one
        raise UserError(_broken(exc)) from None
    return True


def _broken(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return (f"utilsforecast is installed but cannot be imported ({type(exc).__name__}: {first}); "
            f"reinstall it, e.g. pip install -U 'rnnkit[nixtla]', or leave out --utilsforecast")


def history_frame(ss: SeriesSet) -> pd.DataFrame:
    """All observed points as ``unique_id, ds, y`` (utilsforecast's ``train_df``; MASE's scale is
    taken from the rows up to each cutoff)."""
    return pd.concat([pd.DataFrame({"unique_id": s.id, "ds": s.times, "y": s.y}) for s in ss.series],
                     ignore_index=True)


def utilsforecast_summary(res, ss: SeriesSet) -> pd.DataFrame:
    """``res``: a BacktestResult -> one row per method: mase, smape, rmse[, coverage<L>]."""
    if not available():
        raise UserError("scoring with utilsforecast needs it installed: pip install 'rnnkit[nixtla]'")
    from utilsforecast import losses
    from utilsforecast.evaluation import evaluate

    df = res.forecasts
    levels = [lv for lv, _, _ in res.pairs]
    ints = [int(lv) for lv in levels if float(lv).is_integer()]  # utilsforecast's column regex wants integers
    methods = [c for c in df.columns if c not in ("unique_id", "ds", "cutoff", "y") and "-lo-" not in c
               and "-hi-" not in c]
    metrics = [partial(losses.mase, seasonality=res.season), losses.smape, losses.rmse]
    ev = evaluate(df, metrics=metrics, models=methods, train_df=history_frame(ss))
    # intervals: only the model has them (utilsforecast wants the columns of every model it scores)
    cov = evaluate(df, metrics=[losses.coverage], models=[res.model_name], level=ints) if ints else None
    rows = []
    for m in methods:
        row = {"method": m}
        for name in ("mase", "smape", "rmse"):
            row[name] = float(ev.loc[ev["metric"] == name, m].mean())
        for lv in ints if m == res.model_name else ():
            row[f"coverage{level_name(lv)}"] = float(cov.loc[cov["metric"] == f"coverage_level{lv}", m].mean())
        rows.append(row)
    out = pd.DataFrame(rows)
    out["smape"] = out["smape"] * 200.0
    return out


def table(summary: pd.DataFrame) -> str:
    """Markdown table of ``utilsforecast_summary``."""
    cov = [c for c in summary.columns if c.startswith("coverage")]
    lines = ["| method | MASE | sMAPE % | RMSE |" + "".join(f" {c} |" for c in cov),
             "|---|---:|---:|---:|" + "---:|" * len(cov)]
    for _, r in summary.sort_values("mase").iterrows():
        cells = "".join(" |" if np.isnan(r[c]) else f" {r[c]:.2f} |" for c in cov)
        lines.append(f"| {r['method']} | {r['mase']:.3f} | {r['smape']:.2f} | {r['rmse']:.4g} |{cells}")
    return "\n".join(lines)
