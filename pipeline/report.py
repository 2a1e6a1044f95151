"""What the funnel report shows, computed with SQL on the catalog views.

Histograms are binned inside DuckDB (min/max per measurement, then counts per bin and
source), so the report reads a few thousand numbers whatever the dataset's size. Every
query restricts ``samples`` by the user's ``--where`` first; ``rejects`` and ``shards``
are shown whole (rejects have no sample columns; a shard set was already a selection).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline import catalog
from pipeline.dataset import Dataset
from schemas import RULE_SCORE_FIELDS


@dataclass
class ReportOptions:
    where: str = "true"  # SQL predicate over samples: the population the report describes
    thresholds: list[str] = field(default_factory=list)  # extra filters, e.g. "judge_caption_overall >= 3"
    bins: int = 24
    thumbnails: int = 4  # dropped examples shown per filter


@dataclass
class Histogram:
    group: str  # "rules", a scorer name, or "size"
    name: str  # the measurement
    lo: float
    hi: float
    by_source: dict[str, list[int]]


@dataclass
class FilterCount:
    name: str  # a rule flag, "duplicate", or a threshold predicate
    kind: str  # "rule" | "dedup" | "threshold"
    kept: int
    dropped: int
    examples: list[dict]  # dropped samples: sample_id, source, text, media uri


def _sel(opts: ReportOptions) -> str:
    return f"sel AS (SELECT * FROM samples WHERE ({opts.where}))"


def rows(ds: Dataset, sql: str) -> list[dict]:
    return catalog.query(ds, sql).to_pylist()


def _histograms(ds: Dataset, opts: ReportOptions, values_sql: str) -> list[Histogram]:
    """Bin ``values_sql`` (columns grp, name, source, value) per (grp, name) into shared bins."""
    b = int(opts.bins)
    sql = f"""WITH {_sel(opts)}, v AS ({values_sql}),
        f AS (SELECT * FROM v WHERE value IS NOT NULL AND isfinite(value)),
        r AS (SELECT grp, name, min(value) AS lo, max(value) AS hi FROM f GROUP BY grp, name)
        SELECT f.grp, f.name, f.source, r.lo, r.hi,
               CASE WHEN r.hi = r.lo THEN 0 ELSE least(CAST(floor((f.value - r.lo) / (r.hi - r.lo) * {b}) AS INT),
                                                      {b - 1}) END AS bin, count(*) AS n
        FROM f JOIN r USING (grp, name) GROUP BY ALL ORDER BY f.grp, f.name, f.source, bin"""
    hists: dict[tuple[str, str], Histogram] = {}
    for r in rows(ds, sql):
        h = hists.setdefault((r["grp"], r["name"]), Histogram(r["grp"], r["name"], r["lo"], r["hi"], {}))
        h.by_source.setdefault(r["source"], [0] * b)[r["bin"]] += r["n"]
    return list(hists.values())


def score_histograms(ds: Dataset, opts: ReportOptions) -> list[Histogram]:
    """Every numeric measurement per source: the rule scores and every model scorer's columns."""
    values = ("SELECT sc.scorer AS grp, sc.name, sel.source, sc.value FROM scores sc "
              "JOIN sel USING (sample_id)")
    return _histograms(ds, opts, values)


SIZE_COLUMNS = ("total_tokens", "text_tokens", "image_tokens", "n_tiles", "n_images")


def size_histograms(ds: Dataset, opts: ReportOptions) -> list[Histogram]:
    """Token, tile and image counts per source: what the packer's budgets will meet."""
    union = " UNION ALL ".join(f"SELECT 'size' AS grp, '{c}' AS name, source, CAST({c} AS DOUBLE) AS value FROM sel"
                               for c in SIZE_COLUMNS)
    return _histograms(ds, opts, union)


def _examples(ds: Dataset, opts: ReportOptions, dropped_sql: str) -> list[dict]:
    n = int(opts.thumbnails)
    if n <= 0:
        return []
    return rows(ds, f"WITH {_sel(opts)} SELECT sample_id, source, text, CASE WHEN len(media) > 0 "
                    f"THEN media[1].uri END AS uri FROM sel WHERE {dropped_sql} ORDER BY sample_id LIMIT {n}")


def filter_counts(ds: Dataset, opts: ReportOptions) -> list[FilterCount]:
    """Kept and dropped per filter on its own (not cumulative), with dropped examples."""
    total = rows(ds, f"WITH {_sel(opts)} SELECT count(*) AS n FROM sel")[0]["n"]
    flags = rows(ds, f"WITH {_sel(opts)} SELECT flag, count(*) AS n FROM (SELECT unnest(rule_flags) AS flag "
                     "FROM sel) GROUP BY flag ORDER BY flag")
    out = []
    for f in flags:
        quoted = "'" + f["flag"].replace("'", "''") + "'"
        out.append(FilterCount(f["flag"], "rule", total - f["n"], f["n"],
                               _examples(ds, opts, f"list_contains(rule_flags, {quoted})")))
    dup = rows(ds, f"WITH {_sel(opts)} SELECT count(*) FILTER (WHERE is_duplicate) AS n FROM sel")[0]["n"]
    out.append(FilterCount("duplicate", "dedup", total - dup, dup, _examples(ds, opts, "is_duplicate")))
    for t in opts.thresholds:
        kept = rows(ds, f"WITH {_sel(opts)} SELECT count(*) FILTER (WHERE coalesce(({t}), false)) AS n FROM sel")[0]["n"]
        out.append(FilterCount(t, "threshold", kept, total - kept, _examples(ds, opts, f"NOT coalesce(({t}), false)")))
    return out


def funnel(ds: Dataset, opts: ReportOptions) -> list[tuple[str, int]]:
    """Cumulative: selected, then passes the rules, then not a duplicate, then each threshold."""
    steps = [("selected", "true"), ("passes rules", "passes_rules"), ("not duplicate", "NOT is_duplicate")]
    steps += [(t, f"coalesce(({t}), false)") for t in opts.thresholds]
    conds, cols = [], []
    for i, (_, cond) in enumerate(steps):
        conds.append(f"({cond})")
        cols.append(f"count(*) FILTER (WHERE {' AND '.join(conds)}) AS s{i}")
    r = rows(ds, f"WITH {_sel(opts)} SELECT {', '.join(cols)} FROM sel")[0]
    return [(label, r[f"s{i}"]) for i, (label, _) in enumerate(steps)]


def by_source(ds: Dataset, opts: ReportOptions) -> list[dict]:
    return rows(ds, f"""WITH {_sel(opts)} SELECT source, count(*) AS samples,
        count(*) FILTER (WHERE passes_rules) AS passes_rules, count(*) FILTER (WHERE is_duplicate) AS duplicates,
        CAST(sum(total_tokens) AS BIGINT) AS tokens, CAST(sum(n_tiles) AS BIGINT) AS tiles FROM sel GROUP BY source ORDER BY source""")


def rejects(ds: Dataset) -> list[dict]:
    return rows(ds, "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY n DESC, stage, reason")


def cluster_sizes(ds: Dataset, opts: ReportOptions) -> list[dict]:
    """How many duplicate clusters have each size (clusters as the selection sees them)."""
    return rows(ds, f"""WITH {_sel(opts)} SELECT size, count(*) AS clusters FROM
        (SELECT dup_cluster, count(*) AS size FROM sel GROUP BY dup_cluster) GROUP BY size ORDER BY size""")


def shard_composition(ds: Dataset) -> list[dict]:
    return rows(ds, """SELECT shard_set, source, coalesce(component, '') AS component, count(*) AS samples,
        CAST(sum(total_tokens) AS BIGINT) AS tokens, CAST(sum(n_tiles) AS BIGINT) AS tiles FROM shards
        GROUP BY ALL ORDER BY shard_set, source, component""")


def shard_sets(ds: Dataset) -> list[dict]:
    return rows(ds, """SELECT shard_set, count(DISTINCT shard) AS shards, count(DISTINCT shard || '/' || pack_key)
        AS packs, count(*) AS samples, CAST(sum(total_tokens) AS BIGINT) AS tokens, CAST(sum(n_tiles) AS BIGINT) AS tiles FROM shards
        GROUP BY shard_set ORDER BY shard_set""")


RULE_NAMES = [f.name for f in RULE_SCORE_FIELDS]
