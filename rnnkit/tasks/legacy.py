"""The key map that keeps model folders of the first release (no ``format`` in config.json) loading.

First-release layouts, by task: forecast ``{net (hidden, layers), schema, season, train}``;
text ``{text: options, model: net}``; classify ``{net, options}`` with ``embed_dim``; speech
``{model (hidden, layers), fbank, speech: options}``. Each is rewritten to the one shape of
``rnnkit.tasks.base`` (``net``, ``options``; fitted state as extras) before anything is built.
"""
from __future__ import annotations

from typing import Any

from rnnkit.errors import UserError

RENAMES = {"hidden": "hidden_size", "layers": "num_layers", "embed_dim": "embed_size"}


def _renamed(d: Any, where: str) -> dict:
    if not isinstance(d, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(d).__name__}")
    return {RENAMES.get(k, k): v for k, v in d.items()}


def upgrade(config: dict, extras: dict, where: str, current: int) -> tuple[dict, dict]:
    """(config, extras) in layout ``current``; UserError on a folder newer than this rnnkit."""
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt > current or fmt < 2:
            raise UserError(f"{where}: config format {fmt!r} is not one this rnnkit reads (up to {current})")
        return config, extras
    task, extras = config.get("task"), dict(extras)
    try:
        if task == "forecast":
            net = _renamed(config["net"], where)
            train = config.get("train") or {}
            options = {k: net[k] for k in ("cell", "hidden_size", "num_layers", "dropout", "quantiles", "ensemble",
                                           "highway", "horizon") if k in net}
            options.update({k: v for k, v in train.items() if k in ("epochs", "steps_per_epoch", "batch_size", "lr",
                                                                     "seed", "season", "context")})
            extras["schema"] = {**config["schema"], "season": config.get("season", 1)}
        elif task == "text":
            net, options = config["model"], config["text"]
        elif task == "classify":
            net, options = _renamed(config["net"], where), _renamed(config.get("options", {}), where)
        elif task == "speech":
            net, options = _renamed(config["model"], where), _renamed(config["speech"], where)
            extras["fbank"] = config["fbank"]
        else:
            raise UserError(f"{where}: unknown task {task!r}")
    except (KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: incomplete {task} config ({type(exc).__name__}: {exc})") from None
    return {"task": task, "format": current, "net": net, "options": options}, extras
