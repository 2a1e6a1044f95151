"""What every source type provides: partitions of its inputs, and raw inputs per partition.

A source lists its inputs cheaply and deterministically and cuts them into partitions
(the unit of work, of retry and of resume). Reading a partition yields ``RawInput``s:
encoded media bytes and text, nothing decoded yet. A source never raises for a bad
input: it yields a RawInput carrying the failure, which becomes a reject row.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas import Turn


@dataclass(frozen=True)
class Partition:
    partition_id: str  # stable name, unique within a job, safe as a file name
    source: str  # the source's name in the spec
    args: tuple  # what the source needs to read it again (paths, row ranges): picklable


@dataclass
class RawInput:
    input_ref: str
    source: str
    media: list[bytes] = field(default_factory=list)  # encoded images, in conversation order
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = "image_text"  # one of schemas.KINDS
    # The sample's conversation when the source writes its own (OCR, documents, video...):
    # its <image> placeholders refer to ``media`` in order. None: a caption conversation.
    conversation: list[Turn] | None = None
    # Per-media fields the source knows (e.g. {"kind": "video_frame", "timestamp_s": 1.5}).
    media_info: list[dict[str, Any]] = field(default_factory=list)
    parent_ids: list[str] = field(default_factory=list)
    # (stage, reason, detail) when the input could not even be read
    failure: tuple[str, str, str] | None = None


class Source(Protocol):
    name: str

    def partitions(self, partition_size: int) -> list[Partition]: ...

    def read(self, partition: Partition) -> Iterator[RawInput]: ...


def chunk(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def decode_text(data: bytes, input_ref: str, source: str) -> tuple[str, RawInput | None]:
    """UTF-8 text (BOM stripped), or a failure RawInput for undecodable bytes."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return "", RawInput(input_ref, source, failure=("read", "undecodable_text", str(exc)))
