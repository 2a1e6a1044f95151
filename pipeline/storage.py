"""fsspec access with atomic writes.

Every path in Tessera is a URI (a local path, ``file://``, ``s3://``, ``memory://``...).
Writers never expose a half-written file: they write a temporary sibling and rename it
into place. On a local disk the rename is atomic; on object stores an upload becomes
visible whole, so the same code is safe on both.
"""
from __future__ import annotations

import io
import json
import os
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem holding ``uri`` and the path within it."""
    return url_to_fs(uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *[p.strip("/") for p in parts]])


def _tmp_name(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/.{tail}.tmp-{uuid.uuid4().hex[:12]}"


def atomic_write_bytes(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    parent = path.rpartition("/")[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = _tmp_name(path)
    with fs.open(tmp, "wb") as f:
        f.write(data)
    try:
        fs.mv(tmp, path)
    except Exception:
        fs.rm(tmp)
        raise


def atomic_write_parquet(uri: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(uri, buf.getvalue())


def atomic_write_json(uri: str, obj: Any) -> None:
    atomic_write_bytes(uri, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(uri: str) -> Any:
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        return json.loads(f.read())


def read_parquet(uri: str, columns: list[str] | None = None) -> pa.Table:
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        return pq.read_table(f, columns=columns)


def parquet_rows(uri: str) -> int:
    """Row count from the footer alone: no column is read."""
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        return pq.ParquetFile(f).metadata.num_rows


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        return f.read()


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def glob(uri_pattern: str) -> list[str]:
    """Matching URIs, sorted, in the same scheme as the pattern; temporary files excluded."""
    fs, pattern = filesystem(uri_pattern)
    protocol = uri_pattern.split("://", 1)[0] + "://" if "://" in uri_pattern else ""
    out = []
    for p in sorted(fs.glob(pattern)):
        if os.path.basename(p).startswith("."):
            continue
        out.append(protocol + p if protocol and not p.startswith(protocol) else p)
    return out


def local_path(uri: str) -> str | None:
    """The local filesystem path of ``uri``, or None when it is not on local disk."""
    fs, path = filesystem(uri)
    return path if "file" in fs.protocol or "local" in fs.protocol else None
