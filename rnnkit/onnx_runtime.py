"""Run task models' predictions through onnxruntime (graphs written by ``rnnkit export``).

``with_onnx(task, onnx_path)`` returns a copy of a loaded task object (classifier, text,
forecast, speech) whose network is replaced by an onnxruntime session; everything else (data
reading, vocabularies, scaling, decoding, sampling) is the task's own Python code, so the
predictions are the PyTorch ones up to float rounding (tested within 1e-4)::

    clf = with_onnx(rnnkit.load("model/"), "model.onnx")   # rnnkit export --model model/ --out model.onnx
    clf.predict_proba(X)
    lm = with_onnx(rnnkit.load("lm/"), "lm_step.onnx")       # text needs the ``--graph step`` file
    lm.generate("The ", length=100, seed=0)

Which graph each task needs: classify, speech: ``sequence``; text: ``step`` (prompt and
generation run one token at a time with explicit state); forecast: ``sequence`` (the
network in scaled units; the per-window scaling and un-scaling stay in Python, as in
``ForecastModel.predict``). Sessions run on one CPU thread by default: batch-1 recurrent
steps are too small to split.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np
import torch
from torch import Tensor

from rnnkit.errors import UserError


class OnnxSession:
    """An onnxruntime CPU session: ``session(name=array, ...) -> {output name: array}``."""

    def __init__(self, path: Union[str, os.PathLike], threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise UserError(f"running ONNX models needs the [export] extra (onnxruntime): {exc}") from None
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: ONNX file not found (write it with `rnnkit export`)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise UserError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0]})") from None
        self.path = path
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        feed = {k: (v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v)) for k, v in inputs.items()}
        try:
            return dict(zip(self.output_names, self.session.run(self.output_names, feed)))
        except Exception as exc:  # onnxruntime's own types (InvalidArgument, Fail...): a graph of another model
            raise UserError(f"{self.path}: onnxruntime cannot run this graph on the model's inputs "
                            f"({_first_line(exc)}); export it from the same model folder with `rnnkit export`") from None

    def require_dims(self, kind: str, name: str, expected: dict[int, int], what: str) -> None:
        """Raise UserError when a static dimension of input/output ``name`` differs from ``expected``
        ({axis: size}); dynamic (named) dimensions are not checked."""
        nodes = self.session.get_inputs() if kind == "input" else self.session.get_outputs()
        shape = next((list(n.shape) for n in nodes if n.name == name), None)
        if shape is None:
            return
        for axis, size in expected.items():
            got = shape[axis] if -len(shape) <= axis < len(shape) else None
            if isinstance(got, int) and got != size:
                raise UserError(f"{self.path}: {kind} {name!r} has size {got} on axis {axis}, {what} needs {size}; "
                                f"the graph was exported from another model")

    def require_inputs(self, names: list[str], what: str) -> None:
        if self.input_names[: len(names)] != names:
            raise UserError(f"{self.path}: graph inputs {self.input_names} are not {what}'s {names}; "
                            f"export the model folder with `rnnkit export`" + (" --graph step" if "token" in names else ""))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


class OnnxModule:
    """Stands in for a task network at inference: positional tensors in the graph's input
    order -> torch tensor(s) in its output order. ``eval``/``to``/``parameters`` exist so the
    task's predict code runs unchanged."""

    def __init__(self, session: OnnxSession, cfg: Any = None) -> None:
        self.session, self.cfg, self.training = session, cfg, False

    def __call__(self, *inputs: Tensor) -> Union[Tensor, tuple[Tensor, ...]]:
        out = self.session(**dict(zip(self.session.input_names, inputs)))
        tensors = tuple(torch.from_numpy(out[n]) for n in self.session.output_names)
        return tensors[0] if len(tensors) == 1 else tensors

    def eval(self) -> "OnnxModule":
        return self

    def to(self, *args: Any, **kwargs: Any) -> "OnnxModule":
        return self

    def parameters(self) -> Iterator[Tensor]:
        yield torch.empty(0)  # callers read the device from the first parameter: CPU


class OnnxLanguageModel(OnnxModule):
    """``LanguageModel``'s inference interface over the exported ``step`` graph.

    ``step(ids (B,), state) -> logits (B, V), state``; ``__call__(ids (B, T), state)`` runs the
    step graph over the time axis (how a prompt is read) -> logits (B, T, V), state. State is a
    tensor (GRU, RNN, minGRU) or an (h, c) tuple (LSTM), each (num_layers, B, H), as in torch.
    """

    def __init__(self, session: OnnxSession, cfg: Any, state_sizes: tuple[int, ...], num_layers: int) -> None:
        super().__init__(session, cfg)
        self.state_sizes, self.num_layers = state_sizes, num_layers

    def _zeros(self, batch: int) -> tuple[Tensor, ...]:
        return tuple(torch.zeros(self.num_layers, batch, s) for s in self.state_sizes)

    def step(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        states = self._zeros(ids.shape[0]) if state is None else (state if isinstance(state, tuple) else (state,))
        logits, *new = OnnxModule.__call__(self, ids.to(torch.int64), *states)
        return logits, (tuple(new) if len(new) > 1 else new[0])

    def __call__(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:  # type: ignore[override]
        out = []
        for t in range(ids.shape[1]):
            logits, state = self.step(ids[:, t], state)
            out.append(logits)
        return torch.stack(out, dim=1), state


class OnnxForecastModel:
    """``ForecastModel.predict`` with the members' network in onnxruntime; the per-window
    scaling (``scale_inputs``) and the un-scaling, averaging and sorting stay in torch."""

    def __init__(self, session: OnnxSession, model: Any) -> None:
        self.session, self.model, self.cfg = session, model, model.cfg

    def eval(self) -> "OnnxForecastModel":
        return self

    @torch.no_grad()
    def predict(self, b: dict[str, Tensor]) -> Tensor:
        """Quantiles in data units, (B, H, Q), as ``ForecastModel.predict``."""
        y_s, x_s, f_s, loc, scale = self.model.scale_inputs(b)
        feeds = {"y_s": y_s, "m": b["m_ctx"], "x_s": x_s, "f_s": f_s}
        q = torch.from_numpy(self.session(**{n: feeds[n] for n in self.session.input_names})["q"]).mean(dim=1)
        q = q * scale.unsqueeze(-1) + loc.unsqueeze(-1)
        return q.sort(dim=-1).values


def with_onnx(task: Any, onnx_path: Union[str, os.PathLike], threads: int = 1) -> Any:
    """A copy of ``task`` (a loaded task object) whose network runs in onnxruntime; each task's
    ``onnx_network`` hook checks the graph and returns the stand-in for its network."""
    session = OnnxSession(onnx_path, threads)
    if not hasattr(task, "onnx_network"):
        raise UserError(f"no onnxruntime path for {type(task).__name__}")
    return task.with_network(task.onnx_network(session))


def load_onnx(model_dir: Union[str, os.PathLike], onnx_path: Union[str, os.PathLike], threads: int = 1) -> Any:
    """``rnnkit.load(model_dir)`` with its network running from ``onnx_path`` in onnxruntime."""
    import rnnkit

    return with_onnx(rnnkit.load(str(model_dir)), onnx_path, threads)


def predict_onnx(model_dir: Union[str, os.PathLike], onnx_path: Union[str, os.PathLike], X: Any,
                 **kwargs: Any) -> Any:
    """The task's ``predict(X, **kwargs)`` with its network in onnxruntime."""
    return load_onnx(model_dir, onnx_path).predict(X, **kwargs)


__all__ = ["OnnxSession", "OnnxModule", "OnnxLanguageModel", "OnnxForecastModel", "with_onnx", "load_onnx",
           "predict_onnx"]
