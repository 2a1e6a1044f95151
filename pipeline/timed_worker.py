"""One worker, one partition at a time, under a time limit: the executor's unit of work.

With a limit, the worker is built and called on one dedicated daemon thread (the same
thread every time: some workers hold thread-bound resources, e.g. a Playwright browser),
and the caller waits at most ``timeout_s`` per call. A call that overruns cannot be
interrupted from Python, so the worker is then marked ``stuck``: its owner must stop
using it (a Ray actor exits so Ray restarts it clean; in-process, a new worker is built
and the old daemon thread is left behind). Every call returns an ``Outcome`` rather than
raising, so the executor can retry or give up per partition.
"""
from __future__ import annotations

import queue
import threading
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

OK, TIMEOUT, ERROR, LOST = "ok", "timeout", "error", "worker_lost"


@dataclass
class Outcome:
    index: int  # position of the item in the job's list
    status: str  # OK | TIMEOUT | ERROR | LOST
    result: Any = None
    detail: str = ""  # why it failed: the limit, a traceback, a lost worker


class _CallThread:
    """A daemon thread that runs submitted calls in order (daemon: a stuck call cannot
    keep the process alive at exit, unlike a ThreadPoolExecutor worker)."""

    def __init__(self):
        self._calls: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, name="tessera-partition", daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn, args, fut = self._calls.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self._calls.put((fn, args, fut))
        return fut


class TimedWorker:
    def __init__(self, worker_cls: type, worker_kwargs: dict, timeout_s: float | None = None):
        self.timeout_s = timeout_s
        self.stuck = False
        self._thread = _CallThread() if timeout_s else None
        if self._thread is None:
            self.worker = worker_cls(**worker_kwargs)
        else:  # construction is not timed: loading a model may legitimately take long
            self.worker = self._thread.submit(lambda: worker_cls(**worker_kwargs)).result()

    def __call__(self, index: int, item: Any) -> Outcome:
        if self.stuck:
            raise RuntimeError("this worker abandoned a call that is still running; build a new one")
        if self._thread is None:
            try:
                return Outcome(index, OK, self.worker(item))
            except Exception:  # noqa: BLE001 - the executor decides: retry, then fail the job
                return Outcome(index, ERROR, detail=traceback.format_exc(limit=8))
        fut = self._thread.submit(self.worker, item)
        try:
            return Outcome(index, OK, fut.result(timeout=self.timeout_s))
        except Exception:  # noqa: BLE001
            if fut.done():  # the worker raised (maybe a TimeoutError of its own)
                return Outcome(index, ERROR, detail=traceback.format_exc(limit=8))
            self.stuck = True
            return Outcome(index, TIMEOUT, detail=f"still running after the {self.timeout_s:g}s partition time limit")
