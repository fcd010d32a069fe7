"""A bounded pool of model processes (``worker.py``), so the event loop never waits for a model.

Each model process has one dispatcher thread here that takes jobs from a shared queue, writes
the request down the process's pipe and waits for the answer (blocked in ``select``/``read``,
which release the GIL: the event loop keeps running). A job past its time limit is answered 503
by the caller at once; its dispatcher gives the process ``GRACE_S`` more to stop by itself (long
loops check their ``Deadline``), then kills it and starts a new one. A process that dies is
replaced the same way. The dispatchers are daemon threads: exit never waits for them.

Admission is counted, not queued blindly: at most ``workers`` jobs run and ``queue`` wait;
``admit`` refuses the next one (-> 503). A job keeps its slot until its process is free again
(or replaced: the request is answered 503 at once, the slot waits for the new process), so the
pool never overcommits.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from rnnkit.errors import UserError
from rnnkit.serve.ipc import Deadline, read_frame, read_json, write_frame, write_json
from rnnkit.serve.limits import RequestError, ServeLimits

log = logging.getLogger("rnnkit.serve")
GRACE_S = 2.0  # a job past its limit may take this long to stop before its process is killed
START_S = 300.0  # loading the model in a new process (imports included) may take this long


class Saturated(Exception):
    """Every worker is busy and the queue is full."""


class ModelProcess:
    """One ``python -m rnnkit.serve.worker`` child holding a copy of the model."""

    def __init__(self, model_dir: str, limits: ServeLimits, threads: Optional[int]) -> None:
        self._start = {"model_dir": str(model_dir), "limits": asdict(limits), "threads": threads}
        self.proc: Optional[subprocess.Popen] = None
        self.hello: dict = {}

    def start(self) -> None:
        """Start the process and send it the model folder (``ready`` waits for it to load)."""
        root = str(Path(__file__).resolve().parents[2])  # the rnnkit this server runs, also in the child
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnkit.serve.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
        write_json(self.proc.stdin.fileno(), self._start)

    def ready(self) -> dict:
        """Wait for the loaded model's hello ({task, forecast_schema}); UserError if it did not load."""
        try:
            hello = read_json(self.proc.stdout.fileno(), time.monotonic() + START_S)
        except (EOFError, TimeoutError):
            self.stop()
            raise UserError(f"the model process did not start (exit status {self.proc.returncode}; "
                            f"see the messages above)") from None
        if "error" in hello:
            self.stop()
            raise UserError(hello["error"])
        self.hello = hello
        return hello

    def call(self, route: str, body: bytes, deadline: Deadline) -> tuple[dict, bytes]:
        """Send one request; (head, payload). TimeoutError past the deadline plus ``GRACE_S``,
        EOFError/BrokenPipeError when the process died."""
        write_json(self.proc.stdin.fileno(), {"route": route, "seconds": max(deadline.left(), 0.0)})
        write_frame(self.proc.stdin.fileno(), body)
        until = deadline.expires + GRACE_S
        return read_json(self.proc.stdout.fileno(), until), read_frame(self.proc.stdout.fileno(), until)

    def stop(self, wait_s: float = 0.0) -> None:
        """Close its pipe (it exits after its current request); kill it if it is still there after ``wait_s``."""
        if self.proc is None:
            return
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Ticket:
    """One admitted request's slot; released once, by the request or by its job."""

    def __init__(self, pool: "WorkerPool") -> None:
        self._pool, self._owned_by_job, self._released = pool, False, False

    def release(self) -> None:
        """Give the slot back unless a job now owns it (the job releases it when it ends)."""
        if not self._owned_by_job:
            self._free()

    def _free(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release()

    async def run(self, route: str, body: bytes, timeout_s: float) -> bytes:
        """The response JSON of ``route`` for ``body``; RequestError for a refused request,
        TimeoutError after ``timeout_s`` (measured from submission, queueing included)."""
        deadline = Deadline(timeout_s)
        future: Future = Future()
        self._owned_by_job = True  # from here on the dispatcher frees the slot, once its process is free
        self._pool._jobs.put((route, body, deadline, future, self))
        try:
            head, payload = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"request took longer than the limit of {timeout_s:g} s") from None
        if head["status"] != 200:
            raise RequestError(head["status"], head.get("error") or "refused", head.get("detail"))
        return payload


class WorkerPool:
    """``workers`` model processes fed from one queue; at most ``workers + queue`` admitted requests."""

    def __init__(self, model_dir: str, limits: ServeLimits) -> None:
        self.capacity = limits.workers + limits.queue
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._admitted = 0
        self._closing = False
        threads = max(1, (os.cpu_count() or 1) // limits.workers) if limits.workers > 1 else None
        self.processes = [ModelProcess(model_dir, limits, threads) for _ in range(limits.workers)]
        try:
            for p in self.processes:  # all load at once
                p.start()
            self.hello = [p.ready() for p in self.processes][0]
        except BaseException:
            self.close()
            raise
        for i, p in enumerate(self.processes):
            threading.Thread(target=self._dispatch, args=(p,), name=f"rnnkit-serve-{i}", daemon=True).start()

    @property
    def admitted(self) -> int:
        return self._admitted

    def admit(self) -> Ticket:
        with self._lock:
            if self._admitted >= self.capacity:
                raise Saturated(f"server busy: {self._admitted} requests running or queued; retry later")
            self._admitted += 1
        return Ticket(self)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def _dispatch(self, process: ModelProcess) -> None:
        while True:
            item: Optional[tuple] = self._jobs.get()
            if item is None:
                return
            route, body, deadline, future, ticket = item
            try:
                self._serve_one(process, route, body, deadline, future)
            finally:
                ticket._free()

    def _serve_one(self, process: ModelProcess, route: str, body: bytes, deadline: Deadline, future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        if deadline.expired():  # waited in the queue past its deadline: do not start it
            future.set_exception(TimeoutError("request timed out while queued"))
            return
        try:
            future.set_result(process.call(route, body, deadline))
        except Exception as exc:  # noqa: BLE001 - stuck, dead or garbled: replace the process
            why = "was stopped: it ran past the time limit" if isinstance(exc, TimeoutError) else "died"
            future.set_result(({"status": 503, "error": f"the model process {why}; retry later"}, b""))
            if not self._closing:
                log.warning("model process %s; starting a new one", why)
                self._restart(process)

    def _restart(self, process: ModelProcess) -> None:
        process.stop()
        while not self._closing:
            try:
                process.start()
                process.ready()
                return
            except Exception as exc:  # noqa: BLE001 - e.g. the model folder went away: keep trying, slowly
                log.error("cannot restart the model process: %s", exc)
                time.sleep(5.0)

    def close(self) -> None:
        """Stop the dispatchers and the model processes (a request still running gets 2 s)."""
        self._closing = True
        for _ in self.processes:
            self._jobs.put(None)
        for p in self.processes:
            p.stop(wait_s=2.0)
