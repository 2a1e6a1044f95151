"""Catalog views, score-table joins, schema versions and mixtures, on hand-made catalogs."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import catalog, storage
from pipeline.dataset import Dataset
from pipeline.mixture import Mixture, MixtureComponent, allocate
from pipeline.scores import write_scores
from schemas import MediaRef, Sample, SchemaVersionError, Turn, samples_to_table


def sample(i: int, source: str = "a") -> Sample:
    media = MediaRef(uri=f"payload/{i:02d}/x.jpg", sha256=f"{i:064x}", format="jpeg", width=100 + i, height=80,
                     nbytes=10, phash=2**63 + i, n_tiles=1 + i % 3)
    return Sample(sample_id=f"s{i:03d}", content_hash=f"c{i}", source=source, kind="image_text", job_id="j",
                  input_ref=f"in{i}", text=f"caption {i}", conversation=[Turn("user", "<image>\nhi"), Turn("assistant", "x")],
                  media=[media], n_tiles=media.n_tiles, text_tokens=10 + i, image_tokens=258 * media.n_tiles)


@pytest.fixture
def ds(tmp_path) -> Dataset:
    ds = Dataset(str(tmp_path / "ds"))
    storage.atomic_write_parquet(ds.samples_part("j", "p0"), samples_to_table([sample(i) for i in range(6)]))
    storage.atomic_write_parquet(ds.samples_part("j", "p1"), samples_to_table([sample(i, "b") for i in range(6, 9)]))
    return ds


def test_empty_dataset_has_every_view(tmp_path):
    ds = Dataset(str(tmp_path / "empty"))
    for view in ("samples", "scores", "rejects", "shards", "dedup"):
        assert catalog.query(ds, f"SELECT count(*) AS n FROM {view}").to_pylist() == [{"n": 0}]


def test_samples_view_roundtrips_rows_and_defaults_dedup(ds):
    rows = catalog.query(ds, "SELECT * FROM samples ORDER BY sample_id").to_pylist()
    assert len(rows) == 9 and rows[0]["media"][0]["phash"] == 2**63  # uint64 survives
    assert all(r["is_duplicate"] is False and r["dup_cluster"] == r["sample_id"] for r in rows)
    assert Sample.from_row(rows[3]).to_row()["text_tokens"] == 13


def test_score_tables_join_by_sample_id(ds):
    write_scores(ds, "clip", "p0", pa.table({"sample_id": ["s000", "s001"], "clip_score": [0.31, 0.12]}))
    rows = catalog.query(ds, "SELECT sample_id, clip_score FROM samples WHERE clip_score > 0.2").to_pylist()
    assert rows == [{"sample_id": "s000", "clip_score": pytest.approx(0.31)}]
    assert catalog.query(ds, "SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 9}]  # left join
    long = catalog.query(ds, "SELECT scorer, count(*) AS n FROM scores GROUP BY scorer ORDER BY scorer").to_pylist()
    assert long == [{"scorer": "clip", "n": 2}, {"scorer": "rules", "n": 9 * 9}]
    with pytest.raises(ValueError, match="must start with 'clip_'"):
        write_scores(ds, "clip", "p1", pa.table({"sample_id": ["s006"], "score": [0.1]}))


def test_unknown_schema_versions_fail_clearly(ds):
    path = ds.samples_part("j", "p0")
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"tessera.schema_version"] = b"99"
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(SchemaVersionError, match="schema version 99.*upgrade Tessera"):
        catalog.query(ds, "SELECT count(*) FROM samples")
    pq.write_table(table.replace_schema_metadata({}), path)
    with pytest.raises(SchemaVersionError, match="not written by Tessera"):
        catalog.query(ds, "SELECT count(*) FROM samples")


def test_mixture_allocation():
    cands = {"a": [(f"a{i}", 10) for i in range(100)], "b": [(f"b{i}", 10) for i in range(30)],
             "c": [(f"c{i}", 100) for i in range(50)]}
    mix = Mixture([MixtureComponent("a", "x", weight=1.0), MixtureComponent("b", "y", weight=1.0),
                   MixtureComponent("c", "z", max_tokens=1000)])
    got = allocate(mix, cands, seed=1)
    assert len(got["a"]) == len(got["b"]) == 30  # limited by b, no repetition
    assert len(got["c"]) == 10  # token budget
    assert got == allocate(mix, cands, seed=1) and got["a"] != allocate(mix, cands, seed=2)["a"]
    overlap = {"a": [("x1", 1), ("x2", 1)], "b": [("x1", 1), ("x3", 1)]}
    got = allocate(Mixture([MixtureComponent("a", "", max_samples=5), MixtureComponent("b", "", max_samples=5)]), overlap, 0)
    assert sorted(got["a"]) == ["x1", "x2"] and got["b"] == ["x3"]  # first component wins
    with pytest.raises(ValueError, match="either weight or"):
        MixtureComponent("bad", "true", weight=1.0, max_samples=3)
