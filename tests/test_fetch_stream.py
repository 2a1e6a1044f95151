"""fetch_stream: one fetch loop and session per process, reused by every stream, bounded read-ahead."""
from __future__ import annotations

import time

import pytest
from aiohttp import web

from pipeline.sources.fetch import FetchOptions
from pipeline.sources.fetch_stream import fetch_stream
from pipeline.sources.fetch_testing import LoopbackServer

BODY = b"\xff\xd8\xff" + b"\0" * 2000
OPTIONS = FetchOptions(timeout_s=5.0, retries=0, concurrency=4, per_host_concurrency=4)


class Peers:
    """Serves BODY and records which client connection (peer port) each request came on."""

    def __init__(self):
        self.peers: set = set()

    async def __call__(self, request: web.Request) -> web.Response:
        self.peers.add(request.transport.get_extra_info("peername"))
        return web.Response(body=BODY, content_type="image/jpeg")


@pytest.fixture()
def server():
    handler = Peers()
    with LoopbackServer(handler) as srv:
        srv.peers = handler.peers
        yield srv


async def get(fetcher, url):
    return await fetcher.fetch(url)


def urls(srv, name: str, n: int) -> list[str]:
    return [srv.url(f"/{name}/{i}.jpg") for i in range(n)]


def test_streams_reuse_one_session_and_its_connections(server):
    first = dict(fetch_stream(urls(server, "a", 30), get, OPTIONS))
    second = dict(fetch_stream(urls(server, "b", 30), get, OPTIONS))
    assert all(r.ok and r.data == BODY for r in [*first.values(), *second.values()])
    assert len(first) == len(second) == 30
    # Keep-alive connections of the first stream serve the second: no new pool per partition.
    assert len(server.peers) <= OPTIONS.concurrency


def test_read_ahead_is_bounded_by_the_window(server):
    stream = fetch_stream(urls(server, "w", 40), get, OPTIONS, window=5)
    taken = [next(stream) for _ in range(2)]
    time.sleep(0.3)  # a slow consumer: fetching must wait for it
    assert sum(server.hits.values()) <= 5 + len(taken)
    assert len(taken) + len(list(stream)) == 40


def test_a_stream_stopped_early_or_failing_leaves_the_next_one_whole(server):
    stream = fetch_stream(urls(server, "s", 50), get, OPTIONS)
    next(stream)
    stream.close()  # the consumer stopped: its remaining fetches are cancelled

    async def broken(fetcher, url):
        if url.endswith("/3.jpg"):
            raise RuntimeError("handler bug")
        return await fetcher.fetch(url)

    with pytest.raises(RuntimeError, match="handler bug"):
        list(fetch_stream(urls(server, "e", 10), broken, OPTIONS))
    after = dict(fetch_stream(urls(server, "n", 25), get, OPTIONS))
    assert len(after) == 25 and all(r.ok for r in after.values())
    assert server.in_flight == 0



def test_a_dropped_connection_is_recovered_by_the_session():
    """The session outlives partitions, so a kept-alive connection may be closed by the
    server as it is reused; aiohttp retries such a request once on a new connection."""
    calls = {"n": 0}

    async def drop_first(request: web.Request) -> web.StreamResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            request.transport.close()
            return web.Response(status=200)
        return web.Response(body=BODY, content_type="image/jpeg")

    with LoopbackServer(drop_first) as srv:
        ((_, result),) = fetch_stream([srv.url("/x.jpg")], get, FetchOptions(retries=0))
    assert result.ok and result.data == BODY and calls["n"] == 2


def test_a_byte_budget_fetches_ahead_until_the_bytes_are_held(server):
    size = lambda r: len(r.data or b"")  # noqa: E731
    # Budget for all 40 bodies: every request starts although the consumer is slow ...
    stream = fetch_stream(urls(server, "ba", 40), get, OPTIONS, window=5, buffer_bytes=40 * len(BODY), size=size)
    next(stream)
    time.sleep(0.5)
    assert sum(server.hits.values()) == 40
    assert len(list(stream)) == 39
    # ... and a budget of 6 bodies holds it to ~6 waiting + 5 in flight.
    stream = fetch_stream(urls(server, "bb", 40), get, OPTIONS, window=5, buffer_bytes=6 * len(BODY), size=size)
    next(stream)
    time.sleep(0.5)
    assert 6 <= sum(v for k, v in server.hits.items() if k.startswith("/bb/")) <= 1 + 6 + 5
    assert len(list(stream)) == 39
