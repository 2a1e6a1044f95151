"""The catalog as DuckDB views: ``samples``, ``scores``, ``rejects``, ``shards``, ``dedup``.

``samples`` is every ingested row joined with the latest dedup results and any
model-based score tables, so a selection such as ``caption_words >= 5 AND NOT
is_duplicate`` reads as plain SQL. User SQL runs on a read-only database that holds
only views, and only single SELECT-like statements are accepted.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.dataset import Dataset
from schemas import DEDUP_SCHEMA, REJECT_SCHEMA, RULE_SCORE_FIELDS, SAMPLE_SCHEMA, SHARD_INDEX_SCHEMA, check_readable

SCORER_NAME = re.compile(r"[a-z][a-z0-9_]*")
READ_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class QueryError(ValueError):
    """The user's SQL is not a single read-only query, or it failed."""


def _checked(files: list[str], table: str) -> list[str]:
    for f in files:
        fs, path = storage.filesystem(f)
        with fs.open(path, "rb") as fh:
            check_readable(pq.read_schema(fh), table, f)
    return files


def _source(con, name: str, files: list[str], schema: pa.Schema) -> str:
    """A SQL expression reading ``files``, or an empty table of ``schema`` when there are none."""
    if files:
        quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        return f"read_parquet([{quoted}], union_by_name = true)"
    con.register(f"_empty_{name}_arrow", schema.empty_table())
    con.execute(f"CREATE TABLE _empty_{name} AS SELECT * FROM _empty_{name}_arrow")
    con.unregister(f"_empty_{name}_arrow")
    return f"_empty_{name}"


def _score_tables(ds: Dataset) -> dict[str, list[str]]:
    """Model-based score tables by scorer name: ``catalog/scores/SCORER/*.parquet``."""
    tables: dict[str, list[str]] = {}
    for f in ds.score_files():
        scorer = f.rsplit("/", 2)[-2]
        if not SCORER_NAME.fullmatch(scorer):
            raise ValueError(f"score folder {scorer!r} is not a valid scorer name (a-z, 0-9, _)")
        tables.setdefault(scorer, []).append(f)
    return tables


def _numeric_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if f.name != "sample_id" and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]


def _create_views(con, ds: Dataset) -> None:
    samples = _source(con, "samples", _checked(ds.sample_files(), "samples"), SAMPLE_SCHEMA)
    dedup_files = [ds.dedup_file] if storage.exists(ds.dedup_file) else []
    dedup = _source(con, "dedup", _checked(dedup_files, "dedup"), DEDUP_SCHEMA)
    rejects = _source(con, "rejects", _checked(ds.reject_files(), "rejects"), REJECT_SCHEMA)
    shards = _source(con, "shards", _checked(ds.shard_index_files(), "shards"), SHARD_INDEX_SCHEMA)
    con.execute(f"CREATE VIEW samples_base AS SELECT * FROM {samples}")
    con.execute(f"CREATE VIEW dedup AS SELECT * FROM {dedup}")
    con.execute(f"CREATE VIEW rejects AS SELECT * FROM {rejects}")
    con.execute(f"CREATE VIEW shards AS SELECT * FROM {shards}")

    # Scores of model-based scorers join by sample_id; their columns carry the scorer's prefix.
    score_selects, score_joins, long_scores = [], [], []
    base_names = set(SAMPLE_SCHEMA.names) | set(DEDUP_SCHEMA.names)
    for scorer, files in sorted(_score_tables(ds).items()):
        con.execute(f"CREATE VIEW score_{scorer} AS SELECT * FROM {_source(con, scorer, _checked(files, 'scores'), None)}")
        fs, path = storage.filesystem(files[0])
        with fs.open(path, "rb") as fh:
            schema = pq.read_schema(fh)
        clash = (set(schema.names) - {"sample_id"}) & base_names
        if clash:
            raise ValueError(f"scorer {scorer!r} writes columns {sorted(clash)} that the catalog already has")
        score_selects.append(f"score_{scorer}.* EXCLUDE (sample_id)")
        score_joins.append(f"LEFT JOIN score_{scorer} USING (sample_id)")
        numeric = _numeric_columns(schema)
        if numeric:
            casts = ", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in numeric)
            long_scores.append(
                f"SELECT sample_id, '{scorer}' AS scorer, name, value FROM (UNPIVOT (SELECT sample_id, {casts} "
                f"FROM score_{scorer}) ON {', '.join(numeric)} INTO NAME name VALUE value)"
            )
    extra = "".join(", " + s for s in score_selects)
    # A sample not yet deduped (no dedup row) counts as its own cluster, not as a duplicate.
    con.execute(
        f"""CREATE VIEW samples AS
           SELECT s.*, d.exact_media_cluster, d.exact_text_cluster, d.near_text_cluster,
                  d.near_image_cluster, d.near_embedding_cluster, coalesce(d.dup_cluster, s.sample_id) AS dup_cluster,
                  coalesce(d.dup_cluster_size, 1) AS dup_cluster_size,
                  coalesce(d.is_duplicate, false) AS is_duplicate{extra}
           FROM samples_base s LEFT JOIN dedup d USING (sample_id) {' '.join(score_joins)}"""
    )
    names = ", ".join(f.name for f in RULE_SCORE_FIELDS)
    casts = ", ".join(f"CAST({f.name} AS DOUBLE) AS {f.name}" for f in RULE_SCORE_FIELDS)
    rule_scores = (
        f"SELECT sample_id, 'rules' AS scorer, name, value FROM (UNPIVOT (SELECT sample_id, {casts} "
        f"FROM samples_base) ON {names} INTO NAME name VALUE value)"
    )
    con.execute("CREATE VIEW scores AS " + " UNION ALL ".join([rule_scores, *long_scores]))


def _register_filesystem(con, ds: Dataset) -> None:
    if storage.local_path(ds.root) is None:
        fs, _ = storage.filesystem(ds.root)
        con.register_filesystem(fs)


def _lock_down(con, ds: Dataset) -> None:
    """User SQL may read the dataset's files and nothing else on this machine."""
    root = storage.local_path(ds.root)
    if root is None:  # remote catalogs are read through the registered fsspec filesystem
        return
    con.execute("SET allowed_directories = [?]", [os.path.abspath(root).rstrip("/") + "/"])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


@contextmanager
def connect(ds: Dataset):
    """A read-only DuckDB connection with the catalog views."""
    tmp = tempfile.mkdtemp(prefix="tessera-catalog-")
    db = os.path.join(tmp, "catalog.duckdb")
    try:
        con = duckdb.connect(db)
        _register_filesystem(con, ds)
        _create_views(con, ds)
        con.close()
        con = duckdb.connect(db, read_only=True)
        _register_filesystem(con, ds)
        _lock_down(con, ds)
        try:
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_read_only(con, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"cannot parse SQL: {exc}") from exc
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement, got {len(statements)}")
    if statements[0].type not in READ_STATEMENTS:
        raise QueryError(f"only SELECT queries run on the catalog, not {statements[0].type.name}")


def query(ds: Dataset, sql: str) -> pa.Table:
    """Run one read-only SQL query over the catalog views; return an Arrow table."""
    with connect(ds) as con:
        check_read_only(con, sql)
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc


def select_where(ds: Dataset, where: str, columns: str = "*") -> pa.Table:
    """Samples matching a user predicate (validated as part of a read-only SELECT)."""
    sql = f"SELECT {columns} FROM samples WHERE ({where}) ORDER BY sample_id"
    return query(ds, sql)
