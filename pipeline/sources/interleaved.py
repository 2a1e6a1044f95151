"""Interleaved image-text documents (OBELICS / MINT style): one multi-image sample each.

A manifest (JSONL, CSV, Parquet, optionally gzipped) holds one document per row, in
either layout:

    OBELICS: {"texts": ["A cat.", null, "It sleeps."], "images": [null, "cat.jpg", null], ...}
             (parallel lists; at each position exactly one of text/image is set)
    MINT:    {"content": [{"type": "text", "text": "A cat."},
                          {"type": "image", "path": "cat.jpg"},   # or "url": "https://..."
                          {"type": "text", "text": "It sleeps."}], ...}

Images are local paths (relative ones resolve against the manifest's folder, any
fsspec URI works) or http(s) URLs, fetched with the same client, limits and opt-out
rules as ``web_urls``. Other keys of the row are carried into ``Sample.extra``.

The sample (kind ``interleaved``): ``media`` holds the images in document order and
the conversation is ONE assistant turn holding the document, each image replaced by
an ``<image>`` placeholder at its position, blocks separated by newlines. That is
the pretraining layout: the trainer supervises assistant text, so the loss falls on
the document's text, with every image as input before the text that follows it
(InternVL/MMC4 style). ``Sample.text`` is the text blocks alone (rules, text dedup).
Each image gets ``max(1, max_tiles // n_images)`` tiles at most (the ingest step's
``TilingConfig.for_n_images``), as InternVL splits the budget.

An image that cannot be had (missing file, dead URL, not an image, opted out):
``missing_images: drop`` (default) keeps the document without it, as OBELICS itself
was built (web documents lose images all the time; throwing the text away with them
would lose most long documents) and lists it in ``extra["dropped_images"]``;
``missing_images: reject`` rejects the whole document with the image's reason. A
document left with no image is rejected ``read/no_images``. An image that arrives
but fails to decode (truncated, corrupt) rejects the document in the decode step:
by then the document is already one sample.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline import storage
from pipeline.sources.base import Partition, RawInput, chunk
from pipeline.sources.fetch import Fetcher, FetchOptions
from pipeline.sources.fetch_sniff import sniff_image
from pipeline.sources.fetch_stream import fetch_stream
from pipeline.sources.manifest import ManifestConfig, ManifestSource
from schemas import IMAGE_PLACEHOLDER, Turn

LAYOUT_KEYS = ("texts", "images", "content")


@dataclass(kw_only=True)
class InterleavedConfig(FetchOptions):
    path: str
    format: str = "auto"  # auto | jsonl | csv | parquet
    missing_images: str = "drop"  # drop | reject

    def __post_init__(self):
        super().__post_init__()
        if self.missing_images not in ("drop", "reject"):
            raise ValueError(f"missing_images must be drop or reject, not {self.missing_images!r}")


class Malformed(ValueError):
    pass


def parse_blocks(row: dict) -> list[tuple[str, str]]:
    """The document as ordered ("text", str) / ("image", ref) blocks; raises Malformed."""
    if "content" in row:
        blocks = []
        if not isinstance(row["content"], list):
            raise Malformed("content is not a list")
        for i, item in enumerate(row["content"]):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text" and isinstance(item.get("text"), str):
                blocks.append(("text", item["text"]))
            elif kind == "image" and isinstance(item.get("path") or item.get("url"), str):
                blocks.append(("image", item.get("path") or item.get("url")))
            else:
                raise Malformed(f"content[{i}] is neither a text nor an image with a path or url")
        return blocks
    texts, images = row.get("texts"), row.get("images")
    if not isinstance(texts, list) or not isinstance(images, list) or len(texts) != len(images):
        raise Malformed("need 'content', or 'texts' and 'images' lists of equal length")
    blocks = []
    for i, (text, image) in enumerate(zip(texts, images)):
        if (text is None) == (image is None) or not isinstance(text if image is None else image, str):
            raise Malformed(f"position {i}: exactly one of texts[{i}] / images[{i}] must be a string")
        blocks.append(("text", text) if image is None else ("image", image))
    return blocks


def build_document(blocks: list[tuple[str, str]]) -> tuple[str, list[Turn]]:
    """(Sample.text, conversation) of blocks whose images are all present."""
    pieces, texts = [], []
    for kind, value in blocks:
        if kind == "image":
            pieces.append(IMAGE_PLACEHOLDER)
        else:
            # A literal "<image>" in the text would be taken for an image slot.
            value = value.replace(IMAGE_PLACEHOLDER, "[image]").strip()
            if value:
                pieces.append(value)
                texts.append(value)
    return "\n".join(texts), [Turn("assistant", "\n".join(pieces))]


class InterleavedSource:
    def __init__(self, name: str, config: InterleavedConfig):
        self.name = name
        self.config = config
        self._manifest = ManifestSource(name, ManifestConfig(path=config.path, format=config.format))

    def partitions(self, partition_size: int) -> list[Partition]:
        n = len(self._manifest._rows())
        ranges = chunk(list(range(n)), partition_size)
        return [Partition(f"{self.name}-{i:05d}", self.name, (r[0], r[-1] + 1)) for i, r in enumerate(ranges)]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        start, stop = partition.args
        docs = []
        for i, row in enumerate(self._manifest._rows()[start:stop], start):
            ref = f"{self.config.path}#{i}"
            try:
                if isinstance(row, str):
                    if not row.strip():
                        continue  # a trailing newline is not a row
                    row = json.loads(row)
                if not isinstance(row, dict):
                    raise Malformed("row is not an object")
                for key in LAYOUT_KEYS:  # CSV cells hold the lists as JSON text
                    if isinstance(row.get(key), str):
                        row[key] = json.loads(row[key])
                docs.append((ref, row, parse_blocks(row)))
            except (ValueError, AttributeError) as exc:
                yield RawInput(ref, self.name, kind="interleaved", failure=("read", "malformed_row", str(exc)))
        for (ref, row, blocks), images in fetch_stream(docs, self._fetch_images, self.config):
            yield self._to_input(ref, row, blocks, images)

    async def _fetch_images(self, fetcher: Fetcher, doc) -> list[tuple[bytes | None, str, str]]:
        """(bytes, stage, reason/detail) per image block, fetched concurrently."""
        _, _, blocks = doc
        return await asyncio.gather(*(self._one_image(fetcher, v) for k, v in blocks if k == "image"))

    async def _one_image(self, fetcher: Fetcher, ref: str) -> tuple[bytes | None, str, str]:
        if ref.startswith(("http://", "https://")):
            result = await fetcher.fetch(ref)
            return (result.data, "", "") if result.ok else (None, "fetch", f"{result.reason}: {result.detail}")
        base = self.config.path.rsplit("/", 1)[0] if "/" in self.config.path else "."
        uri = ref if ("://" in ref or ref.startswith("/")) else f"{base}/{ref}"
        try:
            data = await asyncio.to_thread(storage.read_bytes, uri)
        except (OSError, ValueError) as exc:
            return None, "read", f"missing_image: {type(exc).__name__}: {exc}"
        if sniff_image(data[:16]) is None:
            return None, "read", f"not_an_image: {len(data)} bytes starting {data[:16]!r}"
        return data, "", ""

    def _to_input(self, ref: str, row: dict, blocks, images) -> RawInput:
        extra = {k: v for k, v in row.items() if k not in LAYOUT_KEYS}
        kept, media, dropped = [], [], []
        image_iter = iter(images)
        for position, (kind, value) in enumerate(blocks):
            if kind == "text":
                kept.append((kind, value))
                continue
            data, stage, why = next(image_iter)
            if data is not None:
                kept.append((kind, value))
                media.append(data)
                continue
            reason, _, detail = why.partition(": ")
            if self.config.missing_images == "reject":
                return RawInput(ref, self.name, kind="interleaved",
                                failure=(stage, reason, f"image at position {position} ({value}): {detail}"))
            dropped.append({"position": position, "ref": value, "reason": reason})
        if not media:
            detail = f"all {len(dropped)} images unavailable" if dropped else "document has no image"
            return RawInput(ref, self.name, kind="interleaved", failure=("read", "no_images", detail))
        if dropped:
            extra["dropped_images"] = dropped
        text, conversation = build_document(kept)
        return RawInput(ref, self.name, media=media, text=text, extra=extra, kind="interleaved",
                        conversation=conversation)
