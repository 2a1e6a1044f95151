"""Video decoding: exact timestamps (VFR included) and one reason per kind of broken file."""
from __future__ import annotations

import av
import numpy as np
import pytest

from pipeline.video.decode import VideoDecodeError, VideoReader
from pipeline.video.synth import cfr_pts, write_audio_only, write_video, write_zero_frame_video

# Irregular gaps from 10 ms to 1.5 s: index x average-fps timestamps would be far off.
VFR_PTS_MS = [0, 40, 80, 500, 520, 1500, 1510, 1520, 3000, 3033, 3066, 4200, 4210, 6000]


def decode_times(path: str) -> tuple[list[float], VideoReader]:
    with open(path, "rb") as f, VideoReader(f) as reader:
        times = [t for t, _ in reader.frames()]
    return times, reader


def reason_of(path: str) -> str:
    with pytest.raises(VideoDecodeError) as err:
        decode_times(path)
    return err.value.reason


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_vfr_timestamps_are_the_encoded_pts(tmp_path, container):
    path = str(tmp_path / f"vfr.{container}")
    write_video(path, VFR_PTS_MS, container_format=container)
    times, reader = decode_times(path)
    assert times == pytest.approx([p / 1000 for p in VFR_PTS_MS], abs=1e-6)
    # What the naive method would have said: it is seconds off, which is why it is not used.
    naive = [i / reader.info.average_fps for i in range(len(times))]
    assert max(abs(a - b) for a, b in zip(naive, times)) > 1.0
    assert reader.report.partial is None and reader.report.frames == len(VFR_PTS_MS)


def test_each_broken_kind_is_rejected_with_its_reason(tmp_path):
    good = tmp_path / "good.mp4"
    write_video(str(good), cfr_pts(2, 30))  # moov (the index) at the end, FFmpeg's default
    data = good.read_bytes()
    files = {
        "empty.mp4": b"",
        "random.mp4": np.random.default_rng(0).bytes(20_000),
        "html.mp4": b"<!DOCTYPE html><html><body>404 Not Found</body></html>" * 20,
        "cut.mp4": data[: len(data) // 2],  # index lost with the tail
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    zeroed = bytearray(data)  # index intact, every frame's bytes zeroed
    start, end = zeroed.find(b"mdat") + 4, zeroed.find(b"moov") - 4
    zeroed[start:end] = bytes(end - start)
    (tmp_path / "zeroed.mp4").write_bytes(zeroed)
    write_audio_only(str(tmp_path / "audio.mp4"))
    write_zero_frame_video(str(tmp_path / "zero.avi"))
    expected = {
        "empty.mp4": "empty", "random.mp4": "not_a_video", "html.mp4": "not_a_video", "cut.mp4": "truncated",
        "zeroed.mp4": "corrupt_video", "audio.mp4": "no_video_stream", "zero.avi": "zero_frames",
    }
    assert {name: reason_of(str(tmp_path / name)) for name in expected} == expected


@pytest.mark.parametrize("container,faststart", [("mp4", True), ("matroska", False)])
def test_cut_off_file_keeps_decoded_frames_and_says_partial(tmp_path, container, faststart):
    """Index first (faststart MP4) or a streaming container (MKV): the head still decodes."""
    path = tmp_path / "whole"
    write_video(str(path), cfr_pts(4, 30), container_format=container, faststart=faststart)
    data = path.read_bytes()
    (tmp_path / "cut").write_bytes(data[: len(data) // 2])
    times, reader = decode_times(str(tmp_path / "cut"))
    assert 0 < len(times) < 120
    assert times == pytest.approx([p / 1000 for p in cfr_pts(4, 30)[: len(times)]], abs=1e-6)
    assert reader.report.partial and reader.report.last_pts_s == times[-1]
    whole, full_reader = decode_times(str(path))  # and the intact file is not flagged
    assert len(whole) == 120 and full_reader.report.partial is None


def test_audio_track_longer_than_video_is_not_called_partial(tmp_path):
    path = str(tmp_path / "av.mkv")
    write_video(path, cfr_pts(1, 30), container_format="matroska", audio_s=3.0)
    with av.open(path) as container:
        assert container.duration / av.time_base > 2.5  # the container's duration is the audio's
    times, reader = decode_times(path)
    assert len(times) == 30 and reader.report.partial is None


def test_frame_size_limit(tmp_path):
    path = str(tmp_path / "v.mp4")
    write_video(path, cfr_pts(0.2, 30), width=320, height=240)
    with open(path, "rb") as f, pytest.raises(VideoDecodeError) as err:
        VideoReader(f, max_pixels=320 * 240 - 1)
    assert err.value.reason == "too_large"


def test_stream_clock_offset_is_removed(tmp_path):
    """An MPEG-TS capture whose clock starts 10 s in: frame times still start at 0, gaps kept."""
    path = str(tmp_path / "late.ts")
    write_video(path, [10_000 + p for p in VFR_PTS_MS], container_format="mpegts")
    times, reader = decode_times(path)
    assert reader.info.start_offset_s == pytest.approx(10.0)
    assert times == pytest.approx([p / 1000 for p in VFR_PTS_MS], abs=1e-4)
