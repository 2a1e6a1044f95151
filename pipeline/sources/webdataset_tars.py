"""Existing WebDataset tars (for example img2dataset output): ``KEY.jpg`` + ``KEY.txt`` (+ ``KEY.json``).

Tar member names are untrusted: nothing is ever extracted to disk, members are read
into memory by name, and only regular files are considered (links, devices and
directories are skipped). A key is the member path up to the first dot of its base
name, as the webdataset library defines it.
"""
from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline import storage
from pipeline.sources.base import Partition, RawInput, decode_text
from pipeline.sources.image_folder import IMAGE_EXTENSIONS

TEXT_EXTENSIONS = ("txt", "caption", "text")


@dataclass
class WebDatasetConfig:
    path: str  # a tar URI or a glob of them


def split_key(name: str) -> tuple[str, str]:
    directory, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


class WebDatasetSource:
    def __init__(self, name: str, config: WebDatasetConfig):
        self.name = name
        self.config = config

    def partitions(self, partition_size: int) -> list[Partition]:
        tars = storage.glob(self.config.path)
        if not tars:
            raise FileNotFoundError(f"source {self.name!r}: no tar matches {self.config.path!r}")
        # One partition per tar: a tar is read sequentially, so it is the natural unit.
        return [Partition(f"{self.name}-{i:05d}", self.name, (t,)) for i, t in enumerate(tars)]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        """Stream the tar: a sample's members are adjacent, so each group is yielded when
        the next key starts and memory holds one sample at a time."""
        (tar_uri,) = partition.args
        key, files = None, {}
        fs, path = storage.filesystem(tar_uri)
        try:
            with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
                for member in tar:
                    if not member.isreg():
                        continue
                    member_key, ext = split_key(member.name)
                    if member_key != key and files:
                        yield self._to_input(f"{tar_uri}#{key}", files)
                        files = {}
                    key = member_key
                    data = tar.extractfile(member)
                    files[ext] = data.read() if data else b""
        except (tarfile.TarError, OSError, EOFError) as exc:
            # Samples read before the damage are kept; the rest of the tar is one reject.
            yield RawInput(f"{tar_uri}#{key or '*'}", self.name, failure=("read", "corrupt_tar", str(exc)))
            return
        if files:
            yield self._to_input(f"{tar_uri}#{key}", files)

    def _to_input(self, ref: str, files: dict[str, bytes]) -> RawInput:
        image_ext = next((e for e in files if "." + e.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS), None)
        if image_ext is None:
            return RawInput(ref, self.name, failure=("read", "missing_file", f"no image member (has {sorted(files)})"))
        text = ""
        text_ext = next((e for e in TEXT_EXTENSIONS if e in files), None)
        if text_ext:
            text, failed = decode_text(files[text_ext], ref, self.name)
            if failed:
                return failed
        extra = {}
        if "json" in files:
            try:
                meta = json.loads(files["json"])
                extra = meta if isinstance(meta, dict) else {"metadata": meta}
            except ValueError as exc:
                extra = {"metadata_error": str(exc)}
        return RawInput(ref, self.name, media=[files[image_ext]], text=text.strip(), extra=extra)
