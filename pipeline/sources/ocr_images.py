"""``ocr_images``: real images labelled offline by RapidOCR (PP-OCRv4 shipped in its wheel).

Each image becomes an ``ocr`` sample whose conversation is built from the engine's
lines (text, box, confidence). Nothing is filtered at ingest beyond "no text found"
(reject ``ocr/no_text``): the quality measures go to ``extra`` so that selection is SQL:

    tessera shard DS --where "source = 'scans' AND
        CAST(json_extract(extra, '$.ocr_mean_confidence') AS DOUBLE) >= 0.9 AND
        CAST(json_extract(extra, '$.ocr_text_area_ratio') AS DOUBLE) >= 0.02"

Spec example::

    - {name: scans, type: ocr_images, path: data/scans, formats: [read_all, grounded]}
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline import storage
from pipeline.image_io import ImageDecodeError, decode_image
from pipeline.render.boxes import check_box_format, polygon_area
from pipeline.render.conversations import OCR_FORMATS, ocr_conversation
from pipeline.sources.base import Partition, RawInput, chunk
from pipeline.sources.image_folder import IMAGE_EXTENSIONS
from pipeline.sources.ocr_engine import ENGINE, run_ocr


@dataclass
class OCRImagesConfig:
    path: str
    recursive: bool = True
    formats: list[str] = field(default_factory=lambda: ["read_all", "grounded", "region_qa"])
    box_format: str = "absolute"
    text_score: float = 0.5  # the engine's own per-line floor; stricter selection is SQL on extra
    fix_spaces: bool = True  # put back spaces the Chinese recogniser drops between Latin words
    det_max_side: int = 960
    threads: int = 0  # onnxruntime threads per worker; 0 = its default (all cores)
    max_pixels: int = 64_000_000

    def __post_init__(self):
        bad = [f for f in self.formats if f not in OCR_FORMATS]
        if bad or not self.formats:
            raise ValueError(f"formats {bad} unknown; choose from {OCR_FORMATS}")
        check_box_format(self.box_format)


def ocr_measures(lines: list[dict], width: int, height: int) -> dict:
    """The filterable measures: mean/min line confidence and the share of the image covered by text."""
    confs = [l["confidence"] for l in lines]
    area = sum(polygon_area(l["quad"]) for l in lines)
    return {
        "ocr_mean_confidence": round(sum(confs) / len(confs), 4) if confs else 0.0,
        "ocr_min_confidence": round(min(confs), 4) if confs else 0.0,
        "ocr_text_area_ratio": round(min(1.0, area / (width * height)), 4),
        "ocr_n_lines": len(lines),
        "ocr_n_chars": sum(len(l["text"]) for l in lines),
    }


class OCRImagesSource:
    def __init__(self, name: str, config: OCRImagesConfig):
        self.name = name
        self.config = config

    def partitions(self, partition_size: int) -> list[Partition]:
        fs, root = storage.filesystem(self.config.path)
        if not fs.isdir(root):
            raise FileNotFoundError(f"source {self.name!r}: folder {self.config.path!r} does not exist")
        files = sorted(fs.find(root) if self.config.recursive else fs.ls(root, detail=False))
        images = [f for f in files if "." + f.rpartition(".")[2].lower() in IMAGE_EXTENSIONS]
        return [Partition(f"{self.name}-{i:05d}", self.name, tuple(part))
                for i, part in enumerate(chunk(images, partition_size))]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        fs, _ = storage.filesystem(self.config.path)
        for path in partition.args:
            try:
                with fs.open(path, "rb") as f:
                    data = f.read()
            except OSError as exc:
                yield RawInput(path, self.name, failure=("read", "missing_file", str(exc)))
                continue
            yield self.label(path, data)

    def label(self, ref: str, data: bytes) -> RawInput:
        cfg = self.config
        try:  # the same safe decode as ingest: OCR never sees a bomb or a truncated file
            img = decode_image(data, max_pixels=cfg.max_pixels)
        except ImageDecodeError as exc:
            return RawInput(ref, self.name, failure=("decode", exc.reason, exc.detail))
        try:
            found = run_ocr(img.image, text_score=cfg.text_score, fix_spaces=cfg.fix_spaces,
                            threads=cfg.threads, det_max_side=cfg.det_max_side)
        except Exception as exc:  # an engine failure on one image must not end the partition
            return RawInput(ref, self.name, failure=("ocr", "engine_error", f"{type(exc).__name__}: {exc}"))
        if not found:
            return RawInput(ref, self.name, failure=("ocr", "no_text", "the OCR engine found no text"))
        lines = [l.as_dict() for l in found]
        rng = random.Random(f"ocr_images:{ref}")
        fmt = rng.choice(cfg.formats)
        conversation = ocr_conversation(fmt, lines, img.width, img.height, rng, cfg.box_format)
        extra = {"labeller": ENGINE, "format": fmt, "box_format": cfg.box_format, "fix_spaces": cfg.fix_spaces,
                 **ocr_measures(lines, img.width, img.height), "lines": lines}
        return RawInput(ref, self.name, media=[data], text="\n".join(l["text"] for l in lines), extra=extra,
                        kind="ocr", conversation=conversation)
