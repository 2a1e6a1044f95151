"""Catalog schema versions and the compatibility rule every reader applies.

Each Parquet file Tessera writes carries ``tessera.schema`` (which table) and
``tessera.schema_version`` in its Arrow metadata. A reader accepts any version it
knows how to upgrade and refuses newer or unknown ones with a message that says
what to do, instead of failing later on a missing column.
"""
from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
# Versions this code can read. Version 1 is the first; a future version 2 reader
# adds an upgrade function per older version here.
READABLE_VERSIONS = frozenset({1})


class SchemaVersionError(RuntimeError):
    """A catalog file was written by a Tessera whose schema this one cannot read."""


def with_version(schema: pa.Schema, table_name: str) -> pa.Schema:
    meta = dict(schema.metadata or {})
    meta[b"tessera.schema"] = table_name.encode()
    meta[b"tessera.schema_version"] = str(SCHEMA_VERSION).encode()
    return schema.with_metadata(meta)


def check_readable(schema: pa.Schema, expected_table: str, where: str = "") -> int:
    """Return the file's schema version, or raise SchemaVersionError with a clear message."""
    meta = schema.metadata or {}
    table = meta.get(b"tessera.schema", b"").decode()
    raw = meta.get(b"tessera.schema_version")
    origin = f" ({where})" if where else ""
    if raw is None:
        raise SchemaVersionError(
            f"{expected_table} file{origin} has no tessera.schema_version metadata: "
            "it was not written by Tessera, or by a pre-release; re-ingest it."
        )
    if table and table != expected_table:
        raise SchemaVersionError(f"expected a {expected_table} file{origin}, found a {table} file")
    version = int(raw)
    if version not in READABLE_VERSIONS:
        newest = max(READABLE_VERSIONS)
        hint = "upgrade Tessera" if version > newest else "re-ingest with a newer Tessera"
        raise SchemaVersionError(
            f"{expected_table} file{origin} has schema version {version}; this Tessera reads "
            f"versions {sorted(READABLE_VERSIONS)}: {hint}."
        )
    return version
