"""A dataset: one root URI holding the catalog, the payload store and job records.

Layout (every write atomic)::

    ROOT/dataset.json                              format version, tokenizer, job order
    ROOT/catalog/samples/JOB/PARTITION.parquet     schemas.SAMPLE_SCHEMA
    ROOT/catalog/rejects/JOB/PARTITION.parquet     schemas.REJECT_SCHEMA
    ROOT/catalog/dedup.parquet                     schemas.DEDUP_SCHEMA, whole dataset
    ROOT/catalog/scores/SCORER/*.parquet           model-based scores (joined by sample_id)
    ROOT/catalog/shards/SHARD_SET.parquet          schemas.SHARD_INDEX_SCHEMA
    ROOT/payload/AB/SHA256.EXT                     media bytes, written once (content addressed)
    ROOT/jobs/JOB/manifest.json                    spec, versions, counts, timings, status
    ROOT/jobs/JOB/partitions/PARTITION.done        completion marker with partition counts
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline import storage

DATASET_FORMAT = 1


@dataclass(frozen=True)
class Dataset:
    root: str

    def uri(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    # catalog --------------------------------------------------------------
    def samples_part(self, job_id: str, partition: str) -> str:
        return self.uri("catalog", "samples", job_id, f"{partition}.parquet")

    def rejects_part(self, job_id: str, partition: str) -> str:
        return self.uri("catalog", "rejects", job_id, f"{partition}.parquet")

    def sample_files(self) -> list[str]:
        return storage.glob(self.uri("catalog", "samples", "*", "*.parquet"))

    def reject_files(self) -> list[str]:
        return storage.glob(self.uri("catalog", "rejects", "*", "*.parquet"))

    @property
    def dedup_file(self) -> str:
        return self.uri("catalog", "dedup.parquet")

    def score_part(self, scorer: str, part: str) -> str:
        return self.uri("catalog", "scores", scorer, f"{part}.parquet")

    def score_files(self, scorer: str = "*") -> list[str]:
        return storage.glob(self.uri("catalog", "scores", scorer, "*.parquet"))

    def shard_index(self, shard_set: str) -> str:
        return self.uri("catalog", "shards", f"{shard_set}.parquet")

    def shard_index_files(self) -> list[str]:
        return storage.glob(self.uri("catalog", "shards", "*.parquet"))

    # payload store -----------------------------------------------------------
    def payload_path(self, sha256: str, ext: str) -> str:
        """Relative path of a media file in the payload store (what catalog rows record)."""
        return f"payload/{sha256[:2]}/{sha256}.{ext}"

    # jobs ---------------------------------------------------------------------
    def job_manifest(self, job_id: str) -> str:
        return self.uri("jobs", job_id, "manifest.json")

    def partition_marker(self, job_id: str, partition: str) -> str:
        return self.uri("jobs", job_id, "partitions", f"{partition}.done")

    def done_partitions(self, job_id: str) -> set[str]:
        markers = storage.glob(self.uri("jobs", job_id, "partitions", "*.done"))
        return {m.rsplit("/", 1)[-1][: -len(".done")] for m in markers}

    # dataset record -------------------------------------------------------------
    @property
    def record_uri(self) -> str:
        return self.uri("dataset.json")

    def read_record(self) -> dict:
        if not storage.exists(self.record_uri):
            return {"format": DATASET_FORMAT, "jobs": [], "tokenizer": None}
        record = storage.read_json(self.record_uri)
        if record.get("format") != DATASET_FORMAT:
            raise RuntimeError(
                f"{self.root} has dataset format {record.get('format')}; this Tessera reads {DATASET_FORMAT}"
            )
        return record

    def register_job(self, job_id: str, tokenizer_fingerprint: str, tokenizer_ref: str, tiling: dict) -> int:
        """Record the job in ingest order (its dedup precedence); return its sequence number.

        A dataset has one tokenizer and one tiling: token and tile counts of different
        jobs must be comparable because the packer sums them, and the trainer re-tiles
        with the same settings. A job with another tokenizer or tiling is refused.
        """
        record = self.read_record()
        if record.get("tiling") and record["tiling"] != tiling:
            raise ValueError(
                f"dataset {self.root} was tiled with {record['tiling']}; this job asks for {tiling}. "
                "Use the same tiling settings or a new dataset."
            )
        changed = record.get("tiling") != tiling
        record["tiling"] = tiling
        known = record.get("tokenizer")
        if known and known["fingerprint"] != tokenizer_fingerprint:
            raise ValueError(
                f"dataset {self.root} counts tokens with tokenizer {known['ref']} "
                f"(fingerprint {known['fingerprint'][:12]}); this job uses {tokenizer_ref} "
                f"({tokenizer_fingerprint[:12]}). Use the same tokenizer or a new dataset."
            )
        record["tokenizer"] = {"fingerprint": tokenizer_fingerprint, "ref": tokenizer_ref}
        jobs = record.setdefault("jobs", [])
        if job_id not in [j["job_id"] for j in jobs]:
            jobs.append({"job_id": job_id, "registered_at": dt.datetime.now(dt.timezone.utc).isoformat()})
            storage.atomic_write_json(self.record_uri, record)
        elif not known or changed:
            storage.atomic_write_json(self.record_uri, record)
        return [j["job_id"] for j in jobs].index(job_id)

    def job_order(self) -> dict[str, int]:
        return {j["job_id"]: i for i, j in enumerate(self.read_record().get("jobs", []))}
