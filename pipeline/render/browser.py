"""A contained headless-Chromium pool: one browser per worker process, recycled contexts.

Containment, in depth (each layer is tested in tests/test_html_render.py):
1. every request of a page goes through ``page.route``: the document itself is
   served from memory, ``data:``/``blob:`` pass, anything else (http, https, file,
   ...) is aborted and logged; WebSockets are routed to nowhere;
2. Chromium runs behind a dead proxy with loopback not exempted, so a request the
   router somehow missed still cannot reach a host, 127.0.0.1 included;
3. the document lives at an http origin, from which Chromium refuses file:// loads.
Every page has a wall-clock limit covering load, DOM extraction and screenshot: a
script like ``while(true){}`` blocks the renderer, so the limit is enforced from
outside (asyncio) and the context, then if need be the browser, is thrown away.
A failed page is retried (``retries``), then reported as a RenderError.
"""
from __future__ import annotations

import asyncio
import atexit
import os
from dataclasses import dataclass, field

from pipeline.render.dom import EXTRACT_JS

DOC_URL = "http://document.tessera.invalid/index.html"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    # Layer 2: a proxy that does not exist, and no exemption for loopback ("<-loopback>").
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
]


@dataclass
class BrowserConfig:
    executable_path: str = "/usr/bin/chromium"
    device_scale_factor: float = 1.0
    pages_per_context: int = 50  # recycle: long-lived contexts accumulate memory and state
    page_timeout_s: float = 15.0  # load + extraction + screenshot of one page
    retries: int = 1  # a page that timed out or crashed is tried this many more times
    javascript: bool = True
    max_page_height: int = 3000  # CSS px captured; longer pages are cut (and their boxes with them)


class RenderError(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class RenderedPage:
    png: bytes
    width: int  # image pixels
    height: int
    text: str  # visible text (innerText)
    elements: list[dict]  # layout elements: category, tag, box (image px), text, fragment
    omni_html: str  # Qwen2.5-VL omni-document HTML with data-bbox on each element
    blocked: list[str] = field(default_factory=list)  # URLs the page tried to load and did not get
    doc_height: int = 0  # CSS px of the whole document, before the cut
    attempts: int = 1


@dataclass
class PoolStats:
    launches: int = 0
    contexts: int = 0
    pages: int = 0
    timeouts: int = 0
    crashes: int = 0


def _quiet_closed_driver(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """When a Ray worker exits, its Playwright driver goes first and every pending call's future
    fails with "Connection closed"; nobody awaits them any more, so asyncio would print each one
    as "Future exception was never retrieved". Those say nothing; anything else is still reported."""
    exc = context.get("exception")
    # Playwright raises these as its own Error or as a plain Exception ("Connection closed while
    # reading from the driver"), so the message is what identifies them.
    if exc is not None and "connection closed" in str(exc).lower():
        return
    loop.default_exception_handler(context)


class BrowserPool:
    """Sync facade over async Playwright on a private event loop (Ray workers are sync)."""

    def __init__(self, config: BrowserConfig | None = None):
        self.config = config or BrowserConfig()
        self.stats = PoolStats()
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet_closed_driver)
        self._pw = self._browser = self._context = None
        self._context_pages = 0
        atexit.register(self.close)

    # ---- lifecycle -------------------------------------------------------------------
    async def _ensure_browser(self):
        if self._browser is not None and self._browser.is_connected():
            return
        if not os.path.exists(self.config.executable_path):
            raise RenderError("no_browser", f"{self.config.executable_path} not found: apt-get install chromium")
        from playwright.async_api import async_playwright

        if self._pw is None:
            self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.launch(
            executable_path=self.config.executable_path, args=LAUNCH_ARGS, headless=True)
        self._context = None
        self.stats.launches += 1

    async def _ensure_context(self):
        await self._ensure_browser()
        if self._context is not None and self._context_pages < self.config.pages_per_context:
            return self._context
        await self._drop_context()
        self._context = await self._browser.new_context(
            device_scale_factor=self.config.device_scale_factor, java_script_enabled=self.config.javascript,
            service_workers="block", accept_downloads=False, bypass_csp=False)
        self._context_pages = 0
        self.stats.contexts += 1
        return self._context

    async def _drop_context(self):
        ctx, self._context = self._context, None
        if ctx is not None:
            try:  # a renderer stuck in a loop may not answer: then the browser goes too
                await asyncio.wait_for(ctx.close(), 5)
            except Exception:
                await self._drop_browser()

    async def _drop_browser(self):
        browser, self._browser, self._context = self._browser, None, None
        if browser is not None:
            try:
                await asyncio.wait_for(browser.close(), 5)
            except Exception:
                pass

    def close(self):
        if self._loop.is_closed():
            return
        async def shutdown():
            await self._drop_browser()
            if self._pw is not None:
                await self._pw.stop()
                self._pw = None
        try:
            self._loop.run_until_complete(shutdown())
        finally:
            self._loop.close()

    # ---- rendering -------------------------------------------------------------------
    async def _render_once(self, html: str, width: int, height: int, box_format: str) -> RenderedPage:
        ctx = await self._ensure_context()
        self._context_pages += 1
        page = await ctx.new_page()
        blocked: list[str] = []

        async def route(r):
            url = r.request.url
            if url == DOC_URL:
                await r.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
            elif url.startswith(("data:", "blob:")):
                await r.continue_()
            else:
                blocked.append(url[:200])
                await r.abort("blockedbyclient")

        try:
            await page.route("**/*", route)
            await page.route_web_socket("**/*", lambda ws: blocked.append(ws.url[:200]))  # never connected
            await page.set_viewport_size({"width": width, "height": height})
            await page.goto(DOC_URL, wait_until="load")
            await page.evaluate("document.fonts.ready.then(() => true)")
            info = await page.evaluate(EXTRACT_JS, {"maxHeight": self.config.max_page_height,
                                                    "norm": box_format == "norm1000"})
            png = await page.screenshot(
                full_page=True, animations="disabled", caret="hide", type="png",
                clip={"x": 0, "y": 0, "width": info["css_width"], "height": info["css_height"]})
        finally:
            if not page.is_closed():
                try:
                    await asyncio.wait_for(page.close(), 2)
                except Exception:
                    pass
        self.stats.pages += 1
        return RenderedPage(png, info["image_width"], info["image_height"], info["text"], info["elements"],
                            info["omni_html"], blocked, info["doc_height"])

    async def _render(self, html: str, width: int, height: int, box_format: str) -> RenderedPage:
        reason, detail = "error", ""
        for attempt in range(1 + self.config.retries):
            try:
                await self._ensure_context()  # a browser launch (~1.5 s) is not the page's time
                page = await asyncio.wait_for(self._render_once(html, width, height, box_format),
                                              self.config.page_timeout_s)
                page.attempts = attempt + 1
                return page
            except asyncio.TimeoutError:
                reason, detail = "timeout", f"page took over {self.config.page_timeout_s}s"
                self.stats.timeouts += 1
                await self._drop_context()  # its renderer may still be spinning
            except RenderError:
                raise
            except Exception as exc:  # Playwright: target crashed, browser closed, protocol errors
                msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                crashed = "crash" in msg.lower() or "closed" in msg.lower()
                reason, detail = ("crash" if crashed else "error"), msg
                self.stats.crashes += crashed
                await self._drop_context()
                if self._browser is not None and not self._browser.is_connected():
                    await self._drop_browser()
        raise RenderError(reason, f"{detail} ({1 + self.config.retries} attempts)")

    def render(self, html: str, width: int = 900, height: int = 1200, box_format: str = "absolute") -> RenderedPage:
        """Render one document; raises RenderError(reason in timeout|crash|error|no_browser)."""
        return self._loop.run_until_complete(self._render(html, width, height, box_format))


_POOLS: dict[tuple, BrowserPool] = {}


def shared_pool(config: BrowserConfig) -> BrowserPool:
    """The process's pool for ``config``: launched on first use, closed at exit."""
    key = tuple(sorted(config.__dict__.items()))
    if key not in _POOLS:
        _POOLS[key] = BrowserPool(config)
    return _POOLS[key]

