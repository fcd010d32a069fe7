"""ONNX export of recurrent layers and task models, checked against onnxruntime.

Two graphs per unidirectional model:

* ``"sequence"``: ``(x, lengths, *state0) -> (y, *state_n)`` with dynamic batch and time;
  ``lengths`` (int64, (batch,)) gives each sequence's real length (right padding), outputs
  past it are 0 and the final state is the state at the last real step. torch-backed
  LSTM/GRU/RNN layers become ONNX LSTM/GRU/RNN nodes whose ``sequence_lens`` input is wired
  to ``lengths`` (the exporter leaves it empty); minGRU/minLSTM become an ONNX Loop.
* ``"step"``: ``(x_t, *state) -> (y_t, *state')``, one streaming step with explicit state.

Task models join by defining ``onnx_specs(self) -> dict[str, ExportSpec]`` (graph name ->
spec) on its network; the task's ``onnx_specs`` hook returns them and ``export_model`` calls it.
Every task has one: classify (``sequence``: ids or features + lengths -> logits), text
(``sequence`` with state, and ``step``: token + state -> logits + state), forecast
(``sequence``: the ensemble in scaled units; scaling stays in Python), speech (``sequence``:
features + lengths -> log-probs + subsampled lengths, which drive the RNN nodes). Running
predictions from the exported files: ``rnnkit.onnx_runtime``. A "layer" model folder (``save_layer``) holds one
``make_layer`` layer, so a bare layer can go through ``rnnkit export`` as well.
Shapes: x (batch, time, I) if the layer is batch_first else (time, batch, I); state tensors
(num_layers * directions, batch, H).
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.errors import UserError
from rnnkit.io import atomic_path
from rnnkit.nn.layers import Recurrent, SequenceLayer, _TorchLayer
from rnnkit.nn.registry import make_layer

_RNN_OPS = {"LSTM", "GRU", "RNN"}


@dataclass
class ExportSpec:
    """What to export: a module whose ``forward(*inputs)`` returns a tensor or a tuple of them.

    ``check_inputs`` (other sizes than ``inputs``) are also run through onnxruntime to prove
    the dynamic axes. ``lengths_input`` names an int64 input (or an int64 value the graph
    computes, e.g. an output) to wire into the ``sequence_lens`` of every ONNX RNN node.
    """

    module: nn.Module
    inputs: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    check_inputs: Optional[tuple[Tensor, ...]] = None
    lengths_input: Optional[str] = None


def example_lengths(batch: int, time: int, generator: torch.Generator) -> Tensor:
    """Random lengths (batch,) int64 in [1, time], the first one full: a variable-length batch."""
    lengths = torch.randint(1, time + 1, (batch,), generator=generator)
    lengths[0] = time
    return lengths


# ----------------------------------------------------------------------------- layer graphs
class SequenceGraph(nn.Module):
    """Full-sequence forward of a layer with explicit lengths and state."""

    def __init__(self, layer: SequenceLayer):
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor, lengths: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        hx = state if len(state) > 1 else state[0]
        if isinstance(self.layer, _TorchLayer) and torch.onnx.is_in_onnx_export():
            # torch's own forward: exported as ONNX RNN nodes; lengths are wired in afterwards
            y, out = self.layer._torch_cls.forward(self.layer, x, hx)
        else:
            y, out = self.layer._run(x, hx, lengths)
        return (y, *(out if isinstance(out, tuple) else (out,)))


class StepGraph(nn.Module):
    """One streaming step through plain tensor ops (no fused single-step kernels)."""

    def __init__(self, layer: SequenceLayer):
        super().__init__()
        self.layer = layer

    def forward(self, x_t: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        # torch-backed layers: the base version (projection + cell maths), not the fused
        # single-step kernels, which have no ONNX form
        layer = self.layer
        steps = SequenceLayer._cell_steps(layer) if isinstance(layer, _TorchLayer) else layer._cell_steps()
        new: list[list[Tensor]] = [[] for _ in state]
        inp = x_t
        for i, step in enumerate(steps):
            inp, s = step(inp, tuple(p[i] for p in state))
            for j, sj in enumerate(s):
                new[j].append(sj)
        return (inp, *(torch.stack(p) for p in new))


def state_names(layer: SequenceLayer, suffix: str) -> list[str]:
    """Graph names of the state tensors: h (and c for LSTM) + suffix, e.g. ["h0", "c0"]."""
    return ["h" + suffix, "c" + suffix][: len(layer.state_sizes())]


def layer_specs(layer: SequenceLayer, batch: int = 2, time: int = 5) -> dict[str, ExportSpec]:
    """The ``sequence`` (not for generic ``Recurrent`` cells) and ``step`` (unidirectional) specs."""
    layer = layer.eval()
    D, n = layer.directions, layer.num_layers * layer.directions
    specs: dict[str, ExportSpec] = {}
    g = torch.Generator().manual_seed(0)

    def states(b: int) -> tuple[Tensor, ...]:
        return tuple(torch.randn(n, b, s, generator=g) * 0.5 for s in layer.state_sizes())

    def seq_inputs(b: int, t: int) -> tuple[Tensor, ...]:
        shape = (b, t, layer.input_size) if layer.batch_first else (t, b, layer.input_size)
        lengths = torch.full((b,), t, dtype=torch.int64)
        lengths[-1] = max(1, t // 2)  # one short sequence: exercises sequence_lens
        return (torch.randn(*shape, generator=g), lengths, *states(b))

    bt = {0: "batch", 1: "time"} if layer.batch_first else {0: "time", 1: "batch"}
    s0, sn = state_names(layer, "0"), state_names(layer, "n")
    if not isinstance(layer, Recurrent):
        dyn = {"x": bt, "y": bt, "lengths": {0: "batch"}, **{k: {1: "batch"} for k in s0 + sn}}
        specs["sequence"] = ExportSpec(SequenceGraph(layer), seq_inputs(batch, time), ["x", "lengths", *s0],
                                       ["y", *sn], dyn, seq_inputs(batch + 1, time + 3), "lengths")
    if D == 1:
        names_in, names_out = state_names(layer, ""), state_names(layer, "_out")
        dyn = {k: {0: "batch"} for k in ("x_t", "y_t")} | {k: {1: "batch"} for k in names_in + names_out}

        def step_inputs(b: int) -> tuple[Tensor, ...]:
            return (torch.randn(b, layer.input_size, generator=g), *states(b))

        specs["step"] = ExportSpec(StepGraph(layer), step_inputs(batch), ["x_t", *names_in], ["y_t", *names_out],
                                   dyn, step_inputs(batch + 2))
    return specs


# ----------------------------------------------------------------------------- export + check
def _wire_lengths(model: Any, lengths_name: str) -> None:
    """Feed ``lengths`` (cast to int32) into ``sequence_lens`` (input 4) of every RNN node."""
    from onnx import helper, TensorProto

    graph = model.graph
    # ``lengths_name`` is a graph input, or a value computed inside the graph (e.g. the
    # subsampled lengths of a speech model): then the Cast goes right after its producer
    producer = next((k for k, n in enumerate(graph.node) if lengths_name in n.output), None)
    if producer is None and lengths_name not in [i.name for i in graph.input]:  # the exporter drops unused inputs
        graph.input.append(helper.make_tensor_value_info(lengths_name, TensorProto.INT64, ["batch"]))
    cast = lengths_name + "_int32"
    nodes = [n for n in graph.node if n.op_type in _RNN_OPS]
    for node in nodes:
        while len(node.input) < 5:
            node.input.append("")
        node.input[4] = cast
    if nodes:
        at = 0 if producer is None else producer + 1
        graph.node.insert(at, helper.make_node("Cast", [lengths_name], [cast], to=TensorProto.INT32))


@contextlib.contextmanager
def _onnx_rnn_paths(module: nn.Module, lengths_input: Optional[str]):
    """While exporting, run torch-backed layers inside ``module`` through torch's own forward
    (ONNX RNN nodes) even when given lengths: ``_wire_lengths`` then makes ONNX honour them.
    This is how a task network that passes its ``lengths`` input to its layer exports."""
    patched = []
    if lengths_input:
        for m in module.modules():
            if isinstance(m, _TorchLayer):
                m._run = (lambda x, hx, lengths, m=m: m._torch_cls.forward(m, x, hx))  # type: ignore[method-assign]
                patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m._run


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(path: os.PathLike, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run an exported graph with onnxruntime: input name -> array/tensor; output name -> array."""
    sess = _session(Path(path))
    feed = {k: (v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v)) for k, v in inputs.items()}
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feed)))


def export(spec: ExportSpec, path: os.PathLike, opset: int = 17, atol: float = 1e-4) -> dict[str, float]:
    """Write ``spec`` as ONNX to ``path`` (atomically) and check onnxruntime against PyTorch.

    Returns the largest absolute difference per output over the example and check inputs;
    raises RuntimeError (and writes nothing) if any exceeds ``atol``.
    """
    import onnx

    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"--out {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"--out {path}: is a folder, expected a file name")
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"--out {path}: cannot write in {path.parent}")
    module = spec.module.eval()
    with atomic_path(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad(), _onnx_rnn_paths(module, spec.lengths_input):
            warnings.simplefilter("ignore")  # the TorchScript exporter warns about tracing on every call
            torch.onnx.export(module, spec.inputs, str(tmp), dynamo=False, input_names=spec.input_names,
                              output_names=spec.output_names, dynamic_axes=spec.dynamic_axes, opset_version=opset)
        model = onnx.load(str(tmp))
        if spec.lengths_input:
            _wire_lengths(model, spec.lengths_input)
        _order_inputs(model, spec.input_names)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        diffs = _check(spec, tmp)
        worst = max(diffs.values())
        if not worst <= atol:
            raise RuntimeError(f"onnxruntime differs from PyTorch by {worst:.3g} (> {atol}): {diffs}")
    return diffs


def _order_inputs(model: Any, names: Sequence[str]) -> None:
    """Graph inputs in the spec's order (an input re-added by ``_wire_lengths`` goes last)."""
    by_name = {i.name: i for i in model.graph.input}
    ordered = [by_name[n] for n in names if n in by_name] + [i for i in model.graph.input if i.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(ordered)


def _check(spec: ExportSpec, path: Path) -> dict[str, float]:
    diffs = {n: 0.0 for n in spec.output_names}
    for inputs in [spec.inputs] + ([spec.check_inputs] if spec.check_inputs is not None else []):
        with torch.no_grad():
            ref = spec.module(*inputs)
        ref = (ref,) if isinstance(ref, Tensor) else tuple(ref)
        got = run_onnx(path, dict(zip(spec.input_names, inputs)))
        for name, r in zip(spec.output_names, ref):
            diffs[name] = max(diffs[name], float(np.abs(got[name] - r.numpy()).max()))
    return diffs


# ----------------------------------------------------------------------------- model folders
def save_layer(dir: os.PathLike, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
               bidirectional: bool = False, layer: Optional[nn.Module] = None) -> nn.Module:
    """Save a ``make_layer`` layer (batch_first) as a model folder with ``"task": "layer"``."""
    from rnnkit.train.checkpoint import save_model

    cfg = {"task": "layer", "cell": cell, "input_size": input_size, "hidden_size": hidden_size,
           "num_layers": num_layers, "bidirectional": bidirectional}
    layer = layer if layer is not None else make_layer(cell, input_size, hidden_size, num_layers=num_layers,
                                                       bidirectional=bidirectional, batch_first=True)
    save_model(dir, layer, cfg)
    return layer


def load_layer(dir: os.PathLike) -> SequenceLayer:
    from rnnkit.train.checkpoint import load_model, load_state_into

    cfg, state, _ = load_model(dir)
    try:
        layer = make_layer(cfg["cell"], int(cfg["input_size"]), int(cfg["hidden_size"]),
                           num_layers=int(cfg.get("num_layers", 1)), bidirectional=bool(cfg.get("bidirectional", False)),
                           batch_first=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{dir}/config.json: bad layer config ({exc})") from None
    load_state_into(layer, state)
    return layer


def model_specs(model_dir: os.PathLike) -> dict[str, ExportSpec]:
    """Export specs of any model folder: a saved layer, or a task model with ``onnx_specs``."""
    from rnnkit.train.checkpoint import read_json

    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"--model {model_dir}: not an rnnkit model folder (no config.json)")
    cfg = read_json(cfg_path, "config.json")
    if isinstance(cfg, dict) and cfg.get("task") == "layer":
        return layer_specs(load_layer(model_dir))
    import rnnkit

    return rnnkit.load(str(model_dir)).onnx_specs()


def export_model(model_dir: os.PathLike, out: os.PathLike, graph: str = "sequence", atol: float = 1e-4) -> dict[str, float]:
    """Export one graph of a model folder to ``out``; returns the onnxruntime-vs-PyTorch differences."""
    specs = model_specs(model_dir)
    if graph not in specs:
        raise UserError(f"--graph {graph}: this model has {', '.join(specs)}")
    return export(specs[graph], out, atol=atol)
