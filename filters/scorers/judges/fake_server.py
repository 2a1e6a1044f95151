"""A scripted OpenAI-compatible chat server on loopback, for tests and benchmarks.

It binds 127.0.0.1 on a free port, serves ``POST /v1/chat/completions`` from a thread
pool (HTTP/1.1 keep-alive, like vLLM), and answers by a ``responder``. The default
responder reads directives planted in the sample text, so one corpus exercises every
path of a judge::

    JUDGE:GOOD       a valid JSON judgment (scores derived from the text length)
    JUDGE:GARBAGE    prose, never JSON
    JUDGE:FIXABLE    prose first, a valid judgment once the judge sends its correction
    JUDGE:FLAKY      HTTP 500 on the first request for this sample, then valid
    JUDGE:DOWN       HTTP 503 always
    JUDGE:SLOW       sleeps ``slow_s`` before answering (for timeouts)

It never leaves the machine: nothing but 127.0.0.1 is ever bound or contacted.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message text (status 200)
    delay_s: float = 0.0
    raw_body: bytes | None = None  # send these bytes instead of a completion object


Responder = Callable[[dict, "FakeOpenAIServer"], Reply]
_DIRECTIVE = re.compile(r"JUDGE:([A-Z]+)")
CRITERIA = {"caption": ["text_quality", "image_text_relevance", "information_complementarity",
                        "information_density_balance"], "qa": ["correctness", "completeness", "relevance"]}


def _texts(body: dict) -> list[str]:
    out = []
    for m in body.get("messages", []):
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out.extend(p.get("text", "") for p in c if p.get("type") == "text")
    return out


def valid_answer(body: dict) -> str:
    """A judgment with every criterion the system prompt asks for, 1-5 from the sample's length."""
    system = _texts(body)[0] if body.get("messages") else ""
    keys = [k for keys in CRITERIA.values() for k in keys if f"- {k}:" in system]
    user = _texts(body)[1] if len(_texts(body)) > 1 else ""
    return json.dumps({k: 1 + (len(user) + i) % 5 for i, k in enumerate(keys)})


def scripted(body: dict, server: "FakeOpenAIServer") -> Reply:
    texts = _texts(body)
    sample = texts[1] if len(texts) > 1 else ""
    found = _DIRECTIVE.search(sample)
    directive = found.group(1) if found else "GOOD"
    n = server.count(sample)  # how many requests this sample has made, this one included
    if directive == "GARBAGE":
        return Reply(content="I think this sample is rather nice, maybe a four?")
    if directive == "FIXABLE":
        return Reply(content=valid_answer(body) if len(body["messages"]) > 2 else "Score: 4/5")
    if directive == "FLAKY" and n == 1:
        return Reply(status=500, content="overloaded")
    if directive == "DOWN":
        return Reply(status=503, content="down")
    if directive == "SLOW":
        return Reply(content=valid_answer(body), delay_s=server.slow_s)
    return Reply(content=valid_answer(body), delay_s=server.latency_s)


class FakeOpenAIServer:
    def __init__(self, responder: Responder = scripted, latency_s: float = 0.0, slow_s: float = 5.0,
                 model: str = "fake-judge"):
        self.responder = responder
        self.model = model
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def count(self, sample_text: str) -> int:
        with self._lock:
            return self._counts[sample_text]

    def _record(self, body: dict) -> None:
        texts = _texts(body)
        with self._lock:
            self.requests.append(body)
            self._counts[texts[1] if len(texts) > 1 else ""] += 1

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeOpenAIServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is exercised
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms ACK stall

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                if body.get("model") != server.model:
                    return self._send(404, b'{"error": "model not found"}')
                server._record(body)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.responder(body, server)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                if reply.raw_body is not None:
                    return self._send(reply.status, reply.raw_body)
                if reply.status != 200:
                    return self._send(reply.status, json.dumps({"error": reply.content}).encode())
                completion = {"id": "fake", "object": "chat.completion", "model": body.get("model"),
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": reply.content}}]}
                self._send(200, json.dumps(completion).encode())

            def _send(self, status: int, data: bytes):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to tell it

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 resets connections at high concurrency

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="fake-openai").start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def main() -> None:
    """Serve on 127.0.0.1 until killed, printing the URL (benchmarks run it in its own process)."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency-ms", type=float, default=0.0)
    args = p.parse_args()
    with FakeOpenAIServer(latency_s=args.latency_ms / 1000) as server:
        print(server.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
