"""Write packs as WebDataset tar shards.

A pack (one training sequence) is one WebDataset sample: its images' original encoded
bytes as members ``KEY.000.jpg``, ``KEY.001.png``, ... and ``KEY.json`` describing the
sub-samples in order with their boundaries. Bytes come from the payload store as
ingested: nothing is decoded or re-encoded here. Tars are written to a local
temporary file and moved into place, so a shard appears whole or not at all; member
metadata is fixed (mtime 0, uid 0) so the same selection gives identical bytes.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass

from pipeline import storage
from schemas import PACK_FORMAT_VERSION


@dataclass
class PackMember:
    """One sub-sample of a pack, with everything the trainer needs to rebuild it."""

    sample_id: str
    source: str
    kind: str
    component: str | None
    conversation: list[dict]
    media: list[dict]  # MediaRef rows (uri, sha256, format, width, height, n_tiles, ...)
    text_tokens: int
    image_tokens: int
    n_tiles: int

    @property
    def total_tokens(self) -> int:
        return self.text_tokens + self.image_tokens


def pack_record(
    key: str, members: list[PackMember], budget: dict, tokenizer_fingerprint: str, tiling: dict | None
) -> tuple[dict, list[tuple[str, str]]]:
    """The pack's JSON and the (member suffix, payload uri) of each image, in order."""
    samples, images = [], []
    token_pos = tile_pos = 0
    for m in members:
        entries = []
        for media in m.media:
            ext = media["uri"].rsplit(".", 1)[-1]
            suffix = f"{len(images):03d}.{ext}"
            images.append((suffix, media["uri"]))
            entries.append({"member": suffix, **{k: media[k] for k in ("sha256", "format", "width", "height", "n_tiles", "timestamp_s")}})
        samples.append({
            "sample_id": m.sample_id, "source": m.source, "kind": m.kind, "component": m.component,
            "conversation": m.conversation, "images": entries,
            "text_tokens": m.text_tokens, "image_tokens": m.image_tokens, "total_tokens": m.total_tokens,
            "n_tiles": m.n_tiles,
            # Boundaries inside the packed sequence: [start, end) in tokens and in tiles.
            "token_start": token_pos, "token_end": token_pos + m.total_tokens,
            "tile_start": tile_pos, "tile_end": tile_pos + m.n_tiles,
        })
        token_pos += m.total_tokens
        tile_pos += m.n_tiles
    record = {
        "format": PACK_FORMAT_VERSION, "key": key, "budget": budget,
        "tokenizer_fingerprint": tokenizer_fingerprint, "tiling": tiling,
        "total_tokens": token_pos, "total_tiles": tile_pos, "samples": samples,
    }
    return record, images


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shard(uri: str, packs: list[tuple[str, dict, list[tuple[str, str]]]], dataset_root: str) -> int:
    """Write one tar of (key, record, images) packs to ``uri`` atomically; return its size."""
    fd, tmp = tempfile.mkstemp(suffix=".tar", prefix=".tessera-shard-")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for key, record, images in packs:
                for suffix, payload in images:
                    _add(tar, f"{key}.{suffix}", storage.read_bytes(storage.join(dataset_root, payload)))
                _add(tar, f"{key}.json", json.dumps(record, sort_keys=True).encode())
        size = os.path.getsize(tmp)
        target = storage.local_path(uri)
        if target is not None:
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            staged = os.path.join(os.path.dirname(target), "." + os.path.basename(target) + ".tmp")
            os.replace(tmp, staged) if _same_device(tmp, staged) else _copy(tmp, staged)
            os.replace(staged, target)
        else:
            with open(tmp, "rb") as f:
                storage.atomic_write_bytes(uri, f.read())
        return size
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _same_device(a: str, b: str) -> bool:
    return os.stat(a).st_dev == os.stat(os.path.dirname(b) or ".").st_dev


def _copy(src: str, dst: str) -> None:
    import shutil

    shutil.copyfile(src, dst)
