"""A manifest of image-text rows: JSONL, CSV or Parquet (optionally gzipped).

Each row names its image by path (relative paths resolve against the manifest's
folder) or carries the encoded bytes (a binary column, or base64 text in JSON/CSV),
plus a caption. Every other column is carried through into ``Sample.extra``. A
malformed row becomes a reject; the rest of the manifest goes on.
"""
from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq

from pipeline import storage
from pipeline.sources.base import Partition, RawInput, chunk


@dataclass
class ManifestConfig:
    path: str
    image_column: str = "image"  # a path/URI, or bytes (Parquet binary / base64 text)
    caption_column: str = "caption"
    format: str = "auto"  # auto | jsonl | csv | parquet

    def __post_init__(self):
        if self.format not in ("auto", "jsonl", "csv", "parquet"):
            raise ValueError(f"format must be auto, jsonl, csv or parquet, not {self.format!r}")


def _format_of(path: str, declared: str) -> str:
    if declared != "auto":
        return declared
    name = path.lower().removesuffix(".gz")
    for ext, fmt in ((".jsonl", "jsonl"), (".json", "jsonl"), (".csv", "csv"), (".parquet", "parquet")):
        if name.endswith(ext):
            return fmt
    raise ValueError(f"cannot tell the manifest format of {path!r}: set format: jsonl|csv|parquet")


class ManifestSource:
    def __init__(self, name: str, config: ManifestConfig):
        self.name = name
        self.config = config
        self.format = _format_of(config.path, config.format)
        self.base = config.path.rsplit("/", 1)[0] if "/" in config.path else "."

    def _rows(self) -> list:
        """Raw rows: text lines for JSONL, dicts for CSV/Parquet. Parsing errors stay per row."""
        fs, path = storage.filesystem(self.config.path)
        if not fs.exists(path):
            raise FileNotFoundError(f"source {self.name!r}: manifest {self.config.path!r} does not exist")
        if self.format == "parquet":
            with fs.open(path, "rb") as f:
                return pq.read_table(f).to_pylist()
        with fs.open(path, "rb", compression="infer") as f:
            data = f.read()
        if self.format == "jsonl":
            return data.decode("utf-8", errors="replace").splitlines()
        return list(csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace"))))

    def partitions(self, partition_size: int) -> list[Partition]:
        n = len(self._rows())
        ranges = chunk(list(range(n)), partition_size)
        return [Partition(f"{self.name}-{i:05d}", self.name, (r[0], r[-1] + 1)) for i, r in enumerate(ranges)]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        start, stop = partition.args
        rows = self._rows()[start:stop]
        for offset, row in enumerate(rows):
            ref = f"{self.config.path}#{start + offset}"
            yield self._to_input(ref, row)

    def _to_input(self, ref: str, row) -> RawInput:
        if isinstance(row, str):
            if not row.strip():
                return RawInput(ref, self.name, failure=("read", "malformed_row", "empty line"))
            try:
                row = json.loads(row)
            except ValueError as exc:
                return RawInput(ref, self.name, failure=("read", "malformed_row", f"not JSON: {exc}"))
        if not isinstance(row, dict) or row.get(self.config.image_column) in (None, ""):
            return RawInput(
                ref, self.name, failure=("read", "malformed_row", f"no {self.config.image_column!r} in row")
            )
        image = row[self.config.image_column]
        caption = row.get(self.config.caption_column) or ""
        if not isinstance(caption, str):
            return RawInput(ref, self.name, failure=("read", "malformed_row", "caption is not text"))
        extra = {k: v for k, v in row.items() if k not in (self.config.image_column, self.config.caption_column)}
        try:
            media = self._image_bytes(image)
        except FileNotFoundError as exc:
            return RawInput(ref, self.name, failure=("read", "missing_file", str(exc)))
        except (OSError, ValueError, binascii.Error) as exc:
            return RawInput(ref, self.name, failure=("read", "malformed_row", str(exc)))
        return RawInput(ref, self.name, media=[media], text=caption.strip(), extra=extra)

    def _image_bytes(self, image) -> bytes:
        if isinstance(image, (bytes, bytearray)):
            return bytes(image)
        if not isinstance(image, str):
            raise ValueError(f"image column holds {type(image).__name__}, not a path or bytes")
        if image.startswith("data:"):
            return base64.b64decode(image.split(",", 1)[-1], validate=True)
        uri = image if ("://" in image or image.startswith("/")) else f"{self.base}/{image}"
        fs, path = storage.filesystem(uri)
        try:
            with fs.open(path, "rb") as f:
                return f.read()
        except OSError as exc:  # not a readable file: maybe base64 text of the bytes
            if len(image) >= 64:
                try:
                    return base64.b64decode(image, validate=True)
                except (binascii.Error, ValueError):
                    pass
            raise FileNotFoundError(f"image {uri} does not exist") from exc
