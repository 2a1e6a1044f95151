"""Run async fetch work from a plain generator, overlapping network and CPU.

A source's ``read`` is a synchronous generator: the ingest worker decodes, hashes
and tiles each input between two ``next`` calls. If fetching happened in those
gaps the CPU would idle on the network and the network on the CPU. So fetching
runs on an asyncio loop in a background thread and runs ahead while the worker
computes; results cross over through a queue in completion order.

The loop, its thread and the HTTP sessions live as long as the worker process (one
``_FetchLoop`` per process, one ``Fetcher`` per distinct ``FetchOptions``): a Ray
worker reads many partitions, and starting a thread, a loop and a session with an
empty connection pool for each one left the CPU idle at every partition start.

Memory stays bounded: at most ``window`` items are in flight or waiting to be
consumed (a slot frees only when the consumer takes a result), so a slow consumer
throttles fetching instead of piling up bodies. With ``buffer_bytes`` the bound is on
bytes instead: ``window`` only caps the requests in flight, and new ones start while
the finished results waiting for the consumer weigh less than ``buffer_bytes`` (by
``size``). A web URL partition is then fetched through early, so its 5xx URLs are
found at the start and their retries (seconds of backoff) run while the worker
computes, instead of holding the partition open at its end.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from pipeline.sources.fetch import Fetcher, FetchOptions

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class _Error:
    def __init__(self, exc: BaseException):
        self.exc = exc


class _FetchLoop:
    """An event loop in a daemon thread, with the process's open ``Fetcher`` sessions."""

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.fetchers: dict[str, Fetcher] = {}
        self.thread = threading.Thread(target=self.loop.run_forever, name="tessera-fetch", daemon=True)
        self.thread.start()

    async def fetcher(self, options: FetchOptions) -> Fetcher:
        key = repr(options)  # dataclass repr: every option, so equal options share a session
        if key not in self.fetchers:
            self.fetchers[key] = await Fetcher(options).__aenter__()
        return self.fetchers[key]

    def close(self) -> None:
        async def close_all() -> None:
            for fetcher in self.fetchers.values():
                await fetcher.__aexit__(None, None, None)
            self.fetchers.clear()

        if self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=5)
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


_lock = threading.Lock()
_current: _FetchLoop | None = None


def _fetch_loop() -> _FetchLoop:
    global _current
    with _lock:
        # A forked child inherits the object but not the thread: start its own.
        if _current is None or _current.pid != os.getpid() or not _current.thread.is_alive():
            _current = _FetchLoop()
            atexit.register(_current.close)
        return _current


def fetch_stream(
    items: list[T],
    handler: Callable[[Fetcher, T], Awaitable[R]],
    options: FetchOptions,
    window: int | None = None,
    buffer_bytes: int | None = None,
    size: Callable[[R], int] | None = None,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, await handler(fetcher, item))`` for every item, as each completes.

    ``handler`` must not raise for a bad item (it returns a failure result instead);
    an exception that escapes it is re-raised here, in the consumer, after cleanup.
    ``buffer_bytes`` and ``size`` (a result's weight in bytes): see the module docstring.
    """
    if not items:
        return
    window = window or 2 * options.concurrency  # in flight + ready for the CPU
    service = _fetch_loop()
    results: queue.Queue = queue.Queue()
    by_bytes = buffer_bytes is not None
    weigh = size or (lambda result: 0)
    state: dict[str, Any] = {"closed": False, "tasks": set(), "buffered": 0}
    slots = asyncio.Semaphore(window)  # bound to the service loop at first use (in it)
    drained = asyncio.Event()

    async def one(fetcher: Fetcher, item: T) -> None:
        try:
            result = await handler(fetcher, item)
            if by_bytes:  # done: it now weighs on the byte budget, no longer on the window
                state["buffered"] += weigh(result)
                slots.release()
            results.put((item, result))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            results.put(_Error(exc))

    def consumed(nbytes: int) -> None:  # in the loop, when the consumer took a result
        if not by_bytes:
            slots.release()
            return
        state["buffered"] -= nbytes
        drained.set()

    async def main() -> None:
        fetcher = await service.fetcher(options)
        tasks: set[asyncio.Task] = state["tasks"]
        try:
            for item in items:
                await slots.acquire()
                while by_bytes and state["buffered"] >= buffer_bytes and not state["closed"]:
                    drained.clear()
                    await drained.wait()
                if state["closed"]:
                    break
                task = asyncio.create_task(one(fetcher, item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*list(tasks), return_exceptions=True)
        finally:
            for task in list(tasks):
                task.cancel()

    def finished(future) -> None:
        if not future.cancelled() and future.exception() is not None:
            results.put(_Error(future.exception()))
        results.put(_DONE)

    future = asyncio.run_coroutine_threadsafe(main(), service.loop)
    future.add_done_callback(finished)
    try:
        while True:
            got = results.get()
            if got is _DONE:
                return
            if isinstance(got, _Error):
                raise got.exc
            service.loop.call_soon_threadsafe(consumed, weigh(got[1]) if by_bytes else 0)
            yield got
    finally:
        _shutdown(state, slots, drained, service, future)


def _shutdown(state: dict, slots: asyncio.Semaphore, drained: asyncio.Event, service: _FetchLoop, future) -> None:
    """Stop this stream's fetching (the consumer stopped early or failed) and wait for it."""
    state["closed"] = True
    if future.done():
        return

    def cancel() -> None:
        for task in list(state["tasks"]):
            task.cancel()
        slots.release()  # wake the producer so it sees "closed"
        drained.set()

    service.loop.call_soon_threadsafe(cancel)
    try:
        future.result(timeout=30)
    except Exception:  # noqa: BLE001 - already reported to the consumer, or cancelled
        pass
