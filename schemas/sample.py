"""The catalog row: one training sample, whatever its source type.

Every stage (ingest, filters, dedup, scorers, shard, trainer) reads and writes this
one data model. A sample is a conversation (ChatML turns whose ``<image>``
placeholders refer, in order, to ``media``) plus the measurements made on it.
Scores are stored, never applied: selection happens later with SQL.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from schemas.version import with_version

# Source types. Every future source writes rows of this same schema.
KINDS = ("image_text", "interleaved", "ocr", "document", "video")

# The placeholder a conversation uses for "the next media item goes here".
IMAGE_PLACEHOLDER = "<image>"


@dataclass
class MediaRef:
    """One image (or video frame) of a sample; its bytes live once in the payload store."""

    uri: str  # payload-store path relative to the dataset root (content addressed)
    sha256: str  # of the original encoded bytes
    format: str  # "jpeg", "png", ... as decoded
    width: int
    height: int
    nbytes: int
    phash: int  # 64-bit DCT perceptual hash, unsigned
    n_tiles: int  # dynamic-tiling tile count, thumbnail included
    kind: str = "image"  # "image" or "video_frame"
    timestamp_s: float | None = None  # absolute time of a video frame


@dataclass
class Turn:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass
class RuleScores:
    """Measurements of the rule filters (``filters/``). Raw values, not verdicts."""

    caption_words: int = 0
    caption_chars: int = 0
    nonprintable_ratio: float = 0.0
    garbled_ratio: float = 0.0
    repeated_ngram_ratio: float = 0.0
    repeated_line_ratio: float = 0.0
    min_side: int = 0
    max_side: int = 0
    aspect_ratio: float = 0.0  # max(w/h, h/w) of the most extreme image, >= 1


@dataclass
class Sample:
    sample_id: str  # stable id: hash of the input reference and the content
    content_hash: str  # hash of media sha256s + normalised text: equal content, equal hash
    source: str  # the source's name in the ingestion spec
    kind: str  # one of KINDS
    job_id: str
    input_ref: str  # lineage: where the sample came from (file, tar member, manifest row)
    text: str  # the caption or primary text ("" when none)
    conversation: list[Turn]
    media: list[MediaRef]
    n_tiles: int
    text_tokens: int
    image_tokens: int
    scores: RuleScores = field(default_factory=RuleScores)
    rule_flags: list[str] = field(default_factory=list)  # names of rule thresholds failed
    extra: dict[str, Any] = field(default_factory=dict)  # input columns carried through
    parent_ids: list[str] = field(default_factory=list)  # for samples derived from others

    @property
    def total_tokens(self) -> int:
        return self.text_tokens + self.image_tokens

    def to_row(self) -> dict[str, Any]:
        row = {
            "sample_id": self.sample_id,
            "content_hash": self.content_hash,
            "source": self.source,
            "kind": self.kind,
            "job_id": self.job_id,
            "input_ref": self.input_ref,
            "text": self.text,
            "conversation": [asdict(t) for t in self.conversation],
            "media": [asdict(m) for m in self.media],
            "n_images": len(self.media),
            "n_tiles": self.n_tiles,
            "text_tokens": self.text_tokens,
            "image_tokens": self.image_tokens,
            "total_tokens": self.total_tokens,
            "rule_flags": list(self.rule_flags),
            "passes_rules": not self.rule_flags,
            "extra": json.dumps(self.extra, sort_keys=True, default=str),
            "parent_ids": list(self.parent_ids),
        }
        row.update(asdict(self.scores))
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Sample":
        score_names = {f.name for f in RULE_SCORE_FIELDS}
        return cls(
            sample_id=row["sample_id"],
            content_hash=row["content_hash"],
            source=row["source"],
            kind=row["kind"],
            job_id=row["job_id"],
            input_ref=row["input_ref"],
            text=row["text"] or "",
            conversation=[Turn(**t) for t in row["conversation"] or []],
            media=[MediaRef(**m) for m in row["media"] or []],
            n_tiles=row["n_tiles"],
            text_tokens=row["text_tokens"],
            image_tokens=row["image_tokens"],
            scores=RuleScores(**{k: row[k] for k in score_names if k in row}),
            rule_flags=list(row.get("rule_flags") or []),
            extra=json.loads(row.get("extra") or "{}"),
            parent_ids=list(row.get("parent_ids") or []),
        )


MEDIA_TYPE = pa.struct(
    [
        ("uri", pa.string()),
        ("sha256", pa.string()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("nbytes", pa.int64()),
        ("phash", pa.uint64()),
        ("n_tiles", pa.int32()),
        ("kind", pa.string()),
        ("timestamp_s", pa.float64()),
    ]
)
TURN_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

RULE_SCORE_FIELDS = [
    pa.field("caption_words", pa.int32()),
    pa.field("caption_chars", pa.int32()),
    pa.field("nonprintable_ratio", pa.float32()),
    pa.field("garbled_ratio", pa.float32()),
    pa.field("repeated_ngram_ratio", pa.float32()),
    pa.field("repeated_line_ratio", pa.float32()),
    pa.field("min_side", pa.int32()),
    pa.field("max_side", pa.int32()),
    pa.field("aspect_ratio", pa.float32()),
]

SAMPLE_SCHEMA = with_version(
    pa.schema(
        [
            pa.field("sample_id", pa.string(), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("job_id", pa.string(), nullable=False),
            pa.field("input_ref", pa.string(), nullable=False),
            pa.field("text", pa.string()),
            pa.field("conversation", pa.list_(TURN_TYPE)),
            pa.field("media", pa.list_(MEDIA_TYPE)),
            pa.field("n_images", pa.int32()),
            pa.field("n_tiles", pa.int32()),
            pa.field("text_tokens", pa.int32()),
            pa.field("image_tokens", pa.int32()),
            pa.field("total_tokens", pa.int32()),
            *RULE_SCORE_FIELDS,
            pa.field("rule_flags", pa.list_(pa.string())),
            pa.field("passes_rules", pa.bool_()),
            pa.field("extra", pa.string()),
            pa.field("parent_ids", pa.list_(pa.string())),
        ]
    ),
    "samples",
)


def samples_to_table(samples: list[Sample]) -> pa.Table:
    return pa.Table.from_pylist([s.to_row() for s in samples], schema=SAMPLE_SCHEMA)
