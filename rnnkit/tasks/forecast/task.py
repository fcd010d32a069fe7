"""``rnnkit.Forecaster``: a global RNN forecaster over one or many series, from a table.

    m = Forecaster(horizon=12, cell="lstm").fit(df, target="passengers", time_col="month")
    pred = m.predict(df, quantiles=(0.1, 0.5, 0.9))   # id, time, step, forecast, q0.1, q0.5, q0.9
    m.save("model/"); m2 = rnnkit.load("model/")

What the user does not have to do: scale the series (each window is standardised inside the
model), pick window sizes (from the horizon, the season and the series lengths), pad short
series (masked), or line up future covariates. Training runs on the shared ``Trainer``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch

from rnnkit.data.series import SeriesSet, check_lengths, load_series, truncate
from rnnkit.data.static import StaticEncoder, StaticLike, embedding_size, read_static
from rnnkit.data.windows import Panel, default_context
from rnnkit.errors import UserError
from rnnkit.metrics.forecast import mase, rmse, smape
from rnnkit.tasks.forecast.network import (DEFAULT_QUANTILES, ForecastModel, NetConfig, anchor_highway,
                                          forecast_loss)
from rnnkit.options import from_dict, opt, shared_fields
from rnnkit.tasks.autoconfig import (FORECAST_DEFAULT_BUDGET_S, ForecastPlan, forecast_budget, forecast_plan,
                                     forecast_stats)
from rnnkit.tasks.base import RunOptions, Task
from rnnkit.tasks.forecast import formats
from rnnkit.tasks.forecast.formats import parse_quantiles
from rnnkit.tasks.forecast.calibration import Calibration, calibrate
from rnnkit.tasks.forecast.combine import RULES, combine_quantiles
from rnnkit.train import Trainer, TrainConfig, torch_threads

DataLike = Union[str, Path, pd.DataFrame]


@dataclass(kw_only=True)
class ForecastConfig(RunOptions):
    """Everything ``Forecaster`` needs besides the data. None = chosen from the data."""

    horizon: Optional[int] = opt(None, "steps to forecast (required)", min=1, max=10_000)
    cell: str = opt("lstm", "recurrent cell: lstm, gru, rnn, mingru")
    hidden_size: int = opt(64, "hidden units", min=1, max=8192)
    num_layers: int = opt(1, "stacked recurrent layers", min=1, max=64)
    dropout: float = opt(0.0, "dropout between stacked layers", min=0.0, max=0.99)
    context: Optional[int] = opt(None, "history length the model reads (default: ~2-3 horizons / 2 seasons)",
                                 min=1, max=100_000)
    season: Optional[int] = opt(None, "seasonal period (default: from the date frequency, 1 for integers)",
                                min=1, max=100_000)
    quantiles: tuple[float, ...] = opt(DEFAULT_QUANTILES, "trained quantile levels; predict interpolates "
                                       "between them", min=0.0, max=1.0)
    ensemble: Optional[int] = opt(None, "members with different initialisations, quantiles averaged "
                                  "(default: from the data, rnnkit/tasks/autoconfig.py)", min=1, max=256)
    highway: bool = opt(True, "linear path on the scaled history (LSTNet-style)")
    anchor: Optional[str] = opt(None, "where the linear path starts: seasonal (seasonal naive), naive (last "
                                "value) or none (zero); default: from the data", choices=("seasonal", "naive", "none"))
    combine: Optional[str] = opt(None, "point forecast: RNN median (none), blend (2/3 RNN + 1/3 mean of per-series "
                                 "ETS, Theta), mean or median of the three; default: from the data", choices=RULES)
    epochs: Optional[int] = opt(None, "epochs (each about one pass over the windows, 5-50 batches; default: 30, "
                                "fewer when --max-time cannot pay for them)", min=1, max=1_000_000)
    steps_per_epoch: Optional[int] = opt(None, "sampled batches per epoch (default: about one pass, 5..50; "
                                         "small data overfits with more)", min=1, max=1_000_000)
    batch_size: int = opt(64, "windows per batch", min=1, max=1_000_000)
    lr: float = opt(3e-3, "learning rate", min=0.0, max=10.0)
    threads: Optional[int] = opt(1, "CPU threads while training (a small RNN is fastest on one; 0 = torch's "
                                 "default)", min=0, max=1024)
    # interval calibration after training (calibration.py): "holdout" trains calib_twins twin models cut
    # short and scales the band by a conformal factor from their out-of-sample errors (each twin costs a
    # training; the budget is split between them); "none" keeps the raw quantiles
    calibrate: str = opt("holdout", "interval calibration: holdout (twin models' out-of-sample errors "
                         "scale the band; each twin costs a training) or none", choices=("holdout", "none"))
    calib_holdout: Optional[int] = opt(None, "points held out per series for calibration (default: "
                                       "calibration.default_holdout, or the horizon where that would leave "
                                       "one twin)", min=1, max=100_000)
    calib_twins: int = opt(3, "twin models for calibration, cut 1, 2, 3... holdouts short, each forecasting the "
                           "holdout after its own cut (more windows from more periods; each one costs a training)",
                           min=1, max=20)


def _loss(model, batch, state):
    return forecast_loss(model, batch), None


def _step_seconds(net_cfg: NetConfig, panel: Panel, pairs, bs: int, cfg: ForecastConfig, n: int = 3) -> float:
    """Seconds per optimizer step of one member on this data (after one warm-up step), for the budget rule."""
    import time

    model = ForecastModel(net_cfg, seed=cfg.seed)
    if net_cfg.has_static:
        model.set_window_stats(panel.batch(pairs.take(np.arange(min(len(pairs), 256)))))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    batches = [panel.batch(pairs.sample(rng, bs)) for _ in range(n + 1)]
    t0 = 0.0
    for i, b in enumerate(batches):
        if i == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        forecast_loss(model, b).backward()
        opt.step()
    return (time.perf_counter() - t0) / n


def interpolate_quantiles(q: np.ndarray, levels: Sequence[float], wanted: Sequence[float]) -> np.ndarray:
    """q: (..., Q) at sorted ``levels`` -> (..., len(wanted)) by linear interpolation."""
    levels = np.asarray(levels, dtype=np.float64)
    out = []
    for p in wanted:
        if not (levels[0] - 1e-9 <= p <= levels[-1] + 1e-9):
            raise UserError(f"quantile {p} is outside the trained range {levels[0]}..{levels[-1]}; "
                            f"train with quantiles covering it")
        j = int(np.clip(np.searchsorted(levels, p) - 1, 0, len(levels) - 2))
        w = (p - levels[j]) / (levels[j + 1] - levels[j])
        out.append((1 - w) * q[..., j] + w * q[..., j + 1])
    return np.stack(out, axis=-1)


class Forecaster(Task):
    """Global quantile RNN forecaster (see module docstring)."""

    task = "forecast"
    Config = ForecastConfig
    onnx_inputs = ("y_s", "m")

    def __init__(self, horizon: Optional[int] = None, config: Optional[ForecastConfig] = None, **kwargs) -> None:
        if horizon is not None:
            kwargs["horizon"] = horizon
        super().__init__(config, **kwargs)
        if self.config.horizon is None:
            raise UserError("horizon must be a positive integer (steps to forecast), got None")
        self.schema: dict = {}
        self.season = 1
        self.train_stats: list[dict] = []
        self.static: Optional[StaticEncoder] = None      # static covariates' vocabularies + scaling
        self.calibration: Optional[Calibration] = None   # interval correction (calibration.py)
        self.plan: Optional[ForecastPlan] = None         # what the automatic configuration chose

    # ------------------------------------------------------------------ training
    def fit(self, data: DataLike | SeriesSet, target: Optional[str] = None, time_col: Optional[str] = None,
            id_col: Optional[str] = None, covariates: Sequence[str] = (),
            future_covariates: Sequence[str] = (), strict: bool = True, out_dir: Optional[str] = None,
            resume: bool = False, static: Optional[StaticLike] = None) -> "Forecaster":
        """Train on a long table (or a loaded ``SeriesSet``).

        target / time_col / id_col default to ``y`` / ``ds`` / ``unique_id`` where those columns exist.
        static: table (CSV path or frame) with one row per series, keyed by the id column
        (rnnkit.data.static); predict then needs it too.
        covariates: past-observed columns; future_covariates: columns known over the horizon.
        strict: every series must have more than ``horizon`` points (backtests relax this).
        """
        cfg = self.config
        if isinstance(data, SeriesSet):
            ss = data
        else:
            target, time_col, id_col = formats.resolve_columns(data, target, time_col, id_col,
                                                               quiet=not cfg.progress)
            ss = load_series(data, target, time_col, id_col, covariates, future_covariates, quiet=not cfg.progress)
        if strict:
            check_lengths(ss, cfg.horizon)
        table = None
        if static is not None:
            if not ss.id_col:
                raise UserError("static covariates need an id column (one row of features per series)")
            table, key = read_static(static, ss.id_col)
            self.static = StaticEncoder.fit(table, key, [s.id for s in ss.series],
                                            [float(np.mean(s.y)) for s in ss.series])
        else:
            self.static = None
        self.calibration = None
        self.schema = ss.schema()
        self.season = cfg.season or ss.season
        context = cfg.context or default_context(cfg.horizon, self.season, [len(s) for s in ss.series])
        source = self.init_source()
        self.plan = None
        if source is None:  # settings left to the data (None) are chosen now, and stored resolved
            cfg = self.config = self._plan(ss, context)
        net_cfg = NetConfig(**{**shared_fields(cfg, NetConfig), "context": context, "n_past": len(ss.past_cols),
                               "n_future": len(ss.future_cols), "quantiles": tuple(sorted(cfg.quantiles))})
        if self.static is not None:
            cards = self.static.cardinalities
            net_cfg = replace(net_cfg, n_static=len(self.static.numeric), static_cards=cards,
                              static_dims=tuple(embedding_size(c - 1) for c in cards))
        if source is not None:  # fine-tuning: the saved network, which must fit these columns and horizon
            net_cfg, context = source.network.cfg, source.network.cfg.context
            if (net_cfg.horizon, net_cfg.n_past, net_cfg.n_future) != (cfg.horizon, len(ss.past_cols), len(ss.future_cols)):
                raise UserError(f"--init-from {cfg.init_from}: that model forecasts {net_cfg.horizon} steps from "
                                f"{net_cfg.n_past}+{net_cfg.n_future} covariates; this run asks for {cfg.horizon} "
                                f"from {len(ss.past_cols)}+{len(ss.future_cols)}")
        if 0.5 not in net_cfg.quantiles:
            raise UserError("the trained quantiles must include 0.5 (the point forecast)")
        panel = self._panel(ss, context, cfg.horizon, static=table)
        pairs = panel.origins(min_context=max(2, context // 2))  # O(series) memory, however long they are
        bs = min(cfg.batch_size, len(pairs))
        steps = cfg.steps_per_epoch or int(np.clip(np.ceil(len(pairs) / bs), 5, 50))
        if source is None and self.plan is not None and {"ensemble", "epochs"} & set(self.plan.chosen):
            # the budget (--max-time, else FORECAST_DEFAULT_BUDGET_S) may not pay for the whole plan:
            # time a few steps of one member, then fit the plan into it
            trainings = 1 + (cfg.calib_twins if cfg.calibrate == "holdout" else 0)  # the twins train too
            budget = (cfg.max_time or FORECAST_DEFAULT_BUDGET_S) / trainings
            try:
                with torch_threads(cfg.threads or None):
                    sec = _step_seconds(replace(net_cfg, ensemble=1), panel, pairs, bs, cfg)
            except ValueError as exc:  # unknown cell name
                raise UserError(str(exc)) from None
            self.plan = forecast_budget(self.plan, steps, sec, budget)
            cfg = self.config = replace(cfg, **self.plan.values())
            net_cfg = replace(net_cfg, ensemble=cfg.ensemble)
        if source is None and self.plan is not None and self.plan.reason and cfg.progress:
            print(f"rnnkit: {self.plan.reason}", file=sys.stderr)  # the one line: what was chosen, why
        try:
            self.network = self.start_from(ForecastModel(net_cfg, seed=cfg.seed), source)
            if source is None and cfg.anchor:
                anchor_highway(self.network, cfg.anchor, self.season)
        except ValueError as exc:  # unknown cell name, anchor without highway
            raise UserError(str(exc)) from None
        if net_cfg.has_static:
            sample = np.random.default_rng(cfg.seed).permutation(len(pairs))[:4096]
            self.network.set_window_stats(panel.batch(pairs.take(sample)))
            self.network.set_static_levels(self.static.level)
        self.train_stats = [{"id": s.id, "n": len(s), "mean": float(np.mean(s.y)), "std": float(np.std(s.y))}
                            for s in ss.series]

        def epoch_batches(epoch: int):
            rng = np.random.default_rng(cfg.seed * 100_003 + epoch)
            return [panel.batch(pairs.sample(rng, bs)) for _ in range(steps)]

        tcfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, grad_clip=1.0, schedule="cosine", min_lr_ratio=0.05,
                           patience=None, seed=cfg.seed, max_time=cfg.max_time, device=cfg.device,
                           progress=cfg.progress, out_dir=out_dir, resume=resume, logger=cfg.logger)
        trainer = Trainer(self.network, tcfg, _loss, model_config=self.config_json(), extras=self.extras())
        with torch_threads(cfg.threads or None):
            self.history = trainer.fit(epoch_batches)
        self.network.eval()
        if cfg.calibrate == "holdout" and source is None:
            with torch_threads(cfg.threads or None):
                self.calibration = calibrate(self, ss, cfg.calib_holdout, static=table, twins=cfg.calib_twins)
        elif source is not None:
            self.calibration = source.calibration
        return self

    def _plan(self, ss: SeriesSet, context: int) -> ForecastConfig:
        """The config with its automatic settings (None) filled in by ``autoconfig.forecast_plan``
        (before the budget; ``fit`` prints the final plan's one line)."""
        cfg = self.config
        n = np.array([len(s) for s in ss.series])
        windows = int(np.maximum(n - np.maximum(1, np.minimum(max(2, context // 2), n - cfg.horizon)), 0).sum())
        stats = forecast_stats([s.y for s in ss.series], cfg.horizon, self.season, windows,
                               season_known=bool(ss.freq) or cfg.season is not None)
        anchor = cfg.anchor if cfg.highway else (cfg.anchor or "none")  # the anchor lives on the linear path
        plan = forecast_plan(stats, anchor=anchor, ensemble=cfg.ensemble, epochs=cfg.epochs, combine=cfg.combine)
        self.plan = plan
        return replace(cfg, **plan.values())

    def _panel(self, ss: SeriesSet, context: int, horizon: int, with_future: bool = False,
               static: Optional[StaticLike] = None) -> Panel:
        """Windows of ``ss``, with the static features of its series when the model has them."""
        panel = Panel.build(ss, context, horizon, with_future=with_future)
        if self.static is not None:
            table = read_static(static, ss.id_col)[0] if static is not None else None
            panel.static_num, panel.static_cat = self.static.encode(
                table, [s.id for s in ss.series], log=sys.stderr)  # always: it changes the forecast
        elif static is not None:
            raise UserError("this model was trained without static covariates; leave out the static table")
        return panel

    # ------------------------------------------------------------------ inference
    def load_data(self, data: DataLike, allow_future_rows: bool = True) -> SeriesSet:
        """Read new data with the training schema (same column names)."""
        sc = self.schema
        ss = load_series(data, sc["target"], sc["time_col"], sc["id_col"], sc["past_cols"], sc["future_cols"],
                         allow_future_rows=allow_future_rows, quiet=not self.config.progress)
        if ss.freq is None and sc.get("freq") and all(s.times.dtype.kind == "M" for s in ss.series):
            ss.freq = sc["freq"]  # dates too short to infer: the training frequency (never for integer steps)
        if ss.freq is None and not sc.get("freq"):
            ss.step = sc.get("step", ss.step) if all(len(s) < 2 for s in ss.series) else ss.step
        return ss

    def predict_quantiles(self, ss: SeriesSet, static: Optional[StaticLike] = None,
                          calibrated: bool = True) -> np.ndarray:
        """Quantiles at the trained levels for the horizon after each series' end: (S, horizon, Q),
        corrected by the model's calibration unless ``calibrated=False``."""
        model = self.require_trained()
        panel = self._panel(ss, model.cfg.context, model.cfg.horizon, with_future=bool(ss.future_cols),
                            static=static)
        with torch_threads(self.config.threads or None):
            q = model.predict(panel.last()).cpu().numpy().astype(np.float64)
        q = self.calibration.apply(q) if calibrated and self.calibration is not None else q
        return combine_quantiles(q, model.cfg.quantiles, [s.y for s in ss.series], self.season, self.config.combine)

    def predict(self, data: DataLike | SeriesSet, quantiles: Optional[Sequence[float]] = None,
                format: str = "rnnkit", level: Optional[Sequence[float]] = None,
                static: Optional[StaticLike] = None) -> pd.DataFrame:
        """Forecast ``horizon`` steps after the end of every series in ``data`` (seen or unseen in training).

        Only the last ``context`` points of each series are read. ``format="rnnkit"`` returns a long
        table ``id, time, step, forecast[, q<level>...]``; ``forecast`` is the median.
        ``format="nixtla"`` returns neuralforecast's layout (formats.py): ``unique_id, ds, <CELL>,
        <CELL>-lo-<L>..., <CELL>-hi-<L>...`` for ``level`` (percent; default: the symmetric pairs in
        ``quantiles``, else 80 and 90). static: the static table when the model was trained with one.
        """
        quantiles = parse_quantiles(quantiles)
        if format == "nixtla":
            levels = formats.nixtla_levels(level, quantiles, self.require_trained().cfg.quantiles)
            df = self.predict(data, quantiles=formats.level_quantiles(levels), static=static)
            return formats.to_nixtla(df, formats.model_column(self.config.cell), levels)
        if format != "rnnkit":
            raise UserError(f"unknown output format {format!r}; choose rnnkit or nixtla")
        if level is not None:
            raise UserError("level= goes with format='nixtla' (rnnkit's format takes quantiles=)")
        model = self.require_trained()
        ss = data if isinstance(data, SeriesSet) else self.load_data(data)
        q = self.predict_quantiles(ss, static=static)
        levels = model.cfg.quantiles
        point = interpolate_quantiles(q, levels, [0.5])[..., 0]
        extra = interpolate_quantiles(q, levels, quantiles) if quantiles else None
        H = model.cfg.horizon
        rows = {"id": [], "time": [], "step": [], "forecast": []}
        for i, s in enumerate(ss.series):
            rows["id"] += [s.id] * H
            rows["time"] += list(ss.future_times(s, H))
            rows["step"] += list(range(1, H + 1))
            rows["forecast"] += list(point[i])
        df = pd.DataFrame(rows)
        for k, p in enumerate(quantiles or ()):
            df[f"q{p:g}"] = extra[:, :, k].reshape(-1)
        return df

    def evaluate(self, data: DataLike, static: Optional[StaticLike] = None) -> dict:
        """Forecast each series' last ``horizon`` points from the points before them and return mean
        MASE/sMAPE/RMSE. Honest only when the model was trained without those points (fit on
        data cut ``horizon`` earlier); ``backtest`` does the retraining for you."""
        ss = self.load_data(data, allow_future_rows=False)
        H = self.require_trained().cfg.horizon
        check_lengths(ss, H)
        cut = truncate(ss, {s.id: len(s) - H for s in ss.series})
        if ss.future_cols:
            cut.horizon_future = {s.id: s.future[len(s) - H:] for s in ss.series}
        q = self.predict_quantiles(cut, static=static)
        point = interpolate_quantiles(q, self.network.cfg.quantiles, [0.5])[..., 0]
        res = {"mase": [], "smape": [], "rmse": []}
        for i, s in enumerate(ss.series):
            y, hist = s.y[-H:], s.y[:-H]
            res["mase"].append(mase(y, point[i], hist, self.season))
            res["smape"].append(smape(y, point[i]))
            res["rmse"].append(rmse(y, point[i]))
        return {k: float(np.mean(v)) for k, v in res.items()}

    # ------------------------------------------------------------------ persistence
    def extras(self) -> dict:
        extras = {"schema": {**self.schema, "season": self.season},
                  "scaler": {"kind": "per-window standardisation inside the model (mean/std of the context "
                                     "window, std floored at 1% of the mean level); no global statistics needed",
                             "train_series": self.train_stats[:1000]}}
        if self.static is not None:
            extras["static"] = self.static.to_dict()
        if self.calibration is not None:
            extras["calibration"] = self.calibration.to_dict()
        return extras

    def restore(self, net: dict, extras: dict, where: str) -> ForecastModel:
        schema = extras.get("schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("target"), str):
            raise UserError(f"{where}: schema.json is missing or names no target column")
        self.schema = {k: v for k, v in schema.items() if k != "season"}
        season = schema.get("season", 1)
        if not isinstance(season, int) or isinstance(season, bool) or not 1 <= season <= 100_000:
            raise UserError(f"{where}: bad season {season!r} in schema.json")
        self.season = season
        self.train_stats = (extras.get("scaler") or {}).get("train_series", [])
        try:
            self.static = StaticEncoder.from_dict(extras["static"]) if "static" in extras else None
            self.calibration = Calibration.from_dict(extras["calibration"]) if "calibration" in extras else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{where}: bad static.json or calibration.json ({exc})") from None
        return ForecastModel(from_dict(NetConfig, net, f"{where} net"), seed=0)

    def onnx_network(self, session):
        from rnnkit.onnx_runtime import OnnxForecastModel

        net = self.require_trained()
        session.require_inputs(list(self.onnx_inputs), "the forecast network")
        session.require_dims("input", "y_s", {1: net.cfg.context}, "this model's context")
        session.require_dims("output", "q", {2: net.cfg.horizon}, "this model's horizon")
        return OnnxForecastModel(session, net)
