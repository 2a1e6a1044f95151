"""``synthetic_ocr``: rendered text images with exact line and word boxes.

Samples are generated in the partition reader from ``(seed, index)`` alone, so a
partition re-run (resume, retry) produces byte-identical images and the same
sample ids. Fonts are restricted to faces whose glyphs cover the language's whole
character set: the label never holds a character drawn as an empty box.

Spec example::

    - {name: synth-ocr, type: synthetic_ocr, count: 2000, seed: 1, languages: [en, zh, ja],
       formats: [read_all, grounded, region_qa], granularity: line, box_format: absolute}
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline.render import fonts as fontlib
from pipeline.render import text_corpus
from pipeline.render.boxes import check_box_format
from pipeline.render.conversations import OCR_FORMATS, ocr_conversation
from pipeline.sources.base import Partition, RawInput, chunk
from pipeline.sources.ocr_render import RenderOptions, render_text_image


@dataclass
class SyntheticOCRConfig:
    count: int = 100
    seed: int = 0
    languages: list[str] = field(default_factory=lambda: ["en", "fr", "de", "zh", "ja", "ko"])
    fonts: list[str] = field(default_factory=list)  # family substrings, e.g. ["DejaVu", "Noto Serif"]; [] = all
    formats: list[str] = field(default_factory=lambda: ["read_all", "grounded", "region_qa"])
    paragraph_ratio: float = 0.5  # share of samples that are paragraphs, the rest 1-3 lines
    granularity: str = "line"  # "line" or "word": the boxes of the grounded format
    box_format: str = "absolute"  # or "norm1000"
    width: list[int] = field(default_factory=lambda: [320, 800])
    height: list[int] = field(default_factory=lambda: [96, 640])
    font_size: list[int] = field(default_factory=lambda: [16, 44])
    max_rotation: float = 4.0
    blur_prob: float = 0.3
    noise_prob: float = 0.4
    jpeg_prob: float = 0.3

    def __post_init__(self):
        bad = [l for l in self.languages if l not in text_corpus.LANGUAGES]
        if bad or not self.languages:
            raise ValueError(f"languages {bad} unknown; choose from {text_corpus.LANGUAGES}")
        bad = [f for f in self.formats if f not in OCR_FORMATS]
        if bad or not self.formats:
            raise ValueError(f"formats {bad} unknown; choose from {OCR_FORMATS}")
        if self.granularity not in ("line", "word"):
            raise ValueError("granularity must be 'line' or 'word'")
        check_box_format(self.box_format)
        for name in ("width", "height", "font_size"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
                raise ValueError(f"{name} must be [min, max] with 0 < min <= max")
        if self.count < 0:
            raise ValueError("count must be >= 0")


class SyntheticOCRSource:
    def __init__(self, name: str, config: SyntheticOCRConfig):
        self.name = name
        self.config = config
        self.options = RenderOptions(
            width=tuple(config.width), height=tuple(config.height), font_size=tuple(config.font_size),
            max_rotation=config.max_rotation, blur_prob=config.blur_prob, noise_prob=config.noise_prob,
            jpeg_prob=config.jpeg_prob,
        )

    def partitions(self, partition_size: int) -> list[Partition]:
        ranges = chunk(list(range(self.config.count)), partition_size)
        return [Partition(f"{self.name}-{i:05d}", self.name, (r[0], r[-1] + 1)) for i, r in enumerate(ranges)]

    def _faces(self, lang: str) -> list:
        """Faces of ``lang`` matching the ``fonts`` filter that draw its whole character set."""
        faces = [f for f in fontlib.faces_for(lang)
                 if not self.config.fonts or any(s.lower() in f.family.lower() for s in self.config.fonts)]
        return [f for f in faces if fontlib.covers(f, text_corpus.charset(lang))]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        start, stop = partition.args
        for index in range(start, stop):
            yield self.generate(index)

    def generate(self, index: int) -> RawInput:
        cfg = self.config
        ref = f"synthetic_ocr://{self.name}/seed={cfg.seed}/{index}"
        rng = random.Random(f"synthetic_ocr:{cfg.seed}:{index}")  # str seeds hash stably across runs
        lang = rng.choice(cfg.languages)
        faces = self._faces(lang)
        if not faces:
            return RawInput(ref, self.name, failure=("render", "no_font", f"no installed font covers {lang!r}"))
        face = rng.choice(faces)
        image = render_text_image(lang, face, rng, self.options, paragraph=rng.random() < cfg.paragraph_ratio)
        if not image.lines:
            return RawInput(ref, self.name, failure=("render", "no_text", "no line fitted the canvas"))
        fmt = rng.choice(cfg.formats)
        conversation = ocr_conversation(fmt, image.lines, image.width, image.height, rng,
                                        cfg.box_format, cfg.granularity)
        text = "\n".join(l["text"] for l in image.lines)
        extra = {"generator": "synthetic_ocr", "seed": cfg.seed, "index": index, "format": fmt,
                 "box_format": cfg.box_format, **image.params, "lines": image.lines}
        return RawInput(ref, self.name, media=[image.data], text=text, extra=extra, kind="ocr",
                        conversation=conversation)
