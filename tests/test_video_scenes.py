"""Shot splitting and frame sampling: cuts found where they are, frames picked on real time."""
from __future__ import annotations

import pytest

from pipeline.video.clips import scene_clips
from pipeline.video.decode import VideoReader
from pipeline.video.sampling import GridSampler, choose_fps, select_on_grid, uniform_subset
from pipeline.video.scenes import SceneConfig, distance, histogram
from pipeline.video.synth import cfr_pts, frame_array, write_video


def test_threshold_separates_motion_from_cuts():
    """The default threshold sits between the largest in-shot change and the smallest cut."""
    w, h = 160, 90
    motion = [distance(histogram(frame_array(t / 30, 0, w, h)), histogram(frame_array((t + 1) / 30, 0, w, h)))
              for t in range(0, 120, 7)]
    cuts = [distance(histogram(frame_array(1.0, a, w, h)), histogram(frame_array(1.0, a + 1, w, h)))
            for a in range(6)]
    darker = frame_array(1.0, 0, w, h) * 0.7  # an exposure change inside a shot
    exposure = distance(histogram(frame_array(1.0, 0, w, h)), histogram(darker.astype("uint8")))
    threshold = SceneConfig().threshold
    assert max(motion) < threshold / 3 and min(cuts) > threshold and exposure < threshold


def clips_of(path: str, scene: SceneConfig, fps: float = 2.0):
    with open(path, "rb") as f, VideoReader(f) as reader:
        return list(scene_clips(reader.frames(), scene, fps, 448, reader.info.average_fps))


@pytest.mark.parametrize("detect_fps", [8.0, 0.0])
def test_cut_found_within_one_sample_interval(tmp_path, detect_fps):
    path = str(tmp_path / "cuts.mp4")
    cuts_ms = [2300, 5000]
    write_video(path, cfr_pts(7, 30), cut_at_ms=cuts_ms, width=192, height=108)
    clips = clips_of(path, SceneConfig(detect_fps=detect_fps))
    assert len(clips) == 3
    for clip, cut in zip(clips[1:], cuts_ms):
        assert 0 <= clip.start - cut / 1000 <= 0.5  # one sample interval at 2 fps
        # In fact: the first compared frame at or after the cut.
        assert clip.start - cut / 1000 <= (1 / detect_fps if detect_fps else 1 / 30) + 1e-6
    assert [c.end for c in clips[:-1]] == [c.start for c in clips[1:]]  # contiguous
    assert clips[-1].end == pytest.approx(7.0, abs=0.05)
    # Candidates are on the 2 fps grid of each clip, with their exact times.
    assert clips[1].times[:3] == pytest.approx([clips[1].start + k * 0.5 for k in range(3)], abs=0.02)


def test_min_clip_and_max_clip_and_short_tail(tmp_path):
    path = str(tmp_path / "flash.mp4")
    # A cut at 0.4 s (too early: min_clip_s) and one 0.3 s before the end (tail joins the previous clip).
    write_video(path, cfr_pts(5, 30), cut_at_ms=[400, 4700], width=96, height=64)
    clips = clips_of(path, SceneConfig(min_clip_s=1.0, max_clip_s=2.0))
    starts = [round(c.start, 2) for c in clips]
    assert starts == [0.0, 2.0, 4.0]  # max_clip_s splits; no clip at 0.4 s nor at 4.7 s
    assert clips[-1].end == pytest.approx(5.0, abs=0.05)
    no_scenes = clips_of(path, SceneConfig(enabled=False, max_clip_s=100))
    assert len(no_scenes) == 1 and len(no_scenes[0].times) == 10


def test_grid_follows_presentation_time_on_vfr():
    times = [0.0, 0.04, 0.08, 0.5, 0.52, 1.5, 1.51, 3.0, 3.033]
    # Each grid point takes the first frame at or after it; a frame covering several points counts once.
    assert [times[i] for i in select_on_grid(times, 0.0, 2.0)] == [0.0, 0.5, 1.5, 3.0]
    grid = GridSampler(10.0, 1.0)
    taken = [grid.take(t) for t in (10.0, 10.9, 11.0, 11.2, 13.7, 13.9, 14.0)]
    assert taken == [True, False, True, False, True, False, True]


def test_dynamic_rate_and_uniform_subset():
    assert choose_fps(10, 0.5, 2.0, max_frames=64) == 2.0  # short clip: the highest rate
    assert choose_fps(64, 0.5, 2.0, max_frames=64) == 1.0  # lowered so 64 frames span it
    assert choose_fps(1000, 0.5, 2.0, max_frames=64) == 0.5  # floor; frames then dropped uniformly
    assert uniform_subset(10, 4) == [0, 3, 6, 9]
    assert uniform_subset(3, 5) == [0, 1, 2] and uniform_subset(7, 1) == [3]
    for n in range(1, 40):
        for keep in range(1, n + 1):
            picked = uniform_subset(n, keep)
            assert len(set(picked)) == keep and picked == sorted(picked)
