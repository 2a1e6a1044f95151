"""Run async fetch work from a plain generator, overlapping network and CPU.

A source's ``read`` is a synchronous generator: the ingest worker decodes, hashes
and tiles each input between two ``next`` calls. If fetching happened in those
gaps the CPU would idle on the network and the network on the CPU. So the asyncio
loop runs in a background thread and fetches ahead while the worker computes;
results cross over through a queue in completion order.

Memory stays bounded: at most ``window`` items are in flight or waiting to be
consumed (a slot frees only when the consumer takes a result), so a slow consumer
throttles fetching instead of piling up bodies.
"""
from __future__ import annotations

import asyncio
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


def fetch_stream(
    items: list[T],
    handler: Callable[[Fetcher, T], Awaitable[R]],
    options: FetchOptions,
    window: int | None = None,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, await handler(fetcher, item))`` for every item, as each completes.

    ``handler`` must not raise for a bad item (it returns a failure result instead);
    an exception that escapes it is re-raised here, in the consumer, after cleanup.
    """
    if not items:
        return
    window = window or 2 * options.concurrency  # in flight + ready for the CPU
    results: queue.Queue = queue.Queue()
    started = threading.Event()
    state: dict[str, Any] = {"closed": False}

    async def one(fetcher: Fetcher, item: T) -> None:
        try:
            results.put((item, await handler(fetcher, item)))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            results.put(_Error(exc))

    async def main() -> None:
        slots = asyncio.Semaphore(window)
        state["loop"], state["slots"] = asyncio.get_running_loop(), slots
        started.set()
        tasks: set[asyncio.Task] = set()
        async with Fetcher(options) as fetcher:
            state["tasks"] = tasks
            try:
                for item in items:
                    await slots.acquire()
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

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001
            results.put(_Error(exc))
        finally:
            started.set()
            results.put(_DONE)

    thread = threading.Thread(target=run, name="tessera-fetch", daemon=True)
    thread.start()
    started.wait()
    try:
        while True:
            got = results.get()
            if got is _DONE:
                return
            if isinstance(got, _Error):
                raise got.exc
            loop = state.get("loop")
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(state["slots"].release)
            yield got
    finally:
        _shutdown(state, thread)


def _shutdown(state: dict, thread: threading.Thread) -> None:
    """Stop fetching (the consumer stopped early or failed) and wait for the thread."""
    state["closed"] = True
    loop = state.get("loop")
    if loop is not None and thread.is_alive():

        def cancel() -> None:
            for task in list(state.get("tasks", ())):
                task.cancel()
            state["slots"].release()  # wake the producer so it sees "closed"

        try:
            loop.call_soon_threadsafe(cancel)
        except RuntimeError:  # the loop already finished
            pass
    thread.join(timeout=30)
