"""The forecasting network: scale per window, run a recurrent encoder, emit all horizon
quantiles at once (direct multi-output head, as MQ-RNN), plus a linear "highway" on the
scaled history (as LSTNet) so level and trend extrapolate even far outside the training range.

Shapes: y_ctx, m_ctx (B, L); x_ctx (B, L, C) covariates (past then known-future);
f_hor (B, H, F) known-future covariates over the horizon; s_num (B, N), s_cat (B, C') static
covariates (optional); output (B, H, Q).

Static covariates join the head's input: numbers, category embeddings, and for each category
its level (the mean target of its training series) expressed in the window's scaled units,
``(level - loc) / scale``, plus the window's standardised log scale and level (as GluonTS's DeepAR
appends log(scale) to its static features). Per-window scaling hides the absolute level, so a
static feature that decides the level ("stores of type A sell ~100") is useless unless the network
can compare the two; the scaled category level makes that comparison a linear one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from rnnkit.nn.registry import make_layer
from rnnkit.options import opt, to_dict

DEFAULT_QUANTILES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass(kw_only=True)
class NetConfig:
    """Architecture of one ensemble member (all members share it); the settings the user picks
    carry the names of ``ForecastConfig``'s fields, the rest come from the data."""

    context: int = opt(1, "history length the network reads", min=1, max=100_000, flag=False)
    horizon: int = opt(1, "steps forecast at once", min=1, max=10_000, flag=False)
    n_past: int = opt(0, "past-observed covariates", min=0, max=10_000, flag=False)
    n_future: int = opt(0, "known-future covariates", min=0, max=10_000, flag=False)
    quantiles: tuple[float, ...] = opt(DEFAULT_QUANTILES, "trained quantile levels", min=0.0, max=1.0, flag=False)
    cell: str = opt("lstm", "recurrent cell", flag=False)
    hidden_size: int = opt(64, "hidden units", min=1, max=8192, flag=False)
    num_layers: int = opt(1, "stacked recurrent layers", min=1, max=64, flag=False)
    dropout: float = opt(0.0, "dropout between layers", min=0.0, max=0.99, flag=False)
    highway: bool = opt(True, "linear path on the scaled history", flag=False)
    ensemble: int = opt(1, "members", min=1, max=256, flag=False)
    n_static: int = opt(0, "numeric static covariates", min=0, max=10_000, flag=False)
    static_cards: tuple[int, ...] = opt((), "embedding rows per categorical static (index 0 = unknown)", min=1,
                                        max=10_000_000, flag=False)
    static_dims: tuple[int, ...] = opt((), "embedding widths", min=1, max=4096, flag=False)
    static_dropout: float = opt(0.1, "share of training categories replaced by 'unknown'", min=0.0, max=1.0,
                                flag=False)

    @property
    def has_static(self) -> bool:
        return bool(self.n_static or self.static_cards)

    def to_dict(self) -> dict:
        return to_dict(self)


def masked_stats(x: Tensor, m: Tensor, dim: int = 1) -> tuple[Tensor, Tensor]:
    """Mean and std of x over ``dim`` where m == 1; x, m broadcastable. Keeps dim."""
    cnt = m.sum(dim, keepdim=True).clamp(min=1.0)
    mean = (x * m).sum(dim, keepdim=True) / cnt
    var = (((x - mean) * m) ** 2).sum(dim, keepdim=True) / cnt
    return mean, var.sqrt()


def window_scale(y: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    """Per-window location and scale of the target, y, m: (B, L) -> (B, 1) each.

    The floor (1 % of the mean level, then 1e-8) keeps flat or one-point histories finite;
    scaling per window is what keeps a series in the thousands, or a trend far beyond the
    training range, inside the cells' working range.
    """
    loc, std = masked_stats(y, m)
    level = (y.abs() * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
    return loc, torch.maximum(std, 0.01 * level).clamp(min=1e-8)


class ForecastNet(nn.Module):
    """One member: recurrent encoder + MLP head (+ linear highway), in scaled units."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        Q, H, F = len(cfg.quantiles), cfg.horizon, cfg.n_future
        self.rnn = make_layer(cfg.cell, 2 + cfg.n_past + F, cfg.hidden_size, num_layers=cfg.num_layers,
                              dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.embeds = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cfg.static_cards, cfg.static_dims))
        # numbers, embeddings, 2 window features, one scaled level per category column
        n_static = cfg.n_static + sum(cfg.static_dims) + 2 + len(cfg.static_cards) if cfg.has_static else 0
        self.head = nn.Sequential(nn.Linear(cfg.hidden_size + H * F + n_static, cfg.hidden_size), nn.ReLU(),
                                  nn.Linear(cfg.hidden_size, H * Q))
        self.highway = nn.Linear(cfg.context, H * Q) if cfg.highway else None
        if self.highway is not None:  # start from "no linear part": the RNN learns first
            nn.init.zeros_(self.highway.weight)
            nn.init.zeros_(self.highway.bias)

    def static_features(self, s_num: Tensor, s_cat: Tensor, window: Tensor) -> Tensor:
        """s_num (B, N), s_cat (B, C) int, window (B, 2 + C) standardised log scale/level and scaled
        category levels -> (B, width)."""
        return torch.cat([s_num, window] + [e(s_cat[:, j]) for j, e in enumerate(self.embeds)], dim=-1)

    def forward(self, y_s: Tensor, m: Tensor, x_s: Tensor, f_s: Tensor, z: Optional[Tensor] = None) -> Tensor:
        """Scaled inputs -> scaled quantiles. y_s, m: (B, L); x_s: (B, L, C); f_s: (B, H, F);
        z: (B, width) static features (``static_features``) or None -> (B, H, Q)."""
        # empty covariate blocks are left out (not concatenated): zero-width tensors have no
        # reliable ONNX form, and the result is the same
        parts = [y_s.unsqueeze(-1), m.unsqueeze(-1)] + ([x_s] if x_s.shape[-1] else [])
        out = self.rnn(torch.cat(parts, dim=-1))
        seq = out[0] if isinstance(out, tuple) else out
        h = torch.cat([seq[:, -1], f_s.flatten(1)], dim=-1) if f_s.shape[-1] else seq[:, -1]
        if z is not None:
            h = torch.cat([h, z], dim=-1)
        q = self.head(h)
        if self.highway is not None:
            q = q + self.highway(y_s * m)
        return q.view(-1, self.cfg.horizon, len(self.cfg.quantiles))


class ForecastModel(nn.Module):
    """Ensemble of ``cfg.ensemble`` members sharing the per-window scaling.

    ``forward`` returns scaled quantiles per member (B, E, H, Q) plus loc, scale (B, 1) for
    the loss; ``predict`` returns quantiles in data units, averaged over members (B, H, Q).
    """

    def __init__(self, cfg: NetConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        members = []
        for k in range(cfg.ensemble):  # distinct, reproducible initialisations
            torch.manual_seed(seed + 1000 * k)
            members.append(ForecastNet(cfg))
        self.members = nn.ModuleList(members)
        if cfg.has_static:  # standardisation of the window features, set from the training windows
            self.register_buffer("window_mu", torch.zeros(2))
            self.register_buffer("window_sd", torch.ones(2))
        for j, card in enumerate(cfg.static_cards):  # category levels (StaticEncoder.level), set at fit
            self.register_buffer(f"static_level{j}", torch.zeros(card))

    @torch.no_grad()
    def set_static_levels(self, levels: list[list[float]]) -> None:
        for j, lv in enumerate(levels):
            getattr(self, f"static_level{j}").copy_(torch.tensor(lv, dtype=torch.float32))

    @staticmethod
    def _window_raw(loc: Tensor, scale: Tensor) -> Tensor:
        """(B, 1) location and scale -> (B, 2): log scale and asinh(level / scale)."""
        return torch.cat([scale.log(), torch.asinh(loc / scale)], dim=-1)

    @torch.no_grad()
    def set_window_stats(self, b: dict[str, Tensor]) -> None:
        """Standardise the window features with their mean/std over a sample of training windows."""
        loc, scale = window_scale(b["y_ctx"], b["m_ctx"])
        raw = self._window_raw(loc, scale)
        self.window_mu.copy_(raw.mean(0))
        self.window_sd.copy_(raw.std(0).clamp(min=1e-3) if len(raw) > 1 else torch.ones(2))

    def scale_inputs(self, b: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        y, m, x, f = b["y_ctx"], b["m_ctx"], b["x_ctx"], b["f_hor"]
        loc, scale = window_scale(y, m)
        y_s = (y - loc) / scale * m
        if x.shape[-1]:  # each covariate standardised on its own context window
            mu, sd = masked_stats(x, m.unsqueeze(-1))
            sd = sd.clamp(min=1e-6)
            x = (x - mu) / sd * m.unsqueeze(-1)
            F = f.shape[-1]
            if F:
                f = (f - mu[:, :, -F:]) / sd[:, :, -F:]
        return y_s, x, f, loc, scale

    def forward(self, b: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        y_s, x_s, f_s, loc, scale = self.scale_inputs(b)
        if not self.cfg.has_static:
            q = torch.stack([net(y_s, b["m_ctx"], x_s, f_s) for net in self.members], dim=1)
            return q, loc, scale
        window = (self._window_raw(loc, scale) - self.window_mu) / self.window_sd
        s_cat = b["s_cat"]
        if self.training and self.cfg.static_dropout > 0 and s_cat.shape[-1]:
            # teach the "unknown" embedding (index 0) what an unseen category should mean
            drop = torch.rand(s_cat.shape, device=s_cat.device) < self.cfg.static_dropout
            s_cat = s_cat.masked_fill(drop, 0)
        levels = [getattr(self, f"static_level{j}")[s_cat[:, j]] for j in range(s_cat.shape[-1])]
        if levels:  # where each category's level sits in this window's scaled units
            window = torch.cat([window, ((torch.stack(levels, -1) - loc) / scale).clamp(-20.0, 20.0)], -1)
        q = torch.stack([net(y_s, b["m_ctx"], x_s, f_s, net.static_features(b["s_num"], s_cat, window))
                         for net in self.members], dim=1)
        return q, loc, scale

    def onnx_specs(self) -> dict:
        """ONNX graph ``sequence`` of the networks in scaled units (the per-window scaling of
        ``scale_inputs`` and the un-scaling of ``predict`` stay in Python, see
        ``rnnkit.onnx_runtime.predict_forecast_onnx``): y_s, m (B, L)[, x_s (B, L, C)][, f_s (B, H, F)]
        -> q (B, E, H, Q), scaled quantiles per ensemble member. Batch is dynamic; L is the context."""
        from rnnkit.errors import UserError
        from rnnkit.export import ExportSpec

        if self.cfg.has_static:
            raise UserError("ONNX export of a forecaster with static covariates is not supported yet")
        cfg, g = self.cfg, torch.Generator().manual_seed(0)
        C, F = cfg.n_past + cfg.n_future, cfg.n_future
        names = ["y_s", "m"] + (["x_s"] if C else []) + (["f_s"] if F else [])

        def inputs(b: int) -> tuple[Tensor, ...]:
            m = (torch.rand(b, cfg.context, generator=g) > 0.1).float()
            out = [torch.randn(b, cfg.context, generator=g) * m, m]
            if C:
                out.append(torch.randn(b, cfg.context, C, generator=g))
            if F:
                out.append(torch.randn(b, cfg.horizon, F, generator=g))
            return tuple(out)

        axes = {k: {0: "batch"} for k in names + ["q"]}
        return {"sequence": ExportSpec(_ScaledEnsemble(self).eval(), inputs(2), names, ["q"], axes, inputs(5))}

    @torch.no_grad()
    def predict(self, b: dict[str, Tensor]) -> Tensor:
        """Quantiles in data units, (B, H, Q), sorted along Q (no crossing)."""
        q, loc, scale = self.forward(b)
        q = q.mean(dim=1)  # quantile averaging across members
        q = q * scale.unsqueeze(-1) + loc.unsqueeze(-1)
        return q.sort(dim=-1).values


class _ScaledEnsemble(nn.Module):
    """y_s, m[, x_s][, f_s] -> (B, E, H, Q): every member on the same scaled window (exported)."""

    def __init__(self, model: ForecastModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, y_s: Tensor, m: Tensor, *cov: Tensor) -> Tensor:
        cfg = self.model.cfg
        empty = y_s.new_zeros(1, 1, 0)  # a missing block (never concatenated: see ForecastNet.forward)
        x_s = cov[0] if cfg.n_past + cfg.n_future else empty
        f_s = cov[-1] if cfg.n_future else empty
        return torch.stack([net(y_s, m, x_s, f_s) for net in self.model.members], dim=1)


def anchor_highway(model: "ForecastModel", kind: str, season: int) -> None:
    """Start every member's linear path at a simple forecast instead of zero, in scaled units:
    "naive" copies the last context point to every step and quantile, "seasonal" the point one
    season before each step (seasonal naive; naive when the context holds less than a season),
    "none" leaves the zero start. The network then learns a correction to that forecast (what
    the data show: docs/decisions.md, "Forecasting: automatic configuration")."""
    if kind == "none":
        return
    cfg = model.cfg
    L, H, Q = cfg.context, cfg.horizon, len(cfg.quantiles)
    w = torch.zeros(H * Q, L)
    for h in range(H):
        src = L - season + (h % season) if kind == "seasonal" and 1 < season <= L else L - 1
        w[h * Q:(h + 1) * Q, src] = 1.0
    with torch.no_grad():
        for net in model.members:
            if net.highway is None:
                raise ValueError("an anchored forecast needs the linear path (highway=True)")
            net.highway.weight.copy_(w)
            net.highway.bias.zero_()


def pinball_loss(q_pred: Tensor, y: Tensor, m: Tensor, levels: Tensor) -> Tensor:
    """Mean pinball (quantile) loss. q_pred (B, E, H, Q); y, m (B, H); levels (Q,)."""
    diff = y[:, None, :, None] - q_pred
    loss = torch.maximum(levels * diff, (levels - 1) * diff)
    w = m[:, None, :, None].expand_as(loss)
    return (loss * w).sum() / w.sum().clamp(min=1.0)


def forecast_loss(model: ForecastModel, b: dict[str, Tensor]) -> Tensor:
    """Pinball loss in scaled units, so every series weighs the same whatever its magnitude."""
    q, loc, scale = model(b)
    y_s = (b["y_hor"] - loc) / scale
    cfg = getattr(model, "module", model).cfg  # model may be DDP-wrapped
    levels = torch.tensor(cfg.quantiles, dtype=q.dtype, device=q.device)
    return pinball_loss(q, y_s, b["m_hor"], levels) * q.shape[1]  # sum over members: each gets a full gradient
