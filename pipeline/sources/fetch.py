"""Fetching images over HTTP(S): one URL in, its bytes or a reject reason out.

Web URL lists are hostile in every way a server can be: dead links, error pages
served as ``image/jpeg``, endless redirects, slow or huge bodies, and sites that
opted out of AI training. ``Fetcher.fetch`` turns each case into a short reason
code (the ``fetch`` stage's reject reasons):

    http_NNN            a final status other than 2xx (5xx only after the retries)
    timeout             no complete answer within ``timeout_s``, retries included
    connection_error    refused, reset, DNS failure, body cut short
    too_many_redirects  more than ``max_redirects`` hops (a redirect loop)
    bad_redirect        a redirect to a non-HTTP(S) or malformed location
    invalid_url         not an http(s) URL: nothing is fetched
    too_large           body above ``max_bytes`` (checked on Content-Length, then while reading)
    empty               200 with no body
    not_an_image        the first bytes are no image format's signature (the
                        Content-Type header is not trusted: error pages say image/jpeg)
    opted_out           ``X-Robots-Tag`` carries an opt-out directive (noai, noimageai)

Only timeouts and 5xx are retried (exponential backoff with jitter): they are the
failures a second try can fix; a 404 or a redirect loop is the same next second.
Per-host concurrency is a semaphore taken *before* the request's clock starts, so a
URL queued behind a busy host never times out just for waiting its turn.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from pipeline.sources.fetch_sniff import sniff_image

SNIFF_BYTES = 16  # enough for every signature sniff_image knows


@dataclass
class FetchOptions:
    """HTTP options shared by every source that fetches URLs (spec keys of those sources)."""

    timeout_s: float = 20.0  # per attempt, connect + headers + whole body
    retries: int = 2  # extra attempts after a timeout or a 5xx
    backoff_s: float = 1.0  # first retry waits ~backoff_s, then doubles (with jitter)
    max_redirects: int = 5
    max_bytes: int = 32 * 2**20
    concurrency: int = 64  # requests in flight per worker
    per_host_concurrency: int = 16  # of which at most this many to one host
    read_ahead_mb: float = 256.0  # fetched bodies held ahead of the worker's decode (per worker)
    respect_opt_out: bool = True
    opt_out_directives: list[str] = field(default_factory=lambda: ["noai", "noimageai"])
    user_agent: str = "tessera/0.1 (image-text dataset builder; honours X-Robots-Tag noai)"

    def __post_init__(self):
        for name in ("timeout_s", "max_bytes", "concurrency", "per_host_concurrency", "read_ahead_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("retries", "backoff_s", "max_redirects"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class FetchResult:
    url: str
    data: bytes | None = None  # the body when ok
    status: int | None = None  # last HTTP status seen (None: no answer)
    reason: str | None = None  # None when ok, else one of the codes above
    detail: str = ""
    final_url: str = ""  # after redirects
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None


class _Failed(Exception):
    def __init__(self, reason: str, detail: str, retry: bool = False):
        super().__init__(detail)
        self.reason, self.detail, self.retry = reason, detail, retry


def opted_out(header_values: list[str], directives: list[str], user_agent: str) -> str | None:
    """The opt-out directive of an ``X-Robots-Tag`` that applies to us, or None.

    A value is a comma-separated list; ``botname: noai, noindex`` applies only to
    that bot (we match it against our user agent), an unprefixed one to everyone.
    """
    wanted = {d.lower() for d in directives}
    agent = user_agent.lower()
    for value in header_values:
        scope_ok = True
        for part in value.split(","):
            part = part.strip().lower()
            if ":" in part:  # "otherbot: noai" starts a new bot-scoped group
                bot, part = (s.strip() for s in part.split(":", 1))
                scope_ok = bot in ("*", "all") or bot in agent
            if scope_ok and part in wanted:
                return part
    return None


class Fetcher:
    """One aiohttp session with global and per-host limits; use ``async with``."""

    def __init__(self, options: FetchOptions):
        self.options = options
        self._global = asyncio.Semaphore(options.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Fetcher":
        o = self.options
        # The connector allows what the semaphores allow, so requests never queue in
        # its pool (where they would be on the clock of their timeout).
        connector = aiohttp.TCPConnector(limit=o.concurrency, limit_per_host=o.per_host_concurrency, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": o.user_agent}, auto_decompress=True,
            timeout=aiohttp.ClientTimeout(total=o.timeout_s, sock_connect=min(o.timeout_s, 10.0)),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    async def fetch(self, url: str) -> FetchResult:
        result = FetchResult(url)
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            result.reason, result.detail = "invalid_url", f"not an http(s) URL: {url!r}"
            return result
        host = self._hosts.setdefault(parts.hostname, asyncio.Semaphore(self.options.per_host_concurrency))
        for attempt in range(self.options.retries + 1):
            result.attempts = attempt + 1
            try:
                async with host, self._global:
                    result.data, result.status, result.final_url = await self._get(url)
                result.reason, result.detail = None, ""
                return result
            except _Failed as failed:
                result.reason, result.detail = failed.reason, failed.detail
                if not failed.retry or attempt == self.options.retries:
                    break
            # Outside the semaphores: a backing-off URL does not hold a slot.
            await asyncio.sleep(self.options.backoff_s * 2**attempt * random.uniform(0.5, 1.5))
        return result

    async def _get(self, url: str) -> tuple[bytes, int, str]:
        o = self.options
        try:
            async with self.session.get(url, allow_redirects=True, max_redirects=o.max_redirects) as resp:
                status = resp.status
                if status >= 500:
                    raise _Failed(f"http_{status}", f"{status} {resp.reason}", retry=True)
                if not 200 <= status < 300:
                    raise _Failed(f"http_{status}", f"{status} {resp.reason}")
                if o.respect_opt_out:
                    directive = opted_out(resp.headers.getall("X-Robots-Tag", []), o.opt_out_directives, o.user_agent)
                    if directive:
                        raise _Failed("opted_out", f"X-Robots-Tag: {directive}")
                if resp.content_length is not None and resp.content_length > o.max_bytes:
                    raise _Failed("too_large", f"Content-Length {resp.content_length} > max_bytes {o.max_bytes}")
                data = await self._read_body(resp)
                return data, status, str(resp.url)
        except _Failed:
            raise
        except aiohttp.TooManyRedirects as exc:
            raise _Failed("too_many_redirects", f"more than {o.max_redirects} redirects: {exc}") from exc
        except (aiohttp.InvalidUrlRedirectClientError, aiohttp.NonHttpUrlRedirectClientError) as exc:
            raise _Failed("bad_redirect", str(exc)) from exc
        except aiohttp.InvalidURL as exc:
            raise _Failed("invalid_url", str(exc)) from exc
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise _Failed("timeout", f"no complete answer within {o.timeout_s}s", retry=True) from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise _Failed("connection_error", f"{type(exc).__name__}: {exc}") from exc

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, stopping early once it is too large or clearly not an image."""
        limit = self.options.max_bytes
        chunks, total, sniffed = [], 0, False
        async for chunk in resp.content.iter_chunked(256 * 1024):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _Failed("too_large", f"body exceeds max_bytes {limit}")
            if not sniffed and total >= SNIFF_BYTES:
                sniffed = True
                head = b"".join(chunks)
                if sniff_image(head) is None:
                    raise _Failed("not_an_image", f"body starts {head[:16]!r} (Content-Type {resp.content_type!r})")
        data = b"".join(chunks)
        if not data:
            raise _Failed("empty", "0 bytes")
        if not sniffed and sniff_image(data) is None:
            raise _Failed("not_an_image", f"{len(data)} bytes starting {data[:16]!r}")
        return data
