"""``html_documents``: HTML pages rendered in contained headless Chromium, with DOM ground truth.

Two inputs, in one source: synthetic documents generated from ``(seed, index)`` and a
folder of real user HTML files (``path``). Each page becomes one ``document`` sample:
the screenshot, and a conversation in one of the formats ``html`` (Qwen2.5-VL omni
document: HTML with a data-bbox per element), ``read_all`` (visible text) or
``grounded`` (layout elements with boxes). Pages that hang or crash are retried,
then rejected at stage ``render`` (reasons ``timeout``, ``crash``, ``error``).

Spec example::

    - {name: docs, type: html_documents, count: 500, seed: 3, formats: [html, grounded],
       device_scale_factor: 1.5, pages_per_context: 50, page_timeout_s: 15}
    - {name: user-docs, type: html_documents, path: data/html, viewport_width: 1024}
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline import storage
from pipeline.render import text_corpus
from pipeline.render.boxes import check_box_format
from pipeline.render.browser import BrowserConfig, RenderError, shared_pool
from pipeline.render.conversations import HTML_FORMATS, document_conversation
from pipeline.sources.base import Partition, RawInput, chunk, decode_text
from pipeline.sources.html_generator import generate_document

HTML_EXTENSIONS = (".html", ".htm", ".xhtml")


@dataclass
class HTMLDocumentsConfig:
    path: str | None = None  # a folder of user .html files (searched recursively)
    count: int = 0  # synthetic documents
    seed: int = 0
    languages: list[str] = field(default_factory=lambda: ["en", "fr", "de", "es", "zh", "ja", "ko"])
    formats: list[str] = field(default_factory=lambda: ["html", "read_all", "grounded"])
    box_format: str = "absolute"  # or "norm1000"
    viewport_width: int = 900  # user files; synthetic pages choose their own width
    viewport_height: int = 1200
    device_scale_factor: float = 1.0
    pages_per_context: int = 50
    page_timeout_s: float = 15.0
    retries: int = 1
    javascript: bool = True
    max_page_height: int = 3000
    executable_path: str = "/usr/bin/chromium"
    keep_source_html: bool = True  # the page's own HTML into extra.source_html

    def __post_init__(self):
        if self.path is None and self.count <= 0:
            raise ValueError("give a folder of HTML files (path) or a number of synthetic documents (count)")
        bad = [f for f in self.formats if f not in HTML_FORMATS]
        if bad or not self.formats:
            raise ValueError(f"formats {bad} unknown; choose from {HTML_FORMATS}")
        bad = [l for l in self.languages if l not in text_corpus.LANGUAGES]
        if bad or not self.languages:
            raise ValueError(f"languages {bad} unknown; choose from {text_corpus.LANGUAGES}")
        check_box_format(self.box_format)
        if self.page_timeout_s <= 0 or self.retries < 0 or self.pages_per_context < 1:
            raise ValueError("page_timeout_s > 0, retries >= 0 and pages_per_context >= 1 are required")

    def browser(self) -> BrowserConfig:
        return BrowserConfig(
            executable_path=self.executable_path, device_scale_factor=self.device_scale_factor,
            pages_per_context=self.pages_per_context, page_timeout_s=self.page_timeout_s, retries=self.retries,
            javascript=self.javascript, max_page_height=self.max_page_height)


class HTMLDocumentsSource:
    def __init__(self, name: str, config: HTMLDocumentsConfig):
        self.name = name
        self.config = config

    def _files(self) -> list[str]:
        if self.config.path is None:
            return []
        fs, root = storage.filesystem(self.config.path)
        if not fs.isdir(root):
            raise FileNotFoundError(f"source {self.name!r}: folder {self.config.path!r} does not exist")
        return sorted(f for f in fs.find(root) if f.lower().endswith(HTML_EXTENSIONS))

    def partitions(self, partition_size: int) -> list[Partition]:
        entries = [("synthetic", i) for i in range(self.config.count)] + [("file", f) for f in self._files()]
        return [Partition(f"{self.name}-{i:05d}", self.name, tuple(part))
                for i, part in enumerate(chunk(entries, partition_size))]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        pool = shared_pool(self.config.browser())  # launched once per worker process, on first page
        for kind, arg in partition.args:
            yield self._synthetic(pool, arg) if kind == "synthetic" else self._file(pool, arg)

    def _synthetic(self, pool, index: int) -> RawInput:
        ref = f"html_documents://{self.name}/seed={self.config.seed}/{index}"
        rng = random.Random(f"html_documents:{self.config.seed}:{index}")
        html, meta = generate_document(rng, self.config.languages)
        return self._render(pool, ref, html, meta["page_width"], rng, {"generator": "html_documents", **meta})

    def _file(self, pool, path: str) -> RawInput:
        fs, _ = storage.filesystem(self.config.path)
        try:
            with fs.open(path, "rb") as f:
                html, failed = decode_text(f.read(), path, self.name)
        except OSError as exc:
            return RawInput(path, self.name, failure=("read", "missing_file", str(exc)))
        if failed:
            return failed
        rng = random.Random(f"html_documents:{self.config.seed}:{path}")
        return self._render(pool, path, html, self.config.viewport_width, rng, {"generator": "user_html"})

    def _render(self, pool, ref: str, html: str, width: int, rng: random.Random, extra: dict) -> RawInput:
        cfg = self.config
        try:
            page = pool.render(html, width, cfg.viewport_height, cfg.box_format)
        except RenderError as exc:
            return RawInput(ref, self.name, failure=("render", exc.reason, exc.detail))
        if not page.text.strip() and not page.elements:
            return RawInput(ref, self.name, failure=("render", "empty_page", "nothing visible was rendered"))
        fmt = rng.choice(cfg.formats)
        elements = [e for e in page.elements if e["box"][2] > e["box"][0] and e["box"][3] > e["box"][1]]
        conversation = document_conversation(fmt, page.omni_html, page.text, elements, page.width, page.height, rng,
                                             cfg.box_format)
        extra.update(format=fmt, box_format=cfg.box_format, device_scale_factor=cfg.device_scale_factor,
                     viewport_width=width, doc_height_css=page.doc_height, truncated=page.doc_height > cfg.max_page_height,
                     blocked_requests=page.blocked, render_attempts=page.attempts, elements=elements)
        if cfg.keep_source_html:
            extra["source_html"] = html
        return RawInput(ref, self.name, media=[page.png], text=page.text, extra=extra, kind="document",
                        conversation=conversation)
