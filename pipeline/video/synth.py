"""Synthetic videos made with PyAV: test fixtures and benchmark input, no ffmpeg CLI needed.

Every file is encoded with explicit presentation timestamps (ms), so a test knows the
exact time of each frame it wrote, including for variable-frame-rate files. Scenes are
flat backgrounds of distinct colours with a moving square: inside a scene consecutive
frames differ a little (motion), across a cut they differ a lot (colour).
"""
from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np

# Backgrounds of successive scenes: far apart in hue so a cut is unambiguous.
SCENE_COLOURS = ((200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 200, 40), (160, 40, 180), (40, 190, 190))


def frame_array(t_s: float, scene: int, width: int, height: int, texture: bool = False) -> np.ndarray:
    """An RGB frame of ``scene`` at time ``t_s``: a background colour and a moving white square.

    ``texture``: the background gets a per-scene noise pattern panning sideways, so the
    encoder has real work (flat colours compress ~100x better than camera footage and
    would make decode benchmarks meaningless).
    """
    img = np.empty((height, width, 3), np.uint8)
    img[:] = SCENE_COLOURS[scene % len(SCENE_COLOURS)]
    if texture:
        noise = _texture(scene, width, height)
        shift = int(t_s * width * 0.1)  # a slow pan: a tenth of the width per second
        img[:] = np.clip(img.astype(np.int16) + np.roll(noise, shift, axis=1), 0, 255).astype(np.uint8)
    side = max(4, min(width, height) // 5)
    x = int((t_s * 0.25 * width) % max(1, width - side))  # a quarter of the width per second
    y = (height - side) // 2
    img[y : y + side, x : x + side] = 255
    return img


_TEXTURES: dict[tuple[int, int, int], np.ndarray] = {}


def _texture(scene: int, width: int, height: int) -> np.ndarray:
    key = (scene, width, height)
    if key not in _TEXTURES:
        rng = np.random.default_rng(scene)
        small = rng.integers(-40, 41, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.int16)
        fine = rng.integers(-8, 9, size=(height, width, 3), dtype=np.int16)  # sensor-like grain
        _TEXTURES[key] = np.repeat(np.repeat(small, 8, 0), 8, 1)[:height, :width] + fine
    return _TEXTURES[key]


def write_video(
    path: str,
    pts_ms: Sequence[int],
    *,
    width: int = 160,
    height: int = 96,
    cut_at_ms: Sequence[int] = (),
    codec: str = "libx264",
    container_format: str | None = None,
    faststart: bool = False,
    audio_s: float = 0.0,
    texture: bool = False,
    x264_options: dict[str, str] | None = None,
) -> None:
    """Encode one frame per entry of ``pts_ms`` (strictly increasing) at exactly that time.

    ``cut_at_ms``: times where a new scene (new background colour) starts.
    ``faststart``: MP4 index (moov) before the data, as streaming sites serve files.
    ``audio_s``: also a silent audio track this long (0: none).
    """
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(path, "w", format=container_format, options=options) as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        if codec == "libx264":  # fixtures: small fast files; benchmarks pass a realistic preset
            stream.options = x264_options or {"preset": "ultrafast", "bf": "0"}
        astream = out.add_stream("aac", rate=16000) if audio_s else None
        for pts in pts_ms:
            scene = sum(1 for c in cut_at_ms if pts >= c)
            frame = av.VideoFrame.from_ndarray(frame_array(pts / 1000, scene, width, height, texture), format="rgb24")
            frame.pts, frame.time_base = int(pts), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if astream is not None:
            _write_silence(out, astream, seconds=audio_s)


def _write_silence(out, stream, seconds: float) -> None:
    samples = 1024
    for i in range(max(1, int(seconds * stream.rate / samples))):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = stream.rate, i * samples
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def write_audio_only(path: str, seconds: float = 1.0) -> None:
    with av.open(path, "w", format="mp4") as out:
        _write_silence(out, out.add_stream("aac", rate=16000), seconds)


def write_zero_frame_video(path: str) -> None:
    """An AVI whose header declares a video stream that holds no frame at all."""
    with av.open(path, "w", format="avi") as out:
        stream = out.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuvj420p"
        out.start_encoding()


def cfr_pts(seconds: float, fps: float) -> list[int]:
    return [round(i * 1000 / fps) for i in range(int(seconds * fps))]
