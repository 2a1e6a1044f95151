"""web_urls: every way a URL can fail becomes the right reject; the ledger and resume avoid refetching.

A loopback server (127.0.0.1, free port) plays the hostile web: errors, flaky 5xx,
a slow endpoint, a redirect loop, huge bodies, opt-out headers, HTML served as JPEG.
"""
from __future__ import annotations

import asyncio
import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web
from PIL import Image

from jobs.ingest_job import run_ingest
from jobs.spec import parse_spec
from pipeline import catalog, storage
from pipeline.dataset import Dataset
from pipeline.sources import SOURCE_TYPES
from pipeline.sources.fetch import opted_out
from pipeline.sources.fetch_testing import LoopbackServer
from schemas.config import ConfigError

FAST = {"timeout_s": 0.5, "retries": 2, "backoff_s": 0.02}


def jpeg(color, size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


IMAGES = {f"/img/{i}.jpg": jpeg((40 * i % 256, 90, 200 - 20 * i)) for i in range(8)}


class Web:
    """The server's behaviour per path; mutable so tests can revive a dead URL."""

    def __init__(self):
        self.flaky_left = {"/flaky": 2}
        self.revived = False

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in IMAGES:
            return web.Response(body=IMAGES[path], content_type="image/jpeg")
        if path == "/flaky":  # two 500s, then the image
            if self.flaky_left[path] > 0:
                self.flaky_left[path] -= 1
                return web.Response(status=500)
            return web.Response(body=IMAGES["/img/7.jpg"], content_type="image/jpeg")
        if path == "/always500":
            return web.Response(status=503)
        if path == "/slow":
            await asyncio.sleep(2.0)  # bounded: the client gives up after timeout_s
            return web.Response(body=IMAGES["/img/0.jpg"], content_type="image/jpeg")
        if path == "/loop":
            raise web.HTTPFound("/loop")
        if path == "/moved":
            raise web.HTTPFound("/img/6.jpg")
        if path == "/huge":  # declared too large
            return web.Response(body=b"\xff\xd8\xff" + b"\0" * 300_000, content_type="image/jpeg")
        if path == "/huge-stream":  # no Content-Length: caught while reading
            resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(b"\xff\xd8\xff")
            for _ in range(40):
                try:
                    await resp.write(b"\0" * 16_384)
                except (ConnectionResetError, RuntimeError):
                    break
            return resp
        if path == "/noai":
            return web.Response(body=IMAGES["/img/1.jpg"], content_type="image/jpeg", headers={"X-Robots-Tag": "noai"})
        if path == "/otherbot":  # an opt-out scoped to another crawler does not apply to us
            return web.Response(body=IMAGES["/img/2.jpg"], content_type="image/jpeg",
                                headers={"X-Robots-Tag": "otherbot: noimageai"})
        if path == "/html":
            return web.Response(body=b"<html><body>Not found</body></html>" * 3, content_type="image/jpeg")
        if path == "/revivable":
            if not self.revived:
                return web.Response(status=404)
            return web.Response(body=IMAGES["/img/5.jpg"], content_type="image/jpeg")
        if path.startswith("/paced/"):  # for the per-host cap
            await asyncio.sleep(0.05)
            return web.Response(body=IMAGES["/img/3.jpg"], content_type="image/jpeg")
        return web.Response(status=404)


@pytest.fixture()
def server():
    with LoopbackServer(Web()) as srv:
        yield srv


EXPECTED = {  # path -> reject reason (None: a sample)
    "/img/0.jpg": None, "/img/1.jpg": None, "/flaky": None, "/moved": None, "/otherbot": None,
    "/missing": "http_404", "/always500": "http_503", "/slow": "timeout", "/loop": "too_many_redirects",
    "/huge": "too_large", "/huge-stream": "too_large", "/noai": "opted_out", "/html": "not_an_image",
    "/revivable": "http_404",
}


def url_rows(srv) -> list[dict]:
    rows = [{"url": srv.url(p), "caption": f"caption of {p}", "license": "cc-by"} for p in EXPECTED]
    rows.append({"url": "ftp://127.0.0.1/x.jpg", "caption": "not http", "license": "cc-by"})
    rows.append({"url": "http://127.0.0.1:9/nothing.jpg", "caption": "refused", "license": "cc-by"})
    rows.append({"url": srv.url("/img/0.jpg"), "caption": "listed twice", "license": "cc-by"})
    return rows


def read_source(**options):
    config_cls, source_cls = SOURCE_TYPES["web_urls"]
    source = source_cls("web", config_cls(**{**FAST, "max_bytes": 200_000, **options}))
    return [raw for p in source.partitions(4) for raw in source.read(p)]


def test_each_failure_mode_gets_its_reason(server, tmp_path):
    path = tmp_path / "urls.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in url_rows(server)) + "\n{not json\n")
    got = read_source(path=str(path))
    by_ref = {r.input_ref: r for r in got}
    for p, reason in EXPECTED.items():
        raw = by_ref[server.url(p)]
        assert (raw.failure[1] if raw.failure else None) == reason, (p, raw.failure)
    assert by_ref["ftp://127.0.0.1/x.jpg"].failure[1] == "invalid_url"
    assert by_ref["http://127.0.0.1:9/nothing.jpg"].failure[1] == "connection_error"
    assert [r.failure[1] for r in got if r.input_ref.startswith(str(path))] == ["duplicate_url", "malformed_row"]
    ok = by_ref[server.url("/img/0.jpg")]
    assert ok.media == [IMAGES["/img/0.jpg"]] and ok.text == "caption of /img/0.jpg"
    assert ok.extra == {"url": server.url("/img/0.jpg"), "license": "cc-by", "http_status": 200}
    assert by_ref[server.url("/moved")].extra["final_url"] == server.url("/img/6.jpg")
    # Retries: 5xx and timeouts only, bounded; a 404 is asked once.
    assert server.hits["/flaky"] == 3 and server.hits["/always500"] == 3 and server.hits["/slow"] == 3
    assert server.hits["/missing"] == 1 and server.hits["/html"] == 1
    assert "after 3 attempts" in by_ref[server.url("/always500")].failure[2]


def test_opt_out_can_be_disabled_and_parsing_is_scoped(server, tmp_path):
    path = tmp_path / "urls.csv"
    path.write_text(f"url,caption\n{server.url('/noai')},a\n")
    (raw,) = read_source(path=str(path), respect_opt_out=False)
    assert raw.failure is None and raw.media == [IMAGES["/img/1.jpg"]]
    assert opted_out(["noindex, NoImageAI"], ["noai", "noimageai"], "tessera/0.1") == "noimageai"
    assert opted_out(["otherbot: noai"], ["noai"], "tessera/0.1") is None
    assert opted_out(["tessera: noai"], ["noai"], "tessera/0.1") == "noai"
    assert opted_out(["otherbot: noai, tessera: noimageai"], ["noimageai"], "tessera/0.1") == "noimageai"


def test_per_host_concurrency_is_capped(server, tmp_path):
    rows = [{"url": server.url(f"/paced/{i}.jpg"), "caption": "x"} for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "urls.parquet")
    config_cls, source_cls = SOURCE_TYPES["web_urls"]
    source = source_cls("web", config_cls(path=str(tmp_path / "urls.parquet"), per_host_concurrency=4, concurrency=32))
    (part,) = source.partitions(100)
    assert all(r.failure is None for r in source.read(part))
    assert 2 <= server.peak_in_flight <= 4  # concurrent, but never more than the cap


def test_config_is_validated():
    with pytest.raises(ConfigError, match="per_host_concurrency"):
        parse_spec({"name": "x", "dataset": "/tmp/never", "sources": [
            {"name": "w", "type": "web_urls", "path": "u.jsonl", "per_host_concurrency": 0}]})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_spec({"name": "x", "dataset": "/tmp/never", "sources": [
            {"name": "w", "type": "web_urls", "path": "u.jsonl", "timeout": 3}]})


def spec(name: str, dataset: str, urls: str, **options) -> dict:
    # Each job names its source after itself: sample ids hash (source, input_ref, content), so the
    # same URL under the same source name in a second job would collide with the first job's row.
    return {"name": name, "dataset": dataset, "partition_size": 6,
            "sources": [{"name": f"web-{name}", "type": "web_urls", "path": urls, **FAST, "max_bytes": 200_000, **options}]}


def fetch_rejects(ds: Dataset, job_id: str) -> dict[str, str]:
    rows = catalog.query(ds, f"SELECT input_ref, reason FROM rejects WHERE job_id = '{job_id}' AND stage = 'fetch'")
    return {r["input_ref"]: r["reason"] for r in rows.to_pylist()}


def test_job_ledger_resume_and_retry_dead(server, tmp_path):
    urls = tmp_path / "urls.jsonl.gz"
    with gzip.open(urls, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in url_rows(server)))
    dataset = str(tmp_path / "ds")
    ds = Dataset(dataset)

    first = parse_spec(spec("first", dataset, str(urls)))
    summary = run_ingest(first, mode="local")
    samples = catalog.query(ds, "SELECT input_ref, media, extra FROM samples").to_pylist()
    assert sorted(r["input_ref"] for r in samples) == sorted(server.url(p) for p, r in EXPECTED.items() if r is None)
    for row in samples:  # the payload store holds the served bytes, untouched
        served = IMAGES.get(row["input_ref"].split(str(server.port))[1])
        stored = storage.read_bytes(ds.uri(row["media"][0]["uri"]))
        assert served is None or stored == served
        assert json.loads(row["extra"])["license"] == "cc-by"
    dead = fetch_rejects(ds, first.job_id)
    assert dead[server.url("/missing")] == "http_404" and dead[server.url("/noai")] == "opted_out"
    assert summary.inputs == len(url_rows(server))

    # Resume: the same spec again fetches nothing at all.
    hits = sum(server.hits.values())
    again = run_ingest(first, mode="local")
    assert again.partitions_skipped == again.partitions and sum(server.hits.values()) == hits

    # A new job over the same list: dead URLs are not retried, they are recorded known_dead.
    hits = server.hits.copy()
    second = parse_spec(spec("second", dataset, str(urls)))
    s2 = run_ingest(second, mode="local")
    known = fetch_rejects(ds, second.job_id)
    assert set(known.values()) == {"known_dead"}, (
        "dead URLs were fetched again: the ingest worker must call source.attach(dataset, job_id)")
    assert set(known) == set(dead)
    for url in dead:
        path = url.split(str(server.port))[1] if str(server.port) in url else None
        assert path is None or server.hits[path] == hits[path], url
    assert server.hits["/img/0.jpg"] == hits["/img/0.jpg"] + 1  # live URLs are fetched by the new job
    assert s2.samples == summary.samples

    # Asked to, a job retries the dead: the revived URL becomes a sample and leaves the ledger.
    server.handler.revived = True
    third = parse_spec(spec("third", dataset, str(urls), retry_dead=True))
    run_ingest(third, mode="local")
    assert server.hits["/missing"] == hits["/missing"] + 1
    assert server.url("/revivable") not in fetch_rejects(ds, third.job_id)
    fourth = parse_spec(spec("fourth", dataset, str(urls)))
    run_ingest(fourth, mode="local")
    assert server.url("/revivable") not in fetch_rejects(ds, fourth.job_id)  # fetched, not known_dead
    assert fetch_rejects(ds, fourth.job_id)[server.url("/missing")] == "known_dead"


@pytest.mark.slow
def test_on_ray_same_split_as_local(server, tmp_path, ray_local):
    urls = tmp_path / "urls.jsonl"
    urls.write_text("\n".join(json.dumps(r) for r in url_rows(server)))
    summary = run_ingest(parse_spec(spec("ray", str(tmp_path / "ds"), str(urls))), mode="ray")
    expected_ok = sum(r is None for r in EXPECTED.values())
    assert summary.samples == expected_ok and summary.inputs == len(url_rows(server))
    assert summary.rejects_by_reason["fetch/timeout"] == 1 and summary.rejects_by_reason["read/duplicate_url"] == 1
