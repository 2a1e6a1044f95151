"""A reject row: an input that did not become a sample, and why.

Nothing is lost silently: every undecodable image, dead file or malformed manifest
row is recorded with the stage that refused it and a human-readable reason.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

from schemas.version import with_version

# Stages that may reject an input.
STAGES = ("read", "decode", "normalize", "filter", "fetch", "render", "ocr", "partition")


@dataclass
class Reject:
    input_ref: str  # where the input came from (same convention as Sample.input_ref)
    source: str
    job_id: str
    stage: str  # one of STAGES
    reason: str  # short machine-groupable code, e.g. "truncated_image"
    detail: str = ""  # the full error message

    def to_row(self) -> dict:
        return asdict(self)


REJECT_SCHEMA = with_version(
    pa.schema(
        [
            pa.field("input_ref", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("job_id", pa.string(), nullable=False),
            pa.field("stage", pa.string(), nullable=False),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("detail", pa.string()),
        ]
    ),
    "rejects",
)


def rejects_to_table(rejects: list[Reject]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in rejects], schema=REJECT_SCHEMA)
