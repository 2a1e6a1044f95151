"""The ingestion job spec: what a user writes in YAML, validated before any work starts.

Example (see ``jobs/examples/local_images.yaml``)::

    name: local-images
    dataset: demo_out/dataset          # any fsspec URI
    tokenizer: byte-level              # or a local transformers tokenizer directory
    sources:
      - {name: photos, type: image_folder, path: demo_out/corpus/folder}
      - {name: captions, type: manifest, path: demo_out/corpus/manifest.jsonl}
      - {name: web, type: webdataset, path: "demo_out/corpus/tars/*.tar"}
    tiling: {tile_size: 448, max_tiles: 12}
    filters: {min_caption_words: 5}
    dedup: {text_threshold: 0.8}
    sample_retries: 2                  # extra tries of an input whose step raised (not a reject)
    partition_timeout_s: 1800          # a partition still running then is abandoned, retried, then a reject
    scorers:                           # optional: scored after the partitions, before dedup
      - {scorer: clip, model: ViT-B-32, checkpoint: /weights/vit-b-32.pt, where: "passes_rules"}
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from filters.dedup import DedupConfig
from filters.rules import RuleConfig
from pipeline.sources import SOURCE_TYPES
from pipeline.tiling import TilingConfig
from schemas.config import ConfigError, from_dict

PATH_KEYS = ("path",)
# Keys that change how a job runs, not what its partitions hold: left out of the job id,
# so adding scorers or retries to a spec resumes the same job (and old specs keep their ids).
RUN_CONTROL_KEYS = ("sample_retries", "retry_backoff_s", "scorers", "partition_timeout_s")


@dataclass
class SourceSpec:
    name: str
    type: str
    options: dict[str, Any]

    def build(self):
        config_cls, source_cls = SOURCE_TYPES[self.type]
        return source_cls(self.name, from_dict(config_cls, self.options, f"sources.{self.name}"))


@dataclass
class ImageSpec:
    max_pixels: int = 64_000_000  # decompression-bomb guard, checked before decoding
    min_side: int = 1


@dataclass
class IngestSpec:
    name: str
    dataset: str
    sources: list[SourceSpec]
    tokenizer: str = "byte-level"
    partition_size: int = 256
    workers: int = 0  # 0: one per CPU Ray reports
    tiling: TilingConfig = field(default_factory=TilingConfig)
    image: ImageSpec = field(default_factory=ImageSpec)
    filters: RuleConfig = field(default_factory=RuleConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    # An input whose step raised something other than a reject (an OSError on a remote
    # store, a flaky reader) is tried again this many times, then becomes a reject
    # "STEP/error"; the partition goes on either way.
    sample_retries: int = 2
    retry_backoff_s: float = 0.5  # wait before the first retry, doubling after each
    # Scorer steps as in a score spec (jobs/score_job.py), run over this job's samples.
    scorers: list[dict] = field(default_factory=list)
    # A partition still running after this long is abandoned (its worker restarted) and
    # tried again, twice; then its inputs become a "partition/timeout" reject, so one slow
    # or hung input never holds the job. Generous: a partition normally takes seconds.
    partition_timeout_s: float = 1800.0

    @property
    def job_id(self) -> str:
        """Same spec, same job: a re-run resumes instead of starting a second job."""
        identity = {k: v for k, v in self.to_dict().items() if k not in RUN_CONTROL_KEYS}
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.name}-{digest[:10]}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sources"] = [{"name": s.name, "type": s.type, **s.options} for s in self.sources]
        return d


def _absolute(value: str) -> str:
    """Relative local paths resolve against the current directory, so workers on other
    processes (or nodes with a shared filesystem) see the same files."""
    return value if "://" in value else os.path.abspath(value)


def parse_spec(data: Any, dataset_override: str | None = None) -> IngestSpec:
    if not isinstance(data, dict):
        raise ConfigError("an ingestion spec is a mapping with keys name, dataset, sources, ...")
    data = dict(data)
    if dataset_override:
        data["dataset"] = dataset_override
    raw_sources = data.pop("sources", None)
    if not raw_sources or not isinstance(raw_sources, list):
        raise ConfigError("spec.sources: give a non-empty list of sources")
    sources, names = [], set()
    for i, src in enumerate(raw_sources):
        if not isinstance(src, dict) or "name" not in src or "type" not in src:
            raise ConfigError(f"spec.sources[{i}]: each source needs 'name' and 'type'")
        src = dict(src)
        name, kind = str(src.pop("name")), src.pop("type")
        if kind not in SOURCE_TYPES:
            raise ConfigError(f"spec.sources[{i}].type: unknown source type {kind!r}; known: {sorted(SOURCE_TYPES)}")
        if name in names or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"spec.sources[{i}].name: {name!r} must be unique and use letters, digits, - or _")
        names.add(name)
        for key in PATH_KEYS:
            if isinstance(src.get(key), str):
                src[key] = _absolute(src[key])
        spec = SourceSpec(name, kind, src)
        spec.build()  # validates the options now, not in a worker later
        sources.append(spec)
    data["sources"] = []
    spec = from_dict(IngestSpec, data, "spec")
    spec.sources = sources
    spec.dataset = _absolute(spec.dataset)
    if spec.tokenizer != "byte-level":
        spec.tokenizer = _absolute(spec.tokenizer)
    if spec.partition_size < 1:
        raise ConfigError("spec.partition_size must be >= 1")
    if not spec.partition_timeout_s > 0:
        raise ConfigError("spec.partition_timeout_s must be > 0 (seconds)")
    if spec.sample_retries < 0 or spec.retry_backoff_s < 0:
        raise ConfigError("spec.sample_retries and spec.retry_backoff_s must be >= 0")
    if spec.scorers:
        from jobs.score_job import parse_steps  # here: listing scorers imports no model code

        parse_steps(spec.scorers, "spec.scorers")  # names and options checked now, not in a worker
    return spec


def score_steps(spec: IngestSpec) -> list:
    """The spec's ``scorers`` as score-job steps (already validated by ``parse_spec``)."""
    from jobs.score_job import parse_steps

    return parse_steps(spec.scorers, "spec.scorers") if spec.scorers else []


def load_spec(path: str, dataset_override: str | None = None) -> IngestSpec:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return parse_spec(data, dataset_override)
