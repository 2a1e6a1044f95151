"""The contained Chromium pool: no network, no local files, hung scripts cut, boxes right."""
from __future__ import annotations

import http.server
import io
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from pipeline.render.browser import BrowserConfig, BrowserPool, RenderError

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                reason="needs Debian's chromium at /usr/bin/chromium (make install adds it)")
pytest.importorskip("playwright")


@pytest.fixture(scope="module")
def pool():
    p = BrowserPool(BrowserConfig(page_timeout_s=2.0, retries=1, pages_per_context=2))
    yield p
    p.close()


@pytest.fixture
def loopback():
    """A real HTTP server on 127.0.0.1 that records every request it receives."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hits
    server.shutdown()


def test_page_cannot_reach_the_network(pool, loopback):
    port, hits = loopback
    base = f"http://127.0.0.1:{port}"
    html = f"""<html><head><link rel="stylesheet" href="{base}/style.css"></head>
    <body style="background:url({base}/bg.png)"><p>hello</p><img src="{base}/x.png"><iframe src="{base}/frame"></iframe>
    <script>fetch("{base}/fetch"); new Image().src = "{base}/js.png";
    try {{ new WebSocket("ws://127.0.0.1:{port}/ws"); }} catch (e) {{}}
    navigator.sendBeacon && navigator.sendBeacon("{base}/beacon", "x");</script></body></html>"""
    page = pool.render(html, 400, 300)
    time.sleep(0.5)  # anything that did get out would have arrived by now
    assert hits == []
    assert page.text.startswith("hello")
    assert any(u.endswith("/x.png") for u in page.blocked) and any(u.endswith("/fetch") for u in page.blocked)


def test_page_cannot_read_local_files(pool, tmp_path):
    red = tmp_path / "red.png"
    Image.new("RGB", (80, 80), (255, 0, 0)).save(red)
    css = tmp_path / "red.css"
    css.write_text("body { background: #ff0000 !important; }")
    html = f"""<html><head><link rel="stylesheet" href="file://{css}"></head><body style="background:#fff">
    <img id="i" src="file://{red}" width="80" height="80"><iframe src="file:///etc/hostname"></iframe>
    <script>window.addEventListener("load", () => document.body.insertAdjacentText("beforeend",
      "W=" + document.getElementById("i").naturalWidth));</script></body></html>"""
    page = pool.render(html, 300, 200)
    assert "W=0" in page.text
    rgb = np.asarray(Image.open(io.BytesIO(page.png)).convert("RGB")).astype(int)
    assert ((rgb[..., 0] > 240) & (rgb[..., 1] < 20) & (rgb[..., 2] < 20)).sum() < 20  # neither the red image nor the red stylesheet loaded


def test_endless_scripts_are_cut_retried_then_rejected(pool):
    before = pool.stats.timeouts
    for script in ("while(true){}", 'window.onload = () => setTimeout(() => { while(true){} }, 10);'):
        start = time.perf_counter()
        with pytest.raises(RenderError) as err:
            pool.render(f"<p>x</p><script>{script}</script>", 300, 200)
        assert err.value.reason == "timeout"
        assert time.perf_counter() - start < 2 * 2.0 + 8  # two attempts, plus tearing down the stuck context
    assert pool.stats.timeouts - before == 4  # each page tried twice
    assert pool.render("<p>still alive</p>", 300, 200).text == "still alive"


def test_device_scale_multiplies_boxes_and_pixels():
    p = BrowserPool(BrowserConfig(device_scale_factor=2.0))
    try:
        page = p.render('<body style="margin:0"><p style="position:absolute;left:10px;top:20px;width:100px;'
                        'height:50px;margin:0">box</p></body>', 300, 200)
    finally:
        p.close()
    assert (page.width, page.height) == (600, 400) == Image.open(io.BytesIO(page.png)).size
    (para,) = [e for e in page.elements if e["tag"] == "p"]
    assert para["box"] == [20, 40, 220, 140]


def test_column_fragments_get_their_own_boxes_and_words(pool):
    words = " ".join(f"w{i}" for i in range(120))
    page = pool.render(f'<div style="column-count:2;width:400px"><p>{words}</p></div>', 500, 600)
    frags = [e for e in page.elements if e["tag"] == "p"]
    assert len(frags) == 2 and all(f["fragments"] == 2 for f in frags)
    left, right = sorted(frags, key=lambda f: f["box"][0])
    assert left["box"][2] <= right["box"][0]  # side by side, not one box over the gutter
    assert (left["text"] + " " + right["text"]).split() == words.split()


def test_contexts_are_recycled_and_omni_html_has_boxes(pool):
    before = pool.stats.contexts
    for _ in range(4):
        page = pool.render("<h1>T</h1><table><tr><td rowspan=2>a</td><td>b</td></tr><tr><td>c</td></tr></table>", 300, 200)
    assert pool.stats.contexts - before >= 2  # pages_per_context=2
    assert '<h1 data-bbox="' in page.omni_html and 'rowspan="2"' in page.omni_html
    assert {e["category"] for e in page.elements} >= {"title", "table"}


def test_closed_driver_futures_are_dropped_at_exit_and_other_errors_are_not():
    """A Ray worker's exit closes Playwright's driver first: its pending futures fail with
    "Connection closed ..." and asyncio would print each; any other loop error still reaches the
    default handler."""
    import asyncio

    from pipeline.render.browser import _quiet_closed_driver

    loop = asyncio.new_event_loop()
    shown = []
    loop.default_exception_handler = lambda context: shown.append(context["exception"])
    try:
        _quiet_closed_driver(loop, {"message": "x", "exception": Exception("Connection closed while reading from the driver")})
        assert shown == []
        other = RuntimeError("renderer crashed")
        _quiet_closed_driver(loop, {"message": "x", "exception": other})
        assert shown == [other]
    finally:
        loop.close()
