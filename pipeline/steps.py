"""Ingest steps: small pieces with one interface, run in order on each input.

A step takes a ``Draft`` (an input on its way to becoming a catalog ``Sample``) and
returns it enriched, or raises ``Rejected`` with the stage and reason that end up in
the rejects table. Steps are constructed once per worker (models and tokenizers load
once) and are plain callables, so a pipeline is a list of them (as in datatrove).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Protocol

from filters.dedup import normalize_text, phash64
from filters.rules import RuleConfig, flags, measure
from model.chat_template import caption_conversation, encode_conversation, image_token_count
from model.tokenizer import load_counting_tokenizer
from pipeline import storage
from pipeline.dataset import Dataset
from pipeline.image_io import DecodedImage, ImageDecodeError, decode_image
from pipeline.sources.base import RawInput
from pipeline.tiling import TilingConfig, count_tiles
from schemas import IMAGE_PLACEHOLDER, MediaRef, Sample


class Rejected(Exception):
    def __init__(self, stage: str, reason: str, detail: str = ""):
        super().__init__(f"{stage}/{reason}: {detail}")
        self.stage, self.reason, self.detail = stage, reason, detail


@dataclass
class Draft:
    raw: RawInput
    job_id: str
    images: list[DecodedImage] = field(default_factory=list)
    media: list[MediaRef] = field(default_factory=list)
    sample: Sample | None = None


class Step(Protocol):
    name: str

    def __call__(self, draft: Draft) -> Draft: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# At ingest the decoded pixels feed only the perceptual hash (a 32x32 reduction), so a
# JPEG is decoded at the DCT scale that keeps its shorter side >= this (1/2..1/8):
# pHash moves ~1.4 of 64 bits against a full-resolution decode, the same way for every
# source. Validation (whole stream decoded) and the full width/height are unchanged.
DRAFT_MIN_SIDE = 256


class DecodeImages:
    """Safe decode of every image; the only step allowed to drop an input (to rejects)."""

    name = "decode"

    def __init__(self, max_pixels: int, min_side: int, draft_min_side: int | None = DRAFT_MIN_SIDE):
        self.max_pixels, self.min_side, self.draft_min_side = max_pixels, min_side, draft_min_side

    def __call__(self, draft: Draft) -> Draft:
        if not draft.raw.media:
            raise Rejected("decode", "no_media", "input has no image")
        try:
            draft.images = [
                decode_image(b, max_pixels=self.max_pixels, min_side=self.min_side, draft_min_side=self.draft_min_side)
                for b in draft.raw.media
            ]
        except ImageDecodeError as exc:
            raise Rejected("decode", exc.reason, exc.detail) from exc
        return draft


class StoreMedia:
    """Hash, perceptual-hash and tile each image; write its original bytes once to the payload store."""

    name = "media"

    def __init__(self, dataset: Dataset, tiling: TilingConfig):
        self.dataset, self.tiling = dataset, tiling

    def __call__(self, draft: Draft) -> Draft:
        tiling = self.tiling.for_n_images(len(draft.images))
        draft.media = []
        for data, img in zip(draft.raw.media, draft.images):
            sha = sha256_hex(data)
            ext = {"jpeg": "jpg"}.get(img.format, img.format or "bin")
            rel = self.dataset.payload_path(sha, ext)
            uri = self.dataset.uri(rel)
            if not storage.exists(uri):  # content addressed: identical bytes are stored once
                storage.atomic_write_bytes(uri, data)
            draft.media.append(
                MediaRef(
                    uri=rel, sha256=sha, format=img.format, width=img.width, height=img.height,
                    nbytes=len(data), phash=phash64(img.image), n_tiles=count_tiles(img.width, img.height, tiling),
                )
            )
        for ref, info in zip(draft.media, draft.raw.media_info):
            for key, value in info.items():  # source-known fields: frame kind, timestamp
                setattr(ref, key, value)
        return draft


class BuildSample:
    """Content hash, stable id, the caption as a ChatML conversation, and its token counts."""

    name = "sample"

    def __init__(self, tokenizer_dir: str, tiling: TilingConfig):
        self.tokenizer = load_counting_tokenizer(tokenizer_dir)  # no transformers import per worker
        self.tiling = tiling

    def __call__(self, draft: Draft) -> Draft:
        raw = draft.raw
        content_hash = sha256_hex("\n".join([m.sha256 for m in draft.media] + [normalize_text(raw.text)]).encode())
        sample_id = sha256_hex(f"{raw.source}\n{raw.input_ref}\n{content_hash}".encode())[:32]
        conversation = raw.conversation or caption_conversation(raw.text, sample_id, n_images=len(draft.media))
        placeholders = sum(t.content.count(IMAGE_PLACEHOLDER) for t in conversation)
        if placeholders != len(draft.media):
            raise Rejected("normalize", "image_count_mismatch",
                           f"conversation has {placeholders} {IMAGE_PLACEHOLDER} placeholders for {len(draft.media)} images")
        # Counted on the very sequence the trainer builds: text + image tokens == its length.
        text_tokens = encode_conversation(
            self.tokenizer, conversation, [m.n_tiles for m in draft.media], self.tiling.tokens_per_tile
        ).text_tokens
        draft.sample = Sample(
            sample_id=sample_id, content_hash=content_hash, source=raw.source, kind=raw.kind,
            job_id=draft.job_id, input_ref=raw.input_ref, text=raw.text, conversation=conversation,
            media=draft.media, n_tiles=sum(m.n_tiles for m in draft.media), text_tokens=text_tokens,
            image_tokens=image_token_count([m.n_tiles for m in draft.media], self.tiling.tokens_per_tile),
            extra=raw.extra, parent_ids=raw.parent_ids,
        )
        return draft


class ApplyRules:
    """Record every rule filter's measurement and which thresholds failed; drop nothing."""

    name = "rules"

    def __init__(self, config: RuleConfig):
        self.config = config

    def __call__(self, draft: Draft) -> Draft:
        sample = draft.sample
        sample.scores = measure(sample.text, [(m.width, m.height) for m in sample.media], self.config)
        sample.rule_flags = flags(sample.scores, self.config)
        return draft


def run_steps(raw: RawInput, job_id: str, steps: list[Step], seconds: dict[str, float] | None = None) -> Sample:
    """Run ``steps`` on one input; raises Rejected. ``seconds`` accumulates time per step."""
    if raw.failure:
        raise Rejected(*raw.failure)
    draft = Draft(raw, job_id)
    for step in steps:
        start = time.perf_counter()
        try:
            draft = step(draft)
        except Rejected:
            raise
        except Exception as exc:  # a bug or an unforeseen input must not kill the partition
            raise Rejected(step.name, "error", f"{type(exc).__name__}: {exc}") from exc
        finally:
            if seconds is not None:
                seconds[step.name] = seconds.get(step.name, 0.0) + time.perf_counter() - start
    return draft.sample
