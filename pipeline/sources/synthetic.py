"""``synthetic``: N tiny image-caption pairs generated from ``(seed, index)``, for scale tests.

Nothing is listed or stored up front: partitions are index ranges, so a source of a
million inputs costs nothing to list, and a partition re-run (resume, retry) yields
byte-identical inputs with the same sample ids. Every image is distinct (its pixels
come from a per-index random generator, and the index is written into the first
pixels), every caption is a per-index word sequence, and duplicates are planted on
purpose so dedup has work to do at scale:

- every ``text_duplicate_every``-th input repeats the caption of the input before it
  (an exact-text duplicate with a different image),
- every ``image_duplicate_every``-th input repeats the image of the input before it
  (an exact-media duplicate with a different caption).

Spec example::

    - {name: synth, type: synthetic, count: 1000000, seed: 0, image_size: 24, format: png}
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.sources.base import Partition, RawInput

# Plain words, so captions tokenise like text and pass the default rule filters.
WORDS = (
    "a an the red blue green small large old new bright dark quiet busy wooden metal glass stone "
    "cat dog bird horse boat car bicycle tree flower house bridge river mountain street window door "
    "table chair lamp book cup plate field beach forest city garden road sky cloud sun moon "
    "sits stands runs waits rests shines leans floats grows hangs near under beside behind above "
    "with on in at morning evening winter summer rain snow light shadow water grass sand"
).split()


@dataclass
class SyntheticConfig:
    count: int = 1000
    seed: int = 0
    image_size: int = 24  # pixels per side: tiny, one tile each
    format: str = "png"  # "png" or "jpeg"
    min_words: int = 8
    max_words: int = 16
    text_duplicate_every: int = 50  # 0: no planted caption duplicates
    image_duplicate_every: int = 0  # 0: no planted image duplicates

    def __post_init__(self):
        if self.count < 0:
            raise ValueError("count must be >= 0")
        if not 8 <= self.image_size <= 512:
            raise ValueError("image_size must be in [8, 512]")
        if self.format not in ("png", "jpeg"):
            raise ValueError("format must be 'png' or 'jpeg'")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError("need 1 <= min_words <= max_words")
        if self.text_duplicate_every < 0 or self.image_duplicate_every < 0:
            raise ValueError("*_duplicate_every must be >= 0")


def _planted(index: int, every: int) -> bool:
    return every > 0 and index > 0 and index % every == every - 1


class SyntheticSource:
    def __init__(self, name: str, config: SyntheticConfig):
        self.name = name
        self.config = config

    def partitions(self, partition_size: int) -> list[Partition]:
        n = self.config.count
        return [
            Partition(f"{self.name}-{i:06d}", self.name, (start, min(start + partition_size, n)))
            for i, start in enumerate(range(0, n, partition_size))
        ]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        start, stop = partition.args
        for index in range(start, stop):
            yield self.generate(index)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, index])  # stable across processes and runs

    def caption(self, index: int) -> str:
        cfg = self.config
        if _planted(index, cfg.text_duplicate_every):
            index -= 1
        rng = self._rng(index)
        n = int(rng.integers(cfg.min_words, cfg.max_words + 1))
        return " ".join([WORDS[i] for i in rng.integers(0, len(WORDS), n).tolist()]) + "."

    def image(self, index: int) -> bytes:
        cfg = self.config
        if _planted(index, cfg.image_duplicate_every):
            index -= 1
        rng = self._rng(index)
        s = cfg.image_size
        # A smooth random gradient plus noise: compresses like a small photo, not like static.
        base = rng.integers(0, 256, (2, 2, 3)).astype(np.float32)
        t = np.linspace(0.0, 1.0, s, dtype=np.float32)
        top = base[0, 0] + (base[0, 1] - base[0, 0]) * t[:, None]
        bottom = base[1, 0] + (base[1, 1] - base[1, 0]) * t[:, None]
        pixels = top[None, :, :] + (bottom - top)[None, :, :] * t[:, None, None]
        pixels += rng.normal(0.0, 12.0, pixels.shape)
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
        pixels[0, :8, 0] = np.frombuffer(index.to_bytes(8, "big"), np.uint8)  # distinct by construction
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, format=cfg.format.upper(), **({"quality": 90} if cfg.format == "jpeg" else {}))
        return buf.getvalue()

    def generate(self, index: int) -> RawInput:
        cfg = self.config
        ref = f"synthetic://{self.name}/seed={cfg.seed}/{index}"
        return RawInput(ref, self.name, media=[self.image(index)], text=self.caption(index),
                        extra={"generator": "synthetic", "seed": cfg.seed, "index": index})
