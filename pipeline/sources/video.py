"""Videos, cut into clips: one sample per clip, its frames as JPEG images with exact timestamps.

Inputs: a folder of videos with optional sidecars (``x.mp4`` + ``x.txt`` whole-video
caption and/or ``x.json``: a list of clip captions ``[{start, end, text}]`` or an object
with ``caption``, ``captions``, ``transcript`` and any metadata), or a JSONL manifest
(``path: videos.jsonl``) whose rows hold ``video`` (a path, relative to the manifest)
and the same optional keys.

Each clip becomes a ``RawInput`` of kind ``video``: ``media`` = the frames as JPEG,
``media_info`` = ``{"kind": "video_frame", "timestamp_s": t}`` per frame (exact
presentation time in the source video), the conversation of ``pipeline.video.annotations``,
``input_ref`` = ``PATH#t=START,END`` (W3C media-fragment syntax), ``parent_ids`` =
``["video:" + sha256 of the file]`` and ``extra["video"]`` = clip bounds, rates, sizes,
planned image tokens, and ``partial`` (see below).

Frame token costs are computed with the job's tiling (the spec's top-level ``tiling``,
which the catalog counts tokens with): the ingest worker hands the dataset to ``attach``
and the source takes the tiling the job registered there. A ``tiling`` given in the
source options must equal it (a different one would plan frames against the wrong
token costs), otherwise the worker refuses to start.

A file that does not decode is one reject (stage ``decode``, reasons in
``pipeline.video.decode``). A file that decodes partly (cut-off download) keeps the
clips decoded so far, each with ``extra.video.partial`` = why, when ``keep_partial``;
otherwise it is one ``truncated`` reject. Query them with
``json_extract_string(extra, '$.video.partial') IS NOT NULL``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

from pipeline import storage
from pipeline.sources.base import Partition, RawInput, chunk
from pipeline.video.annotations import (
    DEFAULT_PROMPT, VideoText, clip_caption, clip_conversation, clip_transcript, parse_video_text,
)
from pipeline.tiling import TilingConfig
from pipeline.video.extract import ExtractConfig, ExtractedClip, extract_clips

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp")


@dataclass
class VideoConfig(ExtractConfig):
    path: str = ""  # a folder of videos, or a .jsonl manifest
    recursive: bool = True
    # "scenes": shot detection; "captions": one clip per clip-level caption (videos without
    # clip captions fall back to scenes)
    split: str = "scenes"
    prompt: str = DEFAULT_PROMPT
    keep_partial: bool = True
    videos_per_partition: int = 4  # a video is a lot of work: smaller partitions than for images
    # None: the ingest job's tiling (set by ``VideoSource.attach``); leave it out of specs.
    tiling: TilingConfig | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError("path: give a folder of videos or a .jsonl manifest")
        if self.split not in ("scenes", "captions"):
            raise ValueError(f"split must be 'scenes' or 'captions', not {self.split!r}")
        if self.videos_per_partition < 1:
            raise ValueError("videos_per_partition must be >= 1")


class VideoSource:
    def __init__(self, name: str, config: VideoConfig):
        self.name = name
        self.explicit_tiling = config.tiling is not None
        # Outside an ingest job (tests, benchmarks) without a tiling: the default one.
        self.config = config if config.tiling is not None else replace(config, tiling=TilingConfig())
        self.is_manifest = config.path.lower().endswith(".jsonl")

    def attach(self, dataset, job_id: str) -> None:
        """Called by the ingest worker: take the tiling the job registered in the dataset record."""
        recorded = (dataset.read_record() or {}).get("tiling")
        if not recorded:
            return
        job_tiling = TilingConfig(**recorded)
        if self.explicit_tiling and self.config.tiling != job_tiling:
            raise ValueError(f"source {self.name!r}: its tiling {self.config.tiling} differs from the job's tiling "
                             f"{job_tiling}; remove `tiling` from the video source (it follows the spec's tiling)")
        self.config = replace(self.config, tiling=job_tiling)

    # ---- listing ---------------------------------------------------------------------------
    def _entries(self) -> list[tuple]:
        fs, root = storage.filesystem(self.config.path)
        if self.is_manifest:
            if not fs.exists(root):
                raise FileNotFoundError(f"source {self.name!r}: manifest {self.config.path!r} does not exist")
            with fs.open(root, "rb") as f:
                n = sum(1 for _ in f)
            return [("row", i) for i in range(n)]
        if not fs.isdir(root):
            raise FileNotFoundError(f"source {self.name!r}: folder {self.config.path!r} does not exist")
        files = sorted(fs.find(root) if self.config.recursive else fs.ls(root, detail=False))
        return [("file", f) for f in files if f.lower().endswith(VIDEO_EXTENSIONS)]

    def partitions(self, partition_size: int) -> list[Partition]:
        size = min(partition_size, self.config.videos_per_partition)
        return [
            Partition(f"{self.name}-{i:05d}", self.name, tuple(part))
            for i, part in enumerate(chunk(self._entries(), size))
        ]

    # ---- reading ---------------------------------------------------------------------------
    def read(self, partition: Partition) -> Iterator[RawInput]:
        rows = None
        for kind, item in partition.args:
            if kind == "file":
                try:
                    text = self._sidecar_text(item)
                except ValueError as exc:
                    yield RawInput(item, self.name, kind="video", failure=("read", "malformed_annotations", str(exc)))
                    continue
                yield from self._video(item, text)
            else:
                if rows is None:
                    fs, root = storage.filesystem(self.config.path)
                    with fs.open(root, "rb") as f:
                        rows = f.read().decode("utf-8", errors="replace").splitlines()
                yield from self._manifest_row(item, rows[item])

    def _sidecar_text(self, path: str) -> VideoText:
        fs, _ = storage.filesystem(path)
        stem = path.rpartition(".")[0]
        caption = ""
        if fs.exists(stem + ".txt"):
            with fs.open(stem + ".txt", "rb") as f:
                caption = f.read().decode("utf-8-sig", errors="replace").strip()
        if fs.exists(stem + ".json"):
            with fs.open(stem + ".json", "rb") as f:
                return parse_video_text(json.loads(f.read()), caption)
        return VideoText(caption=caption)

    def _manifest_row(self, index: int, line: str) -> Iterator[RawInput]:
        ref = f"{self.config.path}#{index}"
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("video"), str) or not row["video"]:
                raise ValueError("row needs a 'video' path")
            video = row.pop("video")
            text = parse_video_text(row, "")
        except ValueError as exc:
            yield RawInput(ref, self.name, kind="video", failure=("read", "malformed_row", str(exc)))
            return
        base = self.config.path.rsplit("/", 1)[0] if "/" in self.config.path else "."
        uri = video if ("://" in video or video.startswith("/")) else f"{base}/{video}"
        yield from self._video(uri, text)

    def _video(self, uri: str, text: VideoText) -> Iterator[RawInput]:
        from pipeline.video.decode import VideoDecodeError, VideoReader  # PyAV: only in workers that decode

        fs, path = storage.filesystem(uri)
        segments = None
        if self.config.split == "captions" and text.captions:  # a video without captions: split by scene
            segments = [(s.start, s.end) for s in text.captions]
        try:
            with fs.open(path, "rb") as f:
                sha = _sha256(f)
                f.seek(0)
                with VideoReader(f, max_pixels=self.config.max_source_pixels) as reader:
                    clips = list(extract_clips(reader, self.config, segments))
                    info, report = reader.info, reader.report
        except FileNotFoundError as exc:
            yield RawInput(uri, self.name, kind="video", failure=("read", "missing_file", str(exc)))
            return
        except VideoDecodeError as exc:
            yield RawInput(uri, self.name, kind="video", failure=("decode", exc.reason, exc.detail))
            return
        except Exception as exc:  # an unforeseen file must be a reject, not a dead partition
            yield RawInput(uri, self.name, kind="video", failure=("decode", "error", f"{type(exc).__name__}: {exc}"))
            return
        if not clips:  # caption segments that all lie past the decoded frames
            yield RawInput(uri, self.name, kind="video", failure=(
                "decode", "no_clips", f"no caption segment overlaps the decoded 0..{report.last_pts_s:.3f}s"))
            return
        if report.partial and not self.config.keep_partial:
            yield RawInput(uri, self.name, kind="video", failure=("decode", "truncated", report.partial))
            return
        common = {
            "path": uri, "sha256": sha, "n_clips": len(clips), "source_width": info.width,
            "source_height": info.height, "average_fps": info.average_fps, "codec": info.codec,
            "container": info.container, "declared_duration_s": info.declared_duration_s,
            "start_offset_s": info.start_offset_s,
            "decoded_until_s": report.last_pts_s, "dropped_bad_pts": report.dropped_bad_pts,
            "partial": report.partial, "token_budget": self.config.token_budget,
        }
        for index, clip in enumerate(clips):
            yield self._clip_input(uri, text, clip, index, common)

    def _clip_input(self, uri: str, text: VideoText, clip: ExtractedClip, index: int, common: dict) -> RawInput:
        ref = f"{uri}#t={clip.start:.3f},{clip.end:.3f}"
        video = {
            **common, "clip_index": index, "start_s": clip.start, "end_s": clip.end, "segment": clip.segment,
            "fps": clip.fps, "frames_on_grid": clip.candidates, "frames": len(clip.times),
            "plan": asdict(clip.plan) if clip.plan else None,
        }
        if clip.plan is None:
            return RawInput(ref, self.name, kind="video", failure=(
                "decode", "over_token_budget",
                f"one frame costs more than token_budget={self.config.token_budget} with this tiling"))
        caption = clip_caption(text, clip.start, clip.end, common["n_clips"], clip.segment)
        transcript = clip_transcript(text, clip.start, clip.end)
        return RawInput(
            ref, self.name, media=clip.jpegs, text=caption, kind="video",
            extra={**text.metadata, "video": video},
            conversation=clip_conversation(clip.times, clip.start, caption, transcript, self.config.prompt),
            media_info=[{"kind": "video_frame", "timestamp_s": t} for t in clip.times],
            parent_ids=["video:" + common["sha256"]],
        )


def _sha256(f) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()
