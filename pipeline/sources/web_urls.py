"""Web image-text URL lists (the img2dataset job): fetch each URL, keep its caption.

Spec example::

    - name: laion-sample
      type: web_urls
      path: data/urls.parquet        # or .csv / .jsonl, optionally .gz
      url_column: url
      caption_column: caption        # every other column is carried into Sample.extra
      timeout_s: 20
      retries: 2                     # timeouts and 5xx only
      per_host_concurrency: 16
      read_ahead_mb: 256             # fetched bodies held ahead of the decode, per worker
      # respect_opt_out: true        # X-Robots-Tag noai / noimageai -> reject "opted_out"
      # retry_dead: false            # true: fetch URLs earlier jobs found dead

Each row becomes one ``RawInput`` whose ``input_ref`` is the URL itself, so the
rejects table doubles as the dead-URL ledger (``fetch_ledger``). A failed fetch is a
reject of stage ``fetch`` with the reason from ``fetch.py``; a URL some earlier job
of the dataset failed on is not fetched again (reason ``known_dead``) unless
``retry_dead``. A URL repeated in the list is fetched once: later rows are rejects
``read/duplicate_url`` (two rows would otherwise be one sample id). Fetching runs
ahead of the decode on one background fetch loop per worker process (``fetch_stream``).

Partition size matters more here than for local sources: a partition is committed only
when its slowest URL is decided (timeouts and 5xx retries included), and the worker
waits for it. Give URL jobs partitions whose decode work outlasts that wait — thousands
of URLs (``partition_size`` in the spec; 500 gave ~1.5x the throughput of 250 in
``benchmarks/bench_url_ingest.py``, whose 5xx URLs cost ~3 s of retries each).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.dataset import Dataset
from pipeline.sources.base import Partition, RawInput, chunk
from pipeline.sources.fetch import Fetcher, FetchOptions, FetchResult
from pipeline.sources.fetch_ledger import DeadUrl, load_dead_urls
from pipeline.sources.fetch_stream import fetch_stream
from pipeline.sources.manifest import ManifestConfig, ManifestSource


@dataclass(kw_only=True)
class WebUrlsConfig(FetchOptions):
    path: str
    url_column: str = "url"
    caption_column: str = "caption"
    format: str = "auto"  # auto | jsonl | csv | parquet, as for manifests
    retry_dead: bool = False


class WebUrlsSource:
    def __init__(self, name: str, config: WebUrlsConfig):
        self.name = name
        self.config = config
        # The manifest source reads the rows (formats, compression, any fsspec URI).
        self._manifest = ManifestSource(
            name, ManifestConfig(path=config.path, image_column=config.url_column,
                                 caption_column=config.caption_column, format=config.format)
        )
        self._dataset: Dataset | None = None
        self._job_id = ""
        self._dead: dict[str, DeadUrl] | None = None
        self._first: dict[str, int] | None = None

    def attach(self, dataset: Dataset, job_id: str) -> None:
        """Called by the ingest worker: the dataset whose rejects are the dead-URL ledger."""
        self._dataset, self._job_id, self._dead = dataset, job_id, None

    def partitions(self, partition_size: int) -> list[Partition]:
        n = len(self._manifest._rows())
        ranges = chunk(list(range(n)), partition_size)
        return [Partition(f"{self.name}-{i:05d}", self.name, (r[0], r[-1] + 1)) for i, r in enumerate(ranges)]

    def _dead_urls(self) -> dict[str, DeadUrl]:
        if self._dead is None:
            use = self._dataset is not None and not self.config.retry_dead
            self._dead = load_dead_urls(self._dataset, self._job_id) if use else {}
        return self._dead

    def _first_rows(self, rows: list) -> dict[str, int]:
        """URL -> its first row in the whole list (once per worker), so every partition
        decides duplicates the same way."""
        if self._first is None:
            self._first = {}
            for i, row in enumerate(rows):
                parsed = self._parse(row)
                if isinstance(parsed, dict):
                    self._first.setdefault(parsed[self.config.url_column].strip(), i)
        return self._first

    def _parse(self, row) -> dict | str:
        """The row as a dict, or why it is malformed."""
        if isinstance(row, str):  # a JSONL line
            if not row.strip():
                return "empty line"
            try:
                row = json.loads(row)
            except ValueError as exc:
                return f"not JSON: {exc}"
        if not isinstance(row, dict):
            return "row is not an object"
        url = row.get(self.config.url_column)
        if not isinstance(url, str) or not url.strip():
            return f"no {self.config.url_column!r} in row"
        caption = row.get(self.config.caption_column)
        if caption is not None and not isinstance(caption, str):
            return "caption is not text"
        return row

    def _ref(self, i: int, parsed: dict | str, first: dict[str, int]) -> str:
        """Row ``i``'s input ref: its URL, or PATH#ROW for a malformed or repeated row."""
        if isinstance(parsed, dict):
            url = parsed[self.config.url_column].strip()
            if first[url] == i:
                return url
        return f"{self.config.path}#{i}"

    def read_refs(self, partition: Partition, refs: frozenset[str]) -> Iterator[RawInput]:
        """Only the inputs with these refs (a retry pass over rejects): nothing else is fetched."""
        return self.read(partition, only=refs)

    def read(self, partition: Partition, only: frozenset[str] | None = None) -> Iterator[RawInput]:
        start, stop = partition.args
        all_rows = self._manifest._rows()
        first = self._first_rows(all_rows)
        dead = self._dead_urls()
        to_fetch: list[tuple[str, dict]] = []
        for i in range(start, stop):
            parsed = self._parse(all_rows[i])
            ref = self._ref(i, parsed, first)
            if only is not None and ref not in only:
                continue
            if isinstance(parsed, str):
                if parsed != "empty line":  # a trailing newline is not a row
                    yield RawInput(ref, self.name, failure=("read", "malformed_row", parsed))
                continue
            url = parsed[self.config.url_column].strip()
            if first[url] != i:
                yield RawInput(ref, self.name, failure=("read", "duplicate_url", f"{url} is also row {first[url]}"))
            elif url in dead:
                known = dead[url]
                yield RawInput(url, self.name, failure=(
                    "fetch", "known_dead", f"{known.reason} in job {known.job_id}; retry_dead: true fetches it again"))
            else:
                to_fetch.append((url, parsed))

        async def fetch(fetcher: Fetcher, item: tuple[str, dict]) -> FetchResult:
            return await fetcher.fetch(item[0])

        # Bounded by bytes, not items: the whole partition is requested early, so the
        # backoff of its 5xx retries overlaps the decode instead of ending the partition.
        budget = int(self.config.read_ahead_mb * 2**20)
        for (url, row), result in fetch_stream(to_fetch, fetch, self.config, buffer_bytes=budget,
                                               size=lambda r: len(r.data or b"")):
            yield self._to_input(url, row, result)

    def _to_input(self, url: str, row: dict, result: FetchResult) -> RawInput:
        if not result.ok:
            detail = result.detail + (f" (after {result.attempts} attempts)" if result.attempts > 1 else "")
            return RawInput(url, self.name, failure=("fetch", result.reason, detail))
        extra = {k: v for k, v in row.items() if k != self.config.caption_column}
        extra["http_status"] = result.status
        if result.final_url and result.final_url != url:
            extra["final_url"] = result.final_url
        caption = (row.get(self.config.caption_column) or "").strip()
        return RawInput(url, self.name, media=[result.data], text=caption, extra=extra)
