"""The scorer interface: model-based measurements written as catalog score tables.

A scorer is built once per worker (its model loads once) and called on batches of
``ScoreInput``. It returns one row of its own columns per input, every column named
with the scorer's prefix (``clip_score``, ``judge_quality``...); ``pipeline.scores``
writes them beside the catalog and the ``samples`` view joins them by sample id.
A scorer that cannot score an input returns None for its columns and says why in a
``<prefix>_error`` column, rather than failing the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
from PIL import Image

from schemas import MediaRef, Turn


@dataclass
class ScoreInput:
    sample_id: str
    kind: str
    text: str
    conversation: list[Turn]
    media: list[MediaRef]
    # Decoded RGB images (EXIF applied), in media order; empty when the scorer needs none.
    images: list[Image.Image] = field(default_factory=list)


class Scorer(Protocol):
    name: str  # column prefix and score-table folder: [a-z][a-z0-9_]*
    version: str  # bump when outputs change, so cached or stored scores are not mixed
    needs_images: bool  # whether the runner must decode media from the payload store

    def schema(self) -> pa.Schema:
        """Arrow schema of the rows ``score`` returns (without sample_id)."""
        ...

    def score(self, batch: list[ScoreInput]) -> list[dict[str, Any]]:
        """One dict of prefixed columns per input, in order."""
        ...
