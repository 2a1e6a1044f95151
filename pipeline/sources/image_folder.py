"""A folder of images with sidecar captions: ``x.jpg`` + ``x.txt`` (+ optional ``x.json``).

An image without a caption file becomes a sample with an empty caption (the rule
filters flag it); a caption file without an image is a reject (``missing_file``).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline import storage
from pipeline.sources.base import Partition, RawInput, chunk, decode_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass
class ImageFolderConfig:
    path: str
    recursive: bool = True
    caption_extension: str = ".txt"


class ImageFolderSource:
    def __init__(self, name: str, config: ImageFolderConfig):
        self.name = name
        self.config = config

    def _listing(self) -> tuple[list[str], list[str]]:
        fs, root = storage.filesystem(self.config.path)
        if not fs.isdir(root):
            raise FileNotFoundError(f"source {self.name!r}: folder {self.config.path!r} does not exist")
        files = sorted(fs.find(root) if self.config.recursive else fs.ls(root, detail=False))
        stems_with_image = set()
        images, orphans = [], []
        for f in files:
            stem, dot, ext = f.rpartition(".")
            if dot and "." + ext.lower() in IMAGE_EXTENSIONS:
                images.append(f)
                stems_with_image.add(stem)
        for f in files:
            if f.endswith(self.config.caption_extension) and f[: -len(self.config.caption_extension)] not in stems_with_image:
                orphans.append(f)
        return images, orphans

    def partitions(self, partition_size: int) -> list[Partition]:
        images, orphans = self._listing()
        entries = [("image", f) for f in images] + [("orphan_caption", f) for f in orphans]
        return [
            Partition(f"{self.name}-{i:05d}", self.name, tuple(part))
            for i, part in enumerate(chunk(entries, partition_size))
        ]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        fs, _ = storage.filesystem(self.config.path)
        for kind, path in partition.args:
            if kind == "orphan_caption":
                yield RawInput(path, self.name, failure=("read", "missing_file", f"caption {path} has no image"))
                continue
            try:
                with fs.open(path, "rb") as f:
                    media = f.read()
            except OSError as exc:
                yield RawInput(path, self.name, failure=("read", "missing_file", str(exc)))
                continue
            stem = path.rpartition(".")[0]
            text, extra = "", {}
            cap_path = stem + self.config.caption_extension
            if fs.exists(cap_path):
                with fs.open(cap_path, "rb") as f:
                    text, failed = decode_text(f.read(), path, self.name)
                if failed:
                    yield failed
                    continue
            if fs.exists(stem + ".json"):
                try:
                    with fs.open(stem + ".json", "rb") as f:
                        extra = json.loads(f.read())
                    extra = extra if isinstance(extra, dict) else {"metadata": extra}
                except (ValueError, OSError) as exc:
                    extra = {"metadata_error": str(exc)}
            yield RawInput(path, self.name, media=[media], text=text.strip(), extra=extra)
