"""Keras 3 interop: build an rnnkit model from a Keras model or ``.keras`` file.

``from_keras`` turns a chain of Keras layers (``SimpleRNN``, ``LSTM``, ``GRU`` with either
``reset_after`` setting, ``Bidirectional``, ``Dense``, ``Activation``, ``Dropout``) into a
``torch.nn.Sequential`` of rnnkit layers holding the same weights, so the imported model
gives Keras's outputs. Input and output layout stay Keras's: ``x: (batch, time, features)``.

Weight mapping (Keras -> torch names used by rnnkit/torch.nn):
- kernel ``(I, G*H)`` -> ``weight_ih (G*H, I)``; recurrent_kernel ``(H, G*H)`` -> ``weight_hh (G*H, H)``.
- LSTM gate order is the same in both (Keras i, f, c, o = torch i, f, g, o); GRU gates are
  z, r, h in Keras and r, z, n in torch, so the blocks are reordered.
- LSTM / SimpleRNN have one bias: ``bias_ih = bias``, ``bias_hh = 0``. GRU ``reset_after=True``
  has a ``(2, 3H)`` bias: row 0 is the input bias, row 1 the recurrent bias (applied inside
  ``r * (W_hn h + b_hn)``, exactly torch's GRU). ``reset_after=False`` applies the reset gate
  before the recurrent matmul, ``n = tanh(W_in x + b + W_hn (r * h))``: torch has no such
  kernel, so it runs as ``KerasGRUCell`` through ``rnnkit.nn.Recurrent``.

Dropout inside recurrent layers (``dropout``, ``recurrent_dropout``) only acts in training
and is not carried over; ``stateful`` state is not carried between calls (use ``step``).
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import UserError
from rnnkit.nn.keras_cells import KerasGRUCell
from rnnkit.nn.layers import GRU, LSTM, RNN, Recurrent

__all__ = ["from_keras", "to_keras", "KerasGRUCell"]


# =============================================================================== activations
def _leaky_relu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)  # Keras 3 default negative_slope


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,  # Keras 3 default approximate=False = torch's exact GELU
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "exponential": torch.exp,
    "leaky_relu": _leaky_relu,
    "hard_sigmoid": F.hardsigmoid,  # Keras 3: relu6(x + 3) / 6
    "mish": F.mish,
}


class Activation(nn.Module):
    """A named elementwise activation (last-axis softmax), as Keras's ``Activation`` layer."""

    def __init__(self, name: str):
        super().__init__()
        if name not in _ACTIVATIONS:
            raise UserError(f"Keras activation {name!r} is not supported; supported: {', '.join(sorted(_ACTIVATIONS))}")
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return _ACTIVATIONS[self.name](x)

    def extra_repr(self) -> str:
        return self.name


class BidirectionalMerge(nn.Module):
    """Merge the forward and backward halves of a bidirectional output (last axis) like
    Keras ``merge_mode`` ``sum``/``mul``/``ave`` (``concat`` needs no module)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, y: Tensor) -> Tensor:
        f, b = y.chunk(2, dim=-1)
        return {"sum": f + b, "mul": f * b, "ave": (f + b) / 2}[self.mode]

    def extra_repr(self) -> str:
        return self.mode


# =============================================================================== weights
def _t(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _zrh_to_rzn(a: np.ndarray) -> np.ndarray:
    """Reorder Keras GRU gate blocks (z, r, h) along the last axis to torch's (r, z, n)."""
    z, r, h = np.split(a, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _torch_weights(kind: str, cfg: dict, weights: list[np.ndarray]) -> dict[str, Tensor]:
    """Keras weight list of one recurrent layer -> {weight_ih, weight_hh, bias_ih, bias_hh}."""
    kernel, rec = weights[0], weights[1]
    bias = weights[2] if cfg.get("use_bias", True) else None
    if kind == "GRU":
        kernel, rec = _zrh_to_rzn(kernel), _zrh_to_rzn(rec)
        bias = None if bias is None else _zrh_to_rzn(bias)
    out = {"weight_ih": _t(kernel.T), "weight_hh": _t(rec.T)}
    if bias is not None:
        if bias.ndim == 2:  # GRU reset_after: (2, 3H) = input bias, recurrent bias
            out["bias_ih"], out["bias_hh"] = _t(bias[0]), _t(bias[1])
        else:
            out["bias_ih"], out["bias_hh"] = _t(bias), torch.zeros(bias.shape[-1])
    return out


# =============================================================================== layers
_RNN_KINDS = ("SimpleRNN", "LSTM", "GRU")


def _check_rnn_config(kind: str, cfg: dict, name: str) -> None:
    if cfg.get("return_state"):
        raise UserError(f"Keras layer {name!r}: return_state=True is not supported by from_keras (the model must be a chain of single tensors)")
    if kind == "SimpleRNN":
        if cfg.get("activation") not in ("tanh", "relu"):
            raise UserError(f"Keras layer {name!r}: SimpleRNN activation must be 'tanh' or 'relu', got {cfg.get('activation')!r}")
        return
    if cfg.get("activation") != "tanh" or cfg.get("recurrent_activation") != "sigmoid":
        raise UserError(
            f"Keras layer {name!r}: {kind} needs activation='tanh', recurrent_activation='sigmoid' "
            f"(got {cfg.get('activation')!r}, {cfg.get('recurrent_activation')!r})")


def _recurrent_module(kind: str, cfg: dict, input_size: int, bidirectional: bool, go_backwards: bool,
                      return_sequences: bool) -> nn.Module:
    H, bias = int(cfg["units"]), bool(cfg.get("use_bias", True))
    common = dict(batch_first=True, bidirectional=bidirectional, return_sequences=return_sequences,
                  return_state=False, go_backwards=go_backwards)
    if kind == "SimpleRNN":
        return RNN(input_size, H, nonlinearity=cfg["activation"], bias=bias, **common)
    if kind == "LSTM":
        return LSTM(input_size, H, bias=bias, **common)
    if cfg.get("reset_after", True):
        return GRU(input_size, H, bias=bias, **common)
    return Recurrent(lambda i: KerasGRUCell(i, H, bias=bias), input_size=input_size, **common)


def _load_weights(module: nn.Module, per_direction: list[dict[str, Tensor]]) -> None:
    """Copy torch-named weights of each direction into a fused layer or a Recurrent."""
    with torch.no_grad():
        for d, weights in enumerate(per_direction):
            for name, value in weights.items():
                if isinstance(module, Recurrent):
                    target = getattr(module.cells[d], name)
                else:
                    target = getattr(module, f"{name}_l0{'_reverse' if d else ''}")
                if target is None:
                    continue
                if tuple(target.shape) != tuple(value.shape):
                    raise UserError(f"Keras weight {name} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
                target.copy_(value)


def _convert_rnn(layer: Any, kind: str, input_size: int) -> nn.Module:
    cfg = layer.get_config()
    _check_rnn_config(kind, cfg, layer.name)
    m = _recurrent_module(kind, cfg, input_size, False, bool(cfg.get("go_backwards")), bool(cfg.get("return_sequences")))
    _load_weights(m, [_torch_weights(kind, cfg, layer.get_weights())])
    return m


def _convert_bidirectional(layer: Any, input_size: int) -> list[nn.Module]:
    fwd, bwd = layer.forward_layer, layer.backward_layer
    kind = type(fwd).__name__
    if kind not in _RNN_KINDS or type(bwd).__name__ != kind:
        raise UserError(f"Keras layer {layer.name!r}: Bidirectional must wrap SimpleRNN, LSTM or GRU in both directions")
    fcfg, bcfg = fwd.get_config(), bwd.get_config()
    for c, n in ((fcfg, fwd.name), (bcfg, bwd.name)):
        _check_rnn_config(kind, c, n)
    same = ("units", "activation", "recurrent_activation", "use_bias", "reset_after", "return_sequences")
    if any(fcfg.get(k) != bcfg.get(k) for k in same) or fcfg.get("go_backwards") or not bcfg.get("go_backwards"):
        raise UserError(f"Keras layer {layer.name!r}: forward and backward layers must match, with only the backward one going backwards")
    merge = layer.get_config().get("merge_mode", "concat")
    if merge not in ("concat", "sum", "mul", "ave"):
        raise UserError(f"Keras layer {layer.name!r}: merge_mode={merge!r} is not supported (use concat, sum, mul or ave)")
    m = _recurrent_module(kind, fcfg, input_size, True, False, bool(fcfg.get("return_sequences")))
    _load_weights(m, [_torch_weights(kind, fcfg, fwd.get_weights()), _torch_weights(kind, bcfg, bwd.get_weights())])
    return [m] if merge == "concat" else [m, BidirectionalMerge(merge)]


def _convert_dense(layer: Any) -> list[nn.Module]:
    cfg = layer.get_config()
    weights = layer.get_weights()
    lin = nn.Linear(weights[0].shape[0], weights[0].shape[1], bias=bool(cfg.get("use_bias", True)))
    with torch.no_grad():
        lin.weight.copy_(_t(weights[0].T))
        if lin.bias is not None:
            lin.bias.copy_(_t(weights[1]))
    act = cfg.get("activation", "linear")
    return [lin] if act == "linear" else [lin, Activation(act)]


# =============================================================================== model walk
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as exc:
        raise UserError("Keras import needs keras 3: pip install 'rnnkit[keras]'") from exc
    return keras


def _chain(model: Any, keras: Any) -> list[Any]:
    """The model's layers in order, checking that each feeds the next (no branches)."""
    layers: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # nested Sequential / functional block
            layers += _chain(layer, keras)
        elif type(layer).__name__ != "InputLayer":
            layers.append(layer)
    if not isinstance(model, keras.Sequential):
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise UserError("from_keras supports models with one input and one output")
        prev = model.inputs[0]
        for layer in model.layers:
            if type(layer).__name__ == "InputLayer":
                continue
            try:
                ok = layer.input is prev
            except (AttributeError, ValueError):
                ok = False
            if not ok:
                raise UserError(f"Keras layer {layer.name!r} does not read the previous layer's output: "
                                "from_keras supports chains of layers only")
            prev = layer.output
    return layers


def _module_name(name: str, used: set[str]) -> str:
    base = re.sub(r"\W", "_", name) or "layer"
    out, k = base, 1
    while out in used:
        k += 1
        out = f"{base}_{k}"
    used.add(out)
    return out


def from_keras(model_or_path: Union[str, os.PathLike, Any]) -> nn.Sequential:
    """Build an rnnkit model from a Keras 3 model (``Sequential`` or a functional chain) or a
    ``.keras`` file. Returns ``torch.nn.Sequential`` in eval mode, float32.

    Input ``x: (batch, time, features)`` (Keras layout) -> what the Keras model returns.
    Raises ``UserError`` for a missing file or a layer/option rnnkit cannot reproduce.
    """
    keras = _keras()
    model = model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if not path.is_file():
            raise UserError(f"Keras model file not found: {path}")
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # keras raises many types for unreadable files
            raise UserError(f"cannot read Keras model {path}: {exc}") from exc
    if not isinstance(model, keras.Model):
        raise UserError(f"from_keras expects a Keras model or a .keras file, got {type(model).__name__}")

    modules: "OrderedDict[str, nn.Module]" = OrderedDict()
    used: set[str] = set()
    for layer in _chain(model, keras):
        kind = type(layer).__name__
        if kind in _RNN_KINDS:
            new = [_convert_rnn(layer, kind, layer.get_weights()[0].shape[0])]
        elif kind == "Bidirectional":
            new = _convert_bidirectional(layer, layer.forward_layer.get_weights()[0].shape[0])
        elif kind == "Dense":
            new = _convert_dense(layer)
        elif kind == "Activation":
            new = [Activation(layer.get_config()["activation"])]
        elif kind == "Dropout":
            new = [nn.Dropout(float(layer.get_config()["rate"]))]
        else:
            raise UserError(f"Keras layer {layer.name!r} of type {kind} is not supported by from_keras "
                            "(supported: SimpleRNN, LSTM, GRU, Bidirectional, Dense, Activation, Dropout)")
        for i, m in enumerate(new):
            modules[_module_name(layer.name if i == 0 else f"{layer.name}_{type(m).__name__.lower()}", used)] = m
    return nn.Sequential(modules).float().eval()


# =============================================================================== export
def _keras_weights(kind: str, m: nn.Module, layer: int, d: int) -> list[np.ndarray]:
    """torch-named weights of one (layer, direction) -> Keras [kernel, recurrent_kernel, (bias)]."""
    if isinstance(m, Recurrent):
        get = lambda n: getattr(m.cells[layer * m.directions + d], n)  # noqa: E731
    else:
        get = lambda n: getattr(m, f"{n}_l{layer}{'_reverse' if d else ''}", None)  # noqa: E731
    np_ = lambda t: t.detach().cpu().float().numpy()  # noqa: E731
    kernel, rec = np_(get("weight_ih")).T, np_(get("weight_hh")).T
    b_ih, b_hh = get("bias_ih"), get("bias_hh")
    if kind == "GRU":  # swapping the first two gate blocks maps r,z,n <-> z,r,h both ways
        kernel, rec = _zrh_to_rzn(kernel), _zrh_to_rzn(rec)
    if b_ih is None:
        return [kernel, rec]
    if kind == "GRU" and not isinstance(m, Recurrent):  # reset_after: (2, 3H) input and recurrent bias
        return [kernel, rec, _zrh_to_rzn(np.stack([np_(b_ih), np_(b_hh)]))]
    # one Keras bias: the recurrent bias adds outside any gate product in these cells, so sum
    bias = np_(b_ih) + np_(b_hh)
    return [kernel, rec, _zrh_to_rzn(bias) if kind == "GRU" else bias]


def _export_recurrent(m: nn.Module, merge: str, keras: Any) -> list[Any]:
    if isinstance(m, Recurrent):
        if not all(isinstance(c, KerasGRUCell) for c in m.cells):
            raise UserError("to_keras: Recurrent layers export only with KerasGRUCell cells")
        kind, units, kw = "GRU", m.cells[0].hidden_size, {"reset_after": False, "use_bias": m.cells[0].bias_ih is not None}
    else:
        kind = "LSTM" if isinstance(m, LSTM) else "GRU" if isinstance(m, GRU) else "SimpleRNN"
        units = m.hidden_size
        kw = {"use_bias": m.bias}
        if isinstance(m, RNN):
            kw["activation"] = m.nonlinearity
        if isinstance(m, LSTM) and m.proj_size:
            raise UserError("to_keras: Keras LSTM has no proj_size")
    if not m.batch_first:
        raise UserError("to_keras: recurrent layers must be batch_first=True (Keras layout)")
    if m.go_backwards and m.directions == 2:
        raise UserError("to_keras: go_backwards with bidirectional has no Keras equivalent")
    cls = getattr(keras.layers, kind)
    out = []
    for layer in range(m.num_layers):
        last = layer == m.num_layers - 1
        rs = m.return_sequences if last else True
        if m.directions == 1:
            k = cls(units, return_sequences=rs, go_backwards=bool(m.go_backwards and layer == 0), **kw)
            weights = _keras_weights(kind, m, layer, 0)
        else:
            k = keras.layers.Bidirectional(cls(units, return_sequences=rs, **kw), merge_mode=merge if last else "concat")
            weights = _keras_weights(kind, m, layer, 0) + _keras_weights(kind, m, layer, 1)
        out.append((k, weights))
    return out


def to_keras(module: nn.Module, input_size: Optional[int] = None) -> Any:
    """Build a Keras 3 ``Sequential`` equal to an rnnkit model: a ``from_keras`` result, a
    ``torch.nn.Sequential`` of rnnkit recurrent layers (``return_state=False``), ``Linear``,
    ``Dropout`` and activations, or one rnnkit recurrent layer (its output ``y`` only).

    Input ``(batch, time, input_size)``; ``input_size`` defaults to the first layer's.
    """
    keras = _keras()
    mods = list(module) if isinstance(module, nn.Sequential) else [module]
    if input_size is None:
        first = mods[0]
        input_size = first.input_size if hasattr(first, "input_size") else getattr(first, "in_features", None)
    pairs: list[tuple[Any, list[np.ndarray]]] = []
    for i, m in enumerate(mods):
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, (LSTM, GRU, RNN, Recurrent)):
            merge = nxt.mode if isinstance(nxt, BidirectionalMerge) else "concat"
            pairs += _export_recurrent(m, merge, keras)
        elif isinstance(m, BidirectionalMerge):
            continue  # folded into the Bidirectional before it
        elif isinstance(m, nn.Linear):
            w = [m.weight.detach().cpu().float().numpy().T]
            w += [m.bias.detach().cpu().float().numpy()] if m.bias is not None else []
            pairs.append((keras.layers.Dense(m.out_features, use_bias=m.bias is not None), w))
        elif isinstance(m, Activation):
            pairs.append((keras.layers.Activation(m.name), []))
        elif isinstance(m, nn.Dropout):
            pairs.append((keras.layers.Dropout(m.p), []))
        else:
            raise UserError(f"to_keras: {type(m).__name__} has no Keras equivalent here")
    model = keras.Sequential([keras.Input((None, input_size))] + [k for k, _ in pairs])
    for k, w in pairs:
        if w:
            k.set_weights(w)
    return model
