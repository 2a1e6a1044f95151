"""Safe video decoding with PyAV: untrusted bytes in, frames with presentation times (or a reason) out.

Every frame's time is its own presentation timestamp (``pts * time_base``, minus the
stream's start time so the first frame is at ~0 as in a player), never
``index / average_fps``: on variable-frame-rate files the latter drifts by seconds.

Failures become a ``VideoDecodeError`` with a short reason code (a reject row):

- ``empty``            zero bytes
- ``not_a_video``      no container FFmpeg recognises and no known video signature
- ``corrupt_video``    a video signature, but the container or its first frames do not decode
- ``truncated``        the file ends inside its own structure and nothing decodes
- ``no_video_stream``  a valid container without video (audio-only, or no stream at all)
- ``zero_frames``      a video stream that yields no frame
- ``too_large``        the frame size exceeds the configured pixel limit

A file that decodes for a while and then fails (or stops well before the duration its
header declares) is *partial*: the frames decoded so far are kept and
``DecodeReport.partial`` says why, so the caller can choose to keep or reject them.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import av

REASONS = ("empty", "not_a_video", "corrupt_video", "truncated", "no_video_stream", "zero_frames", "too_large")

# Container signatures: (offset, bytes). Unrecognised + unreadable means "not a video".
_SIGNATURES = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"),  # MP4 / MOV
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
    (0, b"RIFF"), (0, b"OggS"), (0, b"FLV"), (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"),
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
)


class VideoDecodeError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class VideoInfo:
    width: int
    height: int
    average_fps: float | None  # as declared: informative only, never used for timestamps
    declared_duration_s: float | None  # of the video stream, when the container says
    start_offset_s: float  # the stream's first pts; subtracted so that times start at 0 like a player's clock
    codec: str
    container: str


@dataclass
class DecodeReport:
    """Filled in while frames are iterated; read it after the iterator is exhausted."""

    frames: int = 0
    last_pts_s: float | None = None
    dropped_bad_pts: int = 0  # frames without a timestamp or going back in time
    partial: str | None = None  # why decoding stopped early, None if the file decoded whole


def _has_signature(head: bytes) -> bool:
    return any(head[off : off + len(sig)] == sig for off, sig in _SIGNATURES) or (
        len(head) > 188 and head[0] == 0x47 and head[188] == 0x47  # MPEG-TS sync bytes
    )


def _mp4_cut_short(f, size: int) -> bool:
    """Whether an MP4's top-level boxes run past the end of the file (a cut-off download)."""
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        box_size, box_type = struct.unpack(">I4s", f.read(8))
        if box_size == 1:  # 64-bit size follows the type
            box_size = struct.unpack(">Q", f.read(8))[0]
        elif box_size == 0:  # "to the end of the file"
            return False
        if box_size < 8:
            return False  # not box structure at all: let the caller call it corrupt
        pos += box_size
    return pos > size


def _classify_open_failure(f, exc: Exception) -> VideoDecodeError:
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    head = f.read(512)
    if size == 0:
        return VideoDecodeError("empty", "zero bytes")
    if not _has_signature(head):
        return VideoDecodeError("not_a_video", f"no video container recognised ({type(exc).__name__})")
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") and _mp4_cut_short(f, size):
        return VideoDecodeError("truncated", "MP4 boxes extend past the end of the file")
    if isinstance(exc, EOFError):
        return VideoDecodeError("truncated", f"container ends early: {exc}")
    return VideoDecodeError("corrupt_video", f"{type(exc).__name__}: {exc}")


def _declared_duration(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")  # Matroska writes the stream duration as a tag
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    if container.duration and len(container.streams) == 1:  # no other stream could be the longer one
        return container.duration / av.time_base
    return None


class VideoReader:
    """Open a video from a binary file object; iterate its frames with their times.

    ``with VideoReader(f) as r: for t, frame in r.frames(): ...`` then ``r.report``.
    """

    def __init__(self, fileobj, max_pixels: int = 40_000_000, threads: bool = True):
        self._f = fileobj
        try:
            self._container = av.open(fileobj, "r")
        except Exception as exc:  # PyAV raises many error types; all mean "cannot open"
            raise _classify_open_failure(fileobj, exc) from exc
        try:
            streams = self._container.streams
            if not streams.video:
                kinds = sorted({s.type for s in streams}) or ["none"]
                raise VideoDecodeError("no_video_stream", "streams: " + ", ".join(kinds))
            self._stream = streams.video[0]
            ctx = self._stream.codec_context
            if ctx.width * ctx.height > max_pixels:
                raise VideoDecodeError("too_large", f"{ctx.width}x{ctx.height} exceeds {max_pixels} pixels")
            if threads:  # frame + slice threading: the decoder is the cost of this whole pipeline
                self._stream.thread_type = "AUTO"
            rate = self._stream.average_rate
            start, base = self._stream.start_time, self._stream.time_base
            # MPEG-TS and friends start their clocks anywhere (hours in, for broadcast captures).
            self._offset = float(start * base) if start is not None and base else 0.0
            self.info = VideoInfo(
                width=ctx.width, height=ctx.height, average_fps=float(rate) if rate else None,
                declared_duration_s=_declared_duration(self._container, self._stream),
                codec=ctx.name, container=self._container.format.name, start_offset_s=self._offset,
            )
        except Exception:
            self._container.close()
            raise
        self.report = DecodeReport()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self._container.close()

    def frames(self) -> Iterator[tuple[float, av.VideoFrame]]:
        """(presentation time in seconds, frame), in presentation order, times strictly increasing."""
        report = self.report
        try:
            for frame in self._container.decode(self._stream):
                if frame.pts is None or frame.time is None:
                    report.dropped_bad_pts += 1
                    continue
                t = float(frame.time) - self._offset
                if report.last_pts_s is not None and t <= report.last_pts_s:
                    report.dropped_bad_pts += 1  # duplicate or backwards time: unusable as a timestamp
                    continue
                report.frames += 1
                report.last_pts_s = t
                yield t, frame
        except (av.error.FFmpegError, EOFError) as exc:
            if report.frames == 0:
                raise VideoDecodeError("corrupt_video", f"no frame decodes: {exc}") from exc
            report.partial = f"decoding stopped at {report.last_pts_s:.3f}s: {type(exc).__name__}: {exc}"
            return
        if report.frames == 0:
            raise VideoDecodeError("zero_frames", "the video stream yields no frame")
        self._check_complete()

    def _check_complete(self) -> None:
        """A file cut short can demux cleanly (Matroska does): compare with the declared duration."""
        declared, last = self.info.declared_duration_s, self.report.last_pts_s
        fps = self.info.average_fps or 25.0
        # Tolerance: a few frame intervals and 2% (containers round durations; the last frame lasts a while).
        if declared and last + 3.0 / fps + 0.02 * declared < declared:
            self.report.partial = f"decoded up to {last:.3f}s of a declared {declared:.3f}s"
