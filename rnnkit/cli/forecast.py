"""`rnnkit forecast train|predict|backtest`: parse flags, call ``rnnkit.tasks.forecast``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnkit.cli.common import (add_config_flags, add_train_flags, check_out_dir, removed_on_error, resolve_config,
                               save_trained)
from rnnkit.errors import UserError
from rnnkit.io import atomic_path


def _cols(text: str | None) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="CSV file: one series, or many in long format with --id-col")
    p.add_argument("--target", help="column to forecast (default: y, when the file has it)")
    p.add_argument("--time-col", help="time column: dates (frequency inferred) or integers; default: ds when "
                                      "the file has it, else row order")
    p.add_argument("--id-col", help="series id column (long format, one global model over all series); "
                                    "default: unique_id when the file has it")
    p.add_argument("--static", metavar="FILE", help="static covariates: CSV with one row per series, keyed by "
                                                    "the id column (or unique_id); text columns are embedded")
    p.add_argument("--covariates", help="past-observed covariate columns, comma separated")
    p.add_argument("--future-covariates", help="covariates known over the horizon too (predict data must "
                                               "hold the next H rows with an empty target)")


def register(sub: argparse._SubParsersAction) -> None:
    from rnnkit.tasks.forecast.task import ForecastConfig

    g = sub.add_parser("forecast", help="forecast time series from a CSV (train, predict, backtest)")
    gs = g.add_subparsers(dest="forecast_command", metavar="ACTION", parser_class=type(g))
    g.set_defaults(func=lambda a: (g.print_help(sys.stderr), 2)[1])

    t = gs.add_parser("train", help="train a model on a CSV and save it to a folder")
    _data_flags(t)
    add_train_flags(t, ForecastConfig)
    t.set_defaults(func=_train)

    p = gs.add_parser("predict", help="forecast the horizon after the end of every series in a CSV")
    p.add_argument("--model", required=True, help="model folder from `rnnkit forecast train`")
    p.add_argument("--data", required=True, help="CSV with the same columns as the training data")
    p.add_argument("--out", required=True, help="CSV to write: id, time, step, forecast[, q...]")
    p.add_argument("--quantiles", help="extra quantile columns, e.g. 0.1,0.5,0.9")
    p.add_argument("--output-format", choices=("rnnkit", "nixtla"), default="rnnkit",
                   help="rnnkit (default): id, time, step, forecast, q...; nixtla: unique_id, ds, LSTM, "
                        "LSTM-lo-80, LSTM-hi-80... as neuralforecast writes (utilsforecast reads it)")
    p.add_argument("--level", help="nixtla format: interval levels in percent, e.g. 80,95 (default: the "
                                   "pairs in --quantiles, else 80,90)")
    p.add_argument("--static", metavar="FILE", help="static covariates table (needed when the model was "
                                                    "trained with --static)")
    p.add_argument("--onnx", metavar="FILE.onnx", help="run the network in onnxruntime from this graph "
                                                       "(`rnnkit export --model MODEL --out FILE.onnx`)")
    p.set_defaults(func=_predict)

    b = gs.add_parser("backtest", help="rolling-origin evaluation vs naive, seasonal naive, ETS and Theta")
    _data_flags(b)
    b.add_argument("--folds", type=int, default=3, help="rolling origins (default 3)")
    b.add_argument("--out", help="folder for scores.csv, summary.csv, summary.md and forecast.png")
    b.add_argument("--baselines", default="naive,seasonal_naive,ets,theta", help="comma separated")
    b.add_argument("--config", metavar="FILE", help="settings from a TOML file or a model folder's config.json")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.add_argument("--utilsforecast", action="store_true", help="also score with utilsforecast's metrics "
                                                                 "(pip install 'rnnkit[nixtla]')")
    add_config_flags(b, ForecastConfig)
    b.set_defaults(func=_backtest)


def _config(args: argparse.Namespace):
    from rnnkit.tasks.forecast.task import ForecastConfig

    cfg = resolve_config(args, ForecastConfig)
    if cfg.horizon is None:
        raise UserError("--horizon is required (steps to forecast)")
    return cfg


def _load(args: argparse.Namespace, progress: bool):
    from rnnkit.data.series import load_series
    from rnnkit.tasks.forecast.formats import resolve_columns

    # the Nixtla defaults (y, ds, unique_id) are always announced: they change what is read
    args.target, args.time_col, args.id_col = resolve_columns(args.data, args.target, args.time_col, args.id_col)
    ss = load_series(args.data, args.target, args.time_col, args.id_col, _cols(args.covariates),
                     _cols(args.future_covariates), quiet=not progress)
    if args.static:
        from rnnkit.data.static import read_static

        if not ss.id_col:
            raise UserError("--static needs an id column (--id-col, or unique_id in the data)")
        args.static = read_static(args.static, ss.id_col)[0]  # checked before any training
    return ss


def _train(args: argparse.Namespace) -> int:
    from rnnkit.data.series import check_lengths
    from rnnkit.tasks.forecast.task import Forecaster

    out = check_out_dir(args.out, args.resume, "forecast")
    cfg = _config(args)
    ss = _load(args, cfg.progress)          # all validation before anything is written
    check_lengths(ss, cfg.horizon)
    _check_cell(cfg.cell)
    with removed_on_error(out):
        fc = Forecaster(config=cfg).fit(ss, out_dir=str(out), resume=args.resume, static=args.static)
        if save_trained(fc, out) is None:
            return 0
    print(f"saved {args.out} ({len(ss.series)} series, horizon {cfg.horizon}, context {fc.network.cfg.context}, "
          f"season {fc.season})")
    return 0


def _check_cell(cell: str) -> None:
    from rnnkit.nn.registry import cell_names

    if cell not in cell_names():
        raise UserError(f"unknown --cell {cell!r}; choose one of {', '.join(cell_names())}")


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from rnnkit.tasks.forecast.formats import parse_quantiles
    from rnnkit.tasks.forecast.task import Forecaster

    from rnnkit.tasks.forecast.formats import parse_levels

    qs = parse_quantiles(args.quantiles)
    levels = parse_levels(args.level)
    if levels is not None and args.output_format != "nixtla":
        raise UserError("--level goes with --output-format nixtla (use --quantiles for rnnkit's format)")
    fc = Forecaster.load(args.model)
    if args.onnx:
        from rnnkit.onnx_runtime import with_onnx

        fc = with_onnx(fc, args.onnx)
    df = fc.predict(args.data, quantiles=qs, format=args.output_format, level=levels, static=args.static)
    values = df.select_dtypes("number").to_numpy(dtype=float)
    if not np.isfinite(values).all():  # never write NaN forecasts with exit 0
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise UserError(f"the forecast of series {df.iloc[row, 0]!r} is not finite (NaN/inf): the data or the "
                        f"model is out of range; nothing written")
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a CSV file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    print(f"wrote {out} ({len(df)} rows)")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from rnnkit.tasks.forecast.backtest import run_backtest, write_outputs

    cfg = _config(args)
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():  # before the folds, not after
        raise UserError(f"--out {args.out}: exists and is not a folder")
    ss = _load(args, cfg.progress)
    _check_cell(cfg.cell)
    if args.utilsforecast:
        from rnnkit.tasks.forecast import uf_metrics

        if not uf_metrics.available():
            raise UserError("--utilsforecast needs utilsforecast: pip install 'rnnkit[nixtla]'")
    res = run_backtest(ss, cfg, folds=args.folds, baselines=_cols(args.baselines), static=args.static)
    print(f"Backtest: {args.folds} fold(s), horizon {cfg.horizon}, season {res.season}, {len(ss.series)} series")
    print(res.table())
    if res.pairs:
        print(f"\nCoverage of the model's bands ({int(res.coverage()['points'].iloc[0])} points; one fold's "
              "coverage scatters widely, see docs/forecast.md):")
        print(res.coverage_table())
    if args.utilsforecast:
        print("\nThe same forecasts scored by utilsforecast.evaluate (sMAPE on rnnkit's 0-200 scale):")
        print(uf_metrics.table(uf_metrics.utilsforecast_summary(res, ss)))
    if len(ss.series) > 1:
        per = res.per_series().pivot(index="id", columns="method", values="mase")
        shown = per.head(20)
        print("\nMASE per series (mean over folds)" + (f", first 20 of {len(per)} (all in scores.csv with --out):"
                                                       if len(per) > 20 else ":"))
        print(shown.round(3).to_string())
    if args.out:
        for p in write_outputs(res, Path(args.out), title=args.target):
            print(f"wrote {p}")
    return 0
