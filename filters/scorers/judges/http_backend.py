"""An OpenAI-compatible chat-completions backend (vLLM, SGLang, TGI, llama.cpp, hosted APIs).

Concurrency is bounded by a semaphore (and the connection pool), every request has a
total deadline, and transport trouble is retried with capped exponential backoff plus
jitter (so many workers hitting one restarted server do not retry in lock step),
honouring ``Retry-After``. 4xx answers other than 408/429 are configuration errors
(wrong model name, bad key): retrying cannot help, so they stop the run.
"""
from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx2

from filters.scorers.judges.backend import BackendError, FatalBackendError, JudgeRequest, image_data_url

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class HTTPConfig:
    url: str  # server root, e.g. http://127.0.0.1:8000 (with or without /v1)
    model: str  # the served model name sent in each request
    concurrency: int = 8  # requests in flight at once
    timeout_s: float = 60.0  # total deadline per request
    retries: int = 3  # transport retries after the first try
    backoff_s: float = 0.5  # first backoff; doubles per retry
    backoff_max_s: float = 20.0
    takes_images: bool = True  # send images as data URLs (set False for a text-only model)
    api_key_env: str | None = "TESSERA_JUDGE_API_KEY"  # read from the environment, never stored
    json_mode: bool = False  # ask for response_format json_object (vLLM/SGLang/OpenAI support it)
    cache_model_id: str | None = None  # override the cache key's model (e.g. to tell quantizations apart)


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


class HTTPBackend:
    def __init__(self, config: HTTPConfig):
        self.config = config
        self.endpoint = _endpoint(config.url)
        self.model_id = config.cache_model_id or f"openai:{config.model}"
        self.takes_images = config.takes_images
        self.concurrency = config.concurrency
        self.requests = 0  # HTTP requests sent, retries included (for benchmarks and tests)
        self._client: httpx2.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None

    def _ensure_client(self) -> httpx2.AsyncClient:
        # Built lazily inside the running loop: both objects bind to the loop that first uses them.
        if self._client is None:
            key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
            self._client = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self.config.timeout_s),
                limits=httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
                headers={"Authorization": f"Bearer {key}"} if key else {},
                # A proxy from the environment must not swallow requests to a local server.
                trust_env=not _is_loopback(self.endpoint),
            )
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._client

    def payload(self, request: JudgeRequest) -> dict:
        messages = []
        for m in request.messages:
            if m.images and self.takes_images:
                content = [{"type": "text", "text": m.text}] + [
                    {"type": "image_url", "image_url": {"url": image_data_url(img)}} for img in m.images
                ]
            else:
                content = m.text
            messages.append({"role": m.role, "content": content})
        body = {"model": self.config.model, "messages": messages, "max_tokens": request.max_new_tokens,
                "temperature": request.temperature}
        if self.config.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.config.backoff_max_s)
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        base = min(self.config.backoff_max_s, self.config.backoff_s * 2**attempt)
        return base * (0.5 + random.random() / 2)

    async def _post_once(self, client: httpx2.AsyncClient, body: dict) -> httpx2.Response:
        self.requests += 1
        # httpx's timeout bounds each read; wait_for bounds the whole request (a server
        # trickling bytes must not hold a slot forever).
        return await asyncio.wait_for(client.post(self.endpoint, json=body), self.config.timeout_s)

    async def complete(self, request: JudgeRequest) -> str:
        client = self._ensure_client()
        body = self.payload(request)
        last = "no attempt made"
        async with self._sem:
            for attempt in range(self.config.retries + 1):
                retry_after = None
                try:
                    resp = await self._post_once(client, body)
                except (httpx2.TransportError, asyncio.TimeoutError) as exc:
                    last = f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
                else:
                    if resp.status_code == 200:
                        try:
                            content = resp.json()["choices"][0]["message"]["content"]
                        except (ValueError, KeyError, IndexError, TypeError):
                            last = "malformed completion response"
                        else:
                            return content if isinstance(content, str) else ""
                    elif resp.status_code in RETRYABLE_STATUS:
                        last = f"HTTP {resp.status_code}"
                        retry_after = resp.headers.get("retry-after")
                    else:
                        raise FatalBackendError(f"HTTP {resp.status_code} from {self.endpoint}: {resp.text[:300]}")
                if attempt < self.config.retries:
                    await asyncio.sleep(self._backoff(attempt, retry_after))
        raise BackendError(f"{last} (after {self.config.retries + 1} tries)")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
