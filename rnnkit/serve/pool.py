"""A bounded pool of worker threads for model work, so the event loop never blocks.

Why threads (not processes): one copy of the model, and torch releases the GIL inside its
kernels. Why our own daemon threads (not ``ThreadPoolExecutor``): the executor's threads are
joined at interpreter exit, so one long generation would keep a stopped server alive.

Admission is counted, not queued blindly: at most ``workers`` jobs run and ``queue`` wait;
``admit`` refuses the next one (-> 503). A job that outlives its deadline is answered 503 by
the caller but keeps its slot until the thread really finishes, so the pool never overcommits.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Optional


class Saturated(Exception):
    """Every worker is busy and the queue is full."""


class Deadline:
    """Wall-clock budget of one job; long loops call ``check()`` between steps to stop early."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() >= self.expires

    def check(self) -> None:
        if self.expired():
            raise TimeoutError(f"request took longer than the limit of {self.seconds:g} s")


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

    async def run(self, fn: Callable[[Deadline], Any], timeout_s: float) -> Any:
        """Run ``fn(deadline)`` on a worker thread; TimeoutError after ``timeout_s`` (measured
        from submission, queueing included)."""
        deadline = Deadline(timeout_s)
        future: Future = Future()
        self._owned_by_job = True
        future.add_done_callback(lambda _: self._free())
        self._pool._jobs.put((fn, deadline, future))
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"request took longer than the limit of {timeout_s:g} s") from None


class WorkerPool:
    """``workers`` daemon threads fed from one queue; at most ``workers + queue`` admitted requests."""

    def __init__(self, workers: int, queue_limit: int) -> None:
        self.capacity = workers + queue_limit
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._admitted = 0
        self._threads = [threading.Thread(target=self._work, name=f"rnnkit-serve-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

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

    def _work(self) -> None:
        while True:
            item: Optional[tuple] = self._jobs.get()
            if item is None:
                return
            fn, deadline, future = item
            if not future.set_running_or_notify_cancel():
                continue
            if deadline.expired():  # waited in the queue past its deadline: do not start it
                future.set_exception(TimeoutError("request timed out while queued"))
                continue
            try:
                future.set_result(fn(deadline))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                future.set_exception(exc)

    def close(self) -> None:
        """Stop the threads after the jobs already queued (they are daemons: exit never waits)."""
        for _ in self._threads:
            self._jobs.put(None)
