"""Calibrated prediction intervals: conformal scale of the model's spread, from twin models' errors.

Pinball-trained quantiles of a small RNN are usually too narrow out of sample (the stocks
backtest's nominal 80 % band covered 59 %). After training, ``calibrate`` measures how the
model's quantiles miss on data it has not seen and widens (or narrows) them:

- **Scores, refit scheme** ("holdout", multi-origin): ``twins`` models (default 3) with the same
  settings are trained on every series cut ``R``, ``2R``, ``3R`` points short (``default_holdout``:
  the horizon for many series, more for few, so the last step still gets ~64 windows), each
  forecasting from the ``R`` origins after its own cut, so the windows come from three periods
  rather than the last one. Later twins stop where the cut would leave less than half the median
  series, unless >= 64 series still have 2 points before it (``panel_carries_twin``). These are
  honest out-of-sample errors of the model *as configured*, of slightly weaker twins (less data).
  Each twin costs one training (3 twins: four times the training of ``calibrate="none"``, which
  skips it; the automatic configuration splits the budget between them).
  Where that cap would leave a single twin (one or a few short series: ``near_twins``), a twin
  that lost a third of the series errs more than the model and over-widens the band; there the
  twins are cut ``H``, ``2H``, ``3H`` short (H = the horizon) and each forecasts H origins.
- **Correction, normalized conformal** (Romano et al. 2019's CQR, with the model's own spread as
  the local scale, as in Lei et al. 2018's locally weighted scores): for trained level ``p`` the
  score of a window is ``t_p = (y - median) / (q_p - median)``. Levels p and 1-p: the conformal
  ``1 - 2 min(p, 1-p)`` quantile ``lambda_p`` of ``max(t_p, t_1-p)``, so ``median +- lambda_p
  (q - median)`` covers with the pair's nominal probability (mode "pair", used with near twins:
  ``NEAR_MODE``). Shipped mode otherwise, "common":
  one factor for all levels, the geometric mean of the ``lambda_p``; scores pooled over the horizon
  steps (``SHRINK_N0`` = inf) and weighted ``TWIN_DECAY ** j`` for twin j (weighted conformal,
  Barber et al. 2023): on the dev suite's training parts these gave the same coverage error as
  per-pair, per-step factors with a lower interval score (docs/decisions.md). (Mode "quantile",
  each level on its own, also corrects a biased median, but learned the *direction* of the twin's
  bias, which flipped on the evaluated periods.) The median (the point forecast) is never moved,
  so accuracy metrics do not change. Factors are kept in ``[0, 20]``. Kind "shift" (additive, in
  units of the model's 5-95 band) is kept for the tuning scripts.

Stored in the model folder as ``calibration.json``; applied in ``Forecaster.predict_quantiles``.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from typing import Any, Optional, TextIO

import numpy as np

from rnnkit.data.series import SeriesSet, truncate
from rnnkit.tasks.forecast.combine import combine_quantiles

SHRINK_N0 = math.inf  # windows at which a step's own factor and the pooled one weigh the same (inf: pooled)
MAX_FACTOR = 20.0    # a band more than 20x the model's own is a symptom, not a correction
MIN_WINDOWS = 64     # calibration windows wanted at the last horizon step (default_holdout)
KIND, MODE = "ratio", "common"  # the defaults chosen on the training parts (docs/decisions.md)
TWIN_DECAY = 0.5     # weight of twin j's windows in the conformal quantile: TWIN_DECAY ** j (recent weigh more)
BLEND_WINDOWS = 96   # windows per twin when the point forecast is a combination (each refits ETS and Theta)
TWINS = 3            # twins at cuts R, 2R, 3R (multi-origin; bench/_forecast_calib_multi.py, docs/decisions.md)
NEAR_MODE = "pair"   # the mode where the twins are cut horizons short (near_twins; bench/_forecast_calib_single.py)


@dataclass
class Calibration:
    """Per horizon step and trained level, how to move each quantile. factor: (H, Q).

    kind "ratio": ``median + factor * (q - median)`` (1 = unchanged); kind "shift":
    ``q + factor * (q_max - q_min)``, a shift in units of the model's own outer band (0 = unchanged).
    """

    levels: tuple[float, ...]
    factor: np.ndarray
    windows: int                 # calibration windows (origins over all series)
    holdout: int                 # points held out per series
    kind: str = "ratio"
    mode: str = "quantile"

    def apply(self, q: np.ndarray) -> np.ndarray:
        """q: (S, H, Q) quantiles at ``levels`` (sorted) -> corrected, still sorted along Q."""
        if self.kind == "shift":
            out = q + self.factor[None] * (q[..., -1:] - q[..., :1])
        else:
            med = q[..., [self.levels.index(0.5)]]
            out = med + self.factor[None] * (q - med)
        return np.sort(out, axis=-1)

    def to_dict(self) -> dict:
        return {"method": "holdout-refit twins at successive cuts, conformal factors (mode: per level, pair or common)",
                "kind": self.kind,
                "mode": self.mode, "levels": list(self.levels), "holdout": self.holdout, "windows": self.windows,
                "factor": [[round(float(v), 6) for v in row] for row in self.factor]}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        kind, mode = str(d.get("kind", "ratio")), str(d.get("mode", "quantile"))
        if kind not in ("ratio", "shift") or mode not in ("quantile", "pair", "common"):
            raise ValueError(f"unknown calibration kind/mode {kind!r}/{mode!r}")
        return cls(tuple(float(v) for v in d["levels"]), np.asarray(d["factor"], dtype=np.float64),
                   int(d["windows"]), int(d["holdout"]), kind, mode)


def conformal_quantile(t: np.ndarray, beta: float, w: Optional[np.ndarray] = None) -> float:
    """The ceil((n+1) beta)-th smallest of n scores (the finite-sample conformal quantile);
    the largest score when that rank exceeds n. With weights w (n,) (Barber et al. 2023's
    non-exchangeable conformal): the smallest score whose weighted rank share, out of the total
    plus a test point weighing as much as the heaviest score, reaches beta (equal weights: the same)."""
    if w is None:
        t = np.sort(t)
        k = min(len(t), max(1, math.ceil((len(t) + 1) * beta)))
        return float(t[k - 1])
    order = np.argsort(t, kind="stable")
    share = np.cumsum(w[order]) / (w.sum() + w.max())
    k = min(len(t) - 1, int(np.searchsorted(share, beta - 1e-12)))
    return float(t[order][k])


def _scores(q: np.ndarray, y: np.ndarray, m: np.ndarray, j: int, levels: tuple[float, ...], kind: str
            ) -> tuple[np.ndarray, np.ndarray, float]:
    """Score per window and step for level j, where it is defined, and the score quantile level
    that makes quantile j right: ratio t = (y - median) / (q_j - median) at max(p, 1-p) (a larger
    t widens either side); shift s = (y - q_j) / (q_max - q_min) at p (below the median the sign is
    flipped so a larger score is again the safe side: -s at 1-p)."""
    p = levels[j]
    med = q[..., levels.index(0.5)]
    if kind == "shift":
        d = q[..., -1] - q[..., 0]
        ok = (m > 0) & (d > 1e-9 * (1.0 + np.abs(med)))
        t = (y - q[..., j]) / np.where(ok, d, 1.0)
        return (t if p > 0.5 else -t), ok, max(p, 1 - p)
    d = q[..., j] - med
    ok = (m > 0) & (np.abs(d) > 1e-9 * (1.0 + np.abs(med)))
    return (y - med) / np.where(ok, d, 1.0), ok, max(p, 1 - p)


def fit_factors(q: np.ndarray, y: np.ndarray, m: np.ndarray, levels: tuple[float, ...],
                n0: float = SHRINK_N0, mode: str = "quantile", kind: str = "ratio",
                weights: Optional[np.ndarray] = None, margin: float = 0.0) -> np.ndarray:
    """Factors (H, Q) of a ``Calibration`` of ``kind`` from calibration windows: q (N, H, Q)
    forecasts, y, m (N, H) actuals and mask.

    mode "quantile": each level on its own (one-sided scores, see ``_scores``);
    "pair": levels p and 1-p share one value, the conformal (1 - 2 min(p, 1-p)) quantile of the
    two-sided score max(score_p, score_1-p) (CQR's interval score), which targets the pair's
    coverage and is not pulled apart by a median that was biased on the calibration windows.
    "common": one factor for every level (ratio kind): the geometric mean of the "pair" factors, per
    step (a single scale for the model's spread; the pairs' own factors are noisy estimates of it,
    the inner ones most: their scores divide by a small distance to the median).
    weights (N,): per-window weights of the conformal quantile (None: equal); margin: aim at a miss
    rate (1 - margin) times the nominal one (0: the nominal level).
    """
    if mode == "common":
        if kind != "ratio":
            raise ValueError("mode 'common' needs kind 'ratio'")
        f = fit_factors(q, y, m, levels, n0=n0, mode="pair", kind=kind, weights=weights, margin=margin)
        others = [j for j in range(len(levels)) if j != levels.index(0.5)]
        common = np.exp(np.log(np.maximum(f[:, others], 1e-6)).mean(axis=1))
        f[:, others] = common[:, None]
        return f
    N, H, Q = q.shape
    j_med = levels.index(0.5)
    neutral = 1.0 if kind == "ratio" else 0.0
    factor = np.full((H, Q), neutral)
    for j, p in enumerate(levels):
        if j == j_med:
            continue
        t, ok, beta = _scores(q, y, m, j, levels, kind)
        partner = [k for k, v in enumerate(levels) if abs(v - (1 - p)) < 1e-9]
        if mode == "pair" and partner:
            t2, ok2, _ = _scores(q, y, m, partner[0], levels, kind)
            t, ok = np.fmax(np.where(ok, t, np.nan), np.where(ok2, t2, np.nan)), ok & ok2
            beta = abs(1 - 2 * p)
        if ok.sum() == 0:
            continue
        beta = 1 - (1 - beta) * (1 - margin)
        wt = None if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64)[:, None], t.shape)
        pooled = conformal_quantile(t[ok], beta, None if wt is None else wt[ok])
        for h in range(H):
            th = t[:, h][ok[:, h]]
            own = conformal_quantile(th, beta, None if wt is None else wt[:, h][ok[:, h]]) if len(th) else pooled
            w = len(th) / (len(th) + n0)
            factor[h, j] = w * own + (1 - w) * pooled
        if kind == "shift" and p < 0.5:
            factor[:, j] = -factor[:, j]  # the score was flipped below the median
    if kind == "ratio":
        return np.clip(factor, 0.0, MAX_FACTOR)
    return np.clip(factor, -MAX_FACTOR, MAX_FACTOR)


def holdout_windows(fc: Any, ss: SeriesSet, holdout: int, static=None,
                    log: Optional[TextIO] = None, span: Optional[int] = None
                    ) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Train a copy of ``fc``'s configuration on ``ss`` cut ``holdout`` points short and forecast from
    the first ``span`` origins after the cut (default: every origin to the end). Returns (q (N, H, Q),
    y (N, H), m (N, H), series used) or None when no series is long enough (needs at least 2 points
    before the holdout)."""
    cut = {s.id: len(s) - holdout for s in ss.series if len(s) - holdout >= 2}
    if not cut:
        return None
    span = holdout if span is None else min(span, holdout)
    train = truncate(ss, cut)
    cfg = replace(fc.config, calibrate="none", init_from=None, progress=False)
    twin = type(fc)(config=cfg)
    if log is not None:
        print(f"calibration: training a twin model on {sum(cut.values())} points "
              f"({holdout} held out per series)", file=log)
    twin.fit(train, strict=False, static=static)
    net = twin.require_trained()
    panel = twin._panel(ss, net.cfg.context, net.cfg.horizon)
    pairs = [(i, o) for i, s in enumerate(ss.series) if s.id in cut for o in range(cut[s.id], cut[s.id] + span)]
    pairs = np.asarray(pairs, dtype=np.int64)
    rule = fc.config.combine
    combined = rule not in (None, "none")
    if combined and len(pairs) > BLEND_WINDOWS:  # each window refits ETS and Theta
        keep = np.random.default_rng(holdout).choice(len(pairs), BLEND_WINDOWS, replace=False)
        pairs = pairs[np.sort(keep)]
    qs, ys, ms = [], [], []
    for a in range(0, len(pairs), 512):
        b = panel.batch(pairs[a:a + 512])
        q = net.predict(b).cpu().numpy().astype(np.float64)
        if combined:  # score what predict returns: the band moved onto the combination
            hist = [ss.series[i].y[:t] for i, t in pairs[a:a + 512]]
            q = combine_quantiles(q, net.cfg.quantiles, hist, fc.season, rule)
        qs.append(q)
        ys.append(b["y_hor"].numpy().astype(np.float64))
        ms.append(b["m_hor"].numpy().astype(np.float64))
    return np.concatenate(qs), np.concatenate(ys), np.concatenate(ms), len(cut)


def multi_origin_windows(fc: Any, ss: SeriesSet, holdout: int, twins: int, static=None,
                         log: Optional[TextIO] = None, max_cut: Optional[int] = None
                         ) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]]:
    """Calibration windows from ``twins`` twin models cut at ``holdout``, ``2 holdout``, ...
    points short, each forecasting from the ``holdout`` origins after its own cut: ``twins`` times
    the windows of one twin, from as many periods (so one calm or one wild tail weighs less).
    Twins after the first stop where the cut exceeds ``max_cut`` (default: half the median series
    length: airline's one series calibrated from twins that had lost two thirds of it covered 100 %
    at a nominal 80 %) unless at least ``MIN_WINDOWS`` series still have 2 points before that cut
    (``panel_carries_twin``: M1 yearly's 181 short series otherwise allow one twin only); twins no
    series is long enough for are skipped; None when none is possible. Returns (q (N, H, Q), y, m (N, H),
    series used, twin index (N,): 0 for the most recent cut)."""
    lengths = [len(s) for s in ss.series]
    if max_cut is None:
        max_cut = int(np.median(lengths)) // 2
    got = []
    for j in range(twins):
        if j and holdout * (j + 1) > max_cut and not panel_carries_twin(lengths, holdout * (j + 1)):
            break  # a twin that lost more than half the typical series is too weak to stand for the model
        w = holdout_windows(fc, ss, holdout * (j + 1), static=static, log=log, span=holdout)
        if w is not None:
            got.append(w + (np.full(len(w[0]), j),))
    if not got:
        return None
    return (np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got]),
            np.concatenate([g[2] for g in got]), max(g[3] for g in got), np.concatenate([g[4] for g in got]))


def panel_carries_twin(lengths: list[int], cut: int, min_series: int = MIN_WINDOWS) -> bool:
    """Whether a twin cut ``cut`` points short is still trained on a panel: at least ``min_series``
    series keep 2 points before the cut. Such a twin learns from many series (a global model), so
    losing most of each one's history hurts it less than it hurts a twin of one or a few series."""
    return int(np.sum(np.asarray(lengths) - cut >= 2)) >= min_series


def default_holdout(horizon: int, lengths: list[int], windows: int = MIN_WINDOWS) -> int:
    """Points held out per series: enough that the last horizon step gets about ``windows``
    calibration windows over all series (step H gets R - H + 1 per series), but at most a third
    of the typical series and never less than the horizon. 181 series -> the horizon; 5 series ->
    about 3 horizons; one series -> a third of it (chosen on the training parts, docs/decisions.md)."""
    want = horizon + math.ceil(windows / max(1, len(lengths))) - 1
    return int(max(horizon, min(want, int(np.median(lengths)) // 3)))


def near_twins(horizon: int, lengths: list[int], twins: int = TWINS) -> bool:
    """Whether ``default_holdout``'s cut would leave a single twin (the cap of ``multi_origin_windows``:
    one or a few short series, airline). Such a twin lost a third of the series and errs more than the
    final model: on single dev series its common factor gave a 20-80 band 0.64-0.68 and 40-60
    0.28-0.30. There the twins are cut 1, 2, 3 horizons short and each pair gets its own factor
    (pooled coverage error 0.058 -> 0.018, interval score 0.976x; bench/_forecast_calib_single.py,
    docs/decisions.md)."""
    R = default_holdout(horizon, lengths)
    return twins > 1 and 2 * R > int(np.median(lengths)) // 2 and not panel_carries_twin(lengths, 2 * R)


def calibrate(fc: Any, ss: SeriesSet, holdout: Optional[int] = None, static=None,
              log: Optional[TextIO] = None, twins: int = TWINS) -> Optional[Calibration]:
    """Factors for ``fc`` (already trained on ``ss``) from ``twins`` holdout-refit twins at successive
    cuts (``multi_origin_windows``; horizons short where ``near_twins``); None if impossible."""
    log = log or sys.stderr
    H = fc.require_trained().cfg.horizon
    lengths = [len(s) for s in ss.series]
    near = near_twins(H, lengths, twins)
    R = holdout or (H if near else default_holdout(H, lengths))
    got = multi_origin_windows(fc, ss, R, twins, static=static, log=log if fc.config.progress else None)
    if got is None:
        if fc.config.progress:
            print(f"rnnkit: note: intervals not calibrated (every series is shorter than {R + 2} points)", file=log)
        return None
    q, y, m, _, twin = got
    levels = tuple(fc.network.cfg.quantiles)
    mode = NEAR_MODE if near else MODE
    f = fit_factors(q, y, m, levels, mode=mode, kind=KIND, weights=TWIN_DECAY ** twin.astype(np.float64))
    return Calibration(levels, f, windows=len(q), holdout=R, kind=KIND, mode=mode)
