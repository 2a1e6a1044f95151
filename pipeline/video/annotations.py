"""Text that comes with a video (captions, transcripts) and the conversation a clip becomes.

Inputs, per video (sidecar files or manifest fields):

- a whole-video caption: ``x.txt``, or ``"caption"`` in ``x.json`` / the manifest row;
- clip-level captions: ``[{start, end, text}]`` (``x.json`` as a bare list, or its
  ``"captions"`` key);
- a transcript: ``[{start, end, text}]`` under ``"transcript"`` (speech, subtitles).

A clip's caption is the clip-level captions whose midpoint lies in the clip (each
caption lands in exactly one scene clip), else the whole-video caption when the video
is a single clip. Transcript segments overlapping the clip are written into the user
turn with their times.

Conversation layout (one user turn, one assistant turn)::

    user:      <t=0.0s><image>\\n<t=0.5s><image>\\n ... [Transcript:\\n<t=1.2s> words\\n] PROMPT
    assistant: the clip's caption ("" when none: the rule filters flag it, nothing is dropped)

``<t=...>`` is the frame's time relative to the clip start, one decimal; the exact
absolute time of each frame is ``MediaRef.timestamp_s`` (for time position ids).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import IMAGE_PLACEHOLDER, Turn

DEFAULT_PROMPT = "Describe what happens in the video."


@dataclass
class Segment:
    start: float
    end: float
    text: str

    @property
    def mid(self) -> float:
        return (self.start + self.end) / 2


@dataclass
class VideoText:
    caption: str = ""
    captions: list[Segment] = field(default_factory=list)
    transcript: list[Segment] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # other keys: carried into Sample.extra


def parse_segments(items: Any, where: str) -> list[Segment]:
    if not isinstance(items, list):
        raise ValueError(f"{where}: expected a list of {{start, end, text}}")
    out = []
    for i, item in enumerate(items):
        try:
            seg = Segment(float(item["start"]), float(item["end"]), str(item["text"]).strip())
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}[{i}]: needs numeric start, end and a text ({exc})") from exc
        if not 0 <= seg.start < seg.end:
            raise ValueError(f"{where}[{i}]: need 0 <= start < end, got {seg.start}..{seg.end}")
        out.append(seg)
    return out


def parse_video_text(obj: Any, caption: str = "") -> VideoText:
    """From a sidecar JSON value (list of captions or object) or a manifest row's fields."""
    if isinstance(obj, list):
        return VideoText(caption=caption, captions=parse_segments(obj, "captions"))
    if obj is None:
        return VideoText(caption=caption)
    if not isinstance(obj, dict):
        raise ValueError("video annotations must be a list of captions or an object")
    obj = dict(obj)
    text = VideoText(
        caption=str(obj.pop("caption", "") or caption).strip(),
        captions=parse_segments(obj.pop("captions", []) or [], "captions"),
        transcript=parse_segments(obj.pop("transcript", []) or [], "transcript"),
    )
    text.metadata = obj
    return text


def clip_caption(text: VideoText, start: float, end: float, n_clips: int, segment: int | None) -> str:
    if segment is not None:  # the clip *is* this caption's segment
        return text.captions[segment].text
    inside = [s.text for s in text.captions if start <= s.mid < end]
    if inside:
        return " ".join(inside)
    return text.caption if n_clips == 1 else ""


def clip_transcript(text: VideoText, start: float, end: float) -> list[Segment]:
    return [s for s in text.transcript if s.start < end and s.end > start]


def fmt_time(t: float) -> str:
    return f"<t={max(0.0, t):.1f}s>"


def clip_conversation(
    frame_times: list[float], clip_start: float, caption: str, transcript: list[Segment], prompt: str,
) -> list[Turn]:
    lines = [f"{fmt_time(t - clip_start)}{IMAGE_PLACEHOLDER}" for t in frame_times]
    if transcript:
        lines.append("Transcript:")
        lines += [f"{fmt_time(s.start - clip_start)} {s.text}" for s in transcript]
    lines.append(prompt)
    return [Turn("user", "\n".join(lines)), Turn("assistant", caption)]
