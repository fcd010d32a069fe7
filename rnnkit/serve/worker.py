"""The model process behind ``rnnkit serve`` (``python -m rnnkit.serve.worker``): loads the model
once, then answers requests read from its stdin on its stdout, one at a time.

Why a process, not a thread of the server: parsing a 10 MB JSON body, building a 100,000-row
frame or decoding audio holds the GIL for tens of milliseconds at a stretch, and the event loop
waited for each of them (measured with worker threads: ``/health`` p99 52 ms during a maximal
forecast request, 109 ms during a 60 s transcription; bench/serve_abuse.py). In its own process
model work never delays the event loop, a request past its time limit is ended by killing the
process (the pool starts a new one), and a crash in model code leaves the server up.

Pipes carry frames (``ipc.py``): the server sends a start head ``{model_dir, limits, threads}``;
the worker answers ``{task, forecast_schema}`` (with the static columns, if any) or ``{error}``. Then per request the server sends
a head ``{route, seconds}`` and the raw body; the worker answers a head ``{status, error?,
detail?}`` and the response JSON (empty unless status is 200).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from rnnkit.errors import UserError
from rnnkit.serve.ipc import Deadline, read_frame, read_json, write_frame, write_json
from rnnkit.serve.limits import RequestError, ServeLimits

log = logging.getLogger("rnnkit.serve.worker")


def task_of(model: Any) -> str:
    """The model's task: its ``task`` attribute if it names one, else its class via ``rnnkit.TASKS``."""
    import rnnkit

    task = getattr(model, "task", None)
    if isinstance(task, str) and task in rnnkit.TASKS:
        return task
    for name, cls_name in rnnkit.TASKS.items():
        if type(model).__name__ == cls_name:
            return name
    raise UserError(f"cannot serve a {type(model).__name__}")


class ModelWorker:
    """The loaded model and its routes; ``handle`` turns one request into (head, payload)."""

    def __init__(self, model_dir: str, limits: ServeLimits) -> None:
        import rnnkit
        from rnnkit.serve.routes import routes_for

        self.model = rnnkit.load(model_dir)
        self.task = task_of(self.model)
        self.limits = limits
        self.schema = None
        if self.task == "forecast":  # the columns, whether predict refits ETS/Theta per series (costly), and
            # the static columns a request's "static" must have (None: the model takes none)
            enc = getattr(self.model, "static", None)
            self.schema = {**self.model.schema, "combine": getattr(self.model.config, "combine", None),
                           "static": {"numeric": enc.numeric, "categorical": enc.categorical} if enc else None}
        self.routes = {r.path: r for r in routes_for(self.task, limits, self.schema)}

    def hello(self) -> dict:
        return {"task": self.task, "forecast_schema": self.schema}

    def handle(self, path: str, body: bytes, seconds: float) -> tuple[dict, bytes]:
        from rnnkit.serve.routes import answer

        try:
            return {"status": 200}, answer(self.routes[path], self.model, body, self.limits, Deadline(seconds))
        except RequestError as exc:
            return {"status": exc.status, "error": exc.message, "detail": exc.detail}, b""
        except UserError as exc:  # input the model cannot use (unknown column, wrong feature count)
            return {"status": 400, "error": str(exc)}, b""
        except TimeoutError as exc:
            return {"status": 503, "error": str(exc)}, b""
        except MemoryError:
            return {"status": 503, "error": "not enough memory for this request; send less at once"}, b""
        except Exception:  # a bug: logged with its traceback, answered 500
            log.exception("error in %s", path)
            return {"status": 500, "error": "internal error (logged by the server)"}, b""


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    proto_in, proto_out = os.dup(0), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # a stray print goes to the server's log, not into the protocol
    logging.basicConfig(level=logging.INFO, format="rnnkit serve worker: %(message)s")
    start = read_json(proto_in)
    if start.get("threads"):
        import torch

        torch.set_num_threads(int(start["threads"]))
    try:
        worker = ModelWorker(start["model_dir"], ServeLimits(**start["limits"]))
    except UserError as exc:
        write_json(proto_out, {"error": str(exc)})
        return 2
    write_json(proto_out, worker.hello())
    while True:
        try:
            head = read_json(proto_in)
            body = read_frame(proto_in)
        except EOFError:  # the server closed the pipe: it is stopping
            return 0
        reply, payload = worker.handle(head["route"], body, float(head["seconds"]))
        write_json(proto_out, reply)
        write_frame(proto_out, payload)


if __name__ == "__main__":
    sys.exit(main())
