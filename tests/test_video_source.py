"""The ``video`` source through a real ingest job (in-process): catalog rows, rejects, budgets."""
from __future__ import annotations

import hashlib
import io
import json
import re

import pytest
from PIL import Image

from jobs.ingest_job import run_ingest
from jobs.spec import parse_spec
from pipeline import catalog
from pipeline.dataset import Dataset
from pipeline.tiling import TilingConfig, count_tiles
from pipeline.video.synth import cfr_pts, write_audio_only, write_video, write_zero_frame_video
from schemas.config import ConfigError

VFR_PTS_MS = [0, 40, 80, 500, 520, 1500, 1510, 1520, 3000, 3033, 3066, 4200, 4210, 6000]
SCENE_CUTS_MS = [3000, 5500]
CAPTIONS = [
    {"start": 0.5, "end": 2.5, "text": "A white square slides over a red background."},
    {"start": 3.2, "end": 5.0, "text": "The background turns green."},
    {"start": 6.0, "end": 7.5, "text": "Now it is blue."},
]
REJECTS = {"empty.mp4": "empty", "random.mp4": "not_a_video", "cut.mp4": "truncated",
           "audio.mp4": "no_video_stream", "zero.avi": "zero_frames"}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    folder = root / "videos"
    folder.mkdir()
    write_video(str(folder / "scenes.mp4"), cfr_pts(8, 30), width=320, height=180, cut_at_ms=SCENE_CUTS_MS)
    (folder / "scenes.json").write_text(json.dumps({
        "captions": CAPTIONS, "topic": "synthetic",
        "transcript": [{"start": 3.5, "end": 4.5, "text": "green now"}],
    }))
    write_video(str(folder / "vfr.mkv"), VFR_PTS_MS, container_format="matroska")
    (folder / "vfr.txt").write_text("A white square moves in jumps.\n")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "random.mp4").write_bytes(bytes(range(256)) * 40)
    write_video(str(root / "whole.mp4"), cfr_pts(4, 30), width=320, height=180)
    data = (root / "whole.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])  # index at the end: lost
    write_video(str(root / "fs.mp4"), cfr_pts(4, 30), width=320, height=180, faststart=True)
    data = (root / "fs.mp4").read_bytes()
    (folder / "partial.mp4").write_bytes(data[: len(data) // 2])  # index first: the head decodes
    write_audio_only(str(folder / "audio.mp4"))
    write_zero_frame_video(str(folder / "zero.avi"))
    # A manifest of long clips split by their (overlapping) captions, under a tight budget.
    write_video(str(root / "long.mp4"), cfr_pts(30, 10), width=640, height=360)
    (root / "long.jsonl").write_text(json.dumps({"video": "long.mp4", "captions": [
        {"start": 0, "end": 30, "text": "The whole thing."}, {"start": 10, "end": 12, "text": "A short part."}],
        "license": "cc0"}) + "\n" + "not json\n")
    spec = parse_spec({
        "name": "video", "dataset": str(root / "ds"), "tokenizer": "byte-level",
        "sources": [
            {"name": "clips", "type": "video", "path": str(folder), "scene": {"min_clip_s": 1.0}},
            {"name": "long", "type": "video", "path": str(root / "long.jsonl"), "split": "captions",
             "min_fps": 1.0, "max_fps": 4.0, "max_frames": 48, "token_budget": 3000},
        ],
    })
    summary = run_ingest(spec, mode="local")
    return root, spec, summary, Dataset(spec.dataset)


def rows(ds, sql):
    return catalog.query(ds, sql).to_pylist()


def samples(ds, where="TRUE"):
    out = rows(ds, f"SELECT * FROM samples WHERE {where} ORDER BY input_ref")
    for r in out:
        r["extra"] = json.loads(r["extra"])
    return out


def test_every_video_is_clips_or_one_reject(ingested):
    _, _, summary, ds = ingested
    rejects = {r["input_ref"].rsplit("/", 1)[-1]: (r["stage"], r["reason"]) for r in rows(ds, "SELECT * FROM rejects")}
    expected = {name: ("decode", reason) for name, reason in REJECTS.items()}
    expected["long.jsonl#1"] = ("read", "malformed_row")
    assert rejects == expected
    by_video = {}
    for s in samples(ds):
        by_video.setdefault(s["extra"]["video"]["path"].rsplit("/", 1)[-1], []).append(s)
    assert sorted(by_video) == ["long.mp4", "partial.mp4", "scenes.mp4", "vfr.mkv"]
    assert summary.samples == sum(len(v) for v in by_video.values())
    assert all(s["kind"] == "video" for v in by_video.values() for s in v)


def test_vfr_frame_timestamps_are_the_encoded_pts(ingested):
    _, _, _, ds = ingested
    (s,) = samples(ds, "input_ref LIKE '%vfr.mkv%'")
    times = [m["timestamp_s"] for m in s["media"]]
    encoded = [p / 1000 for p in VFR_PTS_MS]
    assert all(any(abs(t - e) < 1e-6 for e in encoded) for t in times)
    assert times == pytest.approx([0.0, 0.5, 1.5, 3.0, 4.2, 6.0], abs=1e-6)  # the 2 fps grid on real time
    assert all(m["kind"] == "video_frame" for m in s["media"])
    user, assistant = s["conversation"]
    assert re.findall(r"<t=([\d.]+)s><image>", user["content"]) == ["0.0", "0.5", "1.5", "3.0", "4.2", "6.0"]
    assert assistant["content"] == s["text"] == "A white square moves in jumps."


def test_scene_clips_carry_their_captions_and_transcript(ingested):
    root, _, _, ds = ingested
    clips = samples(ds, "input_ref LIKE '%scenes.mp4%'")
    assert [round(c["extra"]["video"]["start_s"], 2) for c in clips] == [0.0, 3.0, 5.5]
    assert [c["text"] for c in clips] == [c["text"] for c in CAPTIONS]
    assert "Transcript:\n<t=0.5s> green now" in clips[1]["conversation"][0]["content"]
    assert "Transcript" not in clips[0]["conversation"][0]["content"]
    sha = hashlib.sha256((root / "videos" / "scenes.mp4").read_bytes()).hexdigest()
    assert all(c["parent_ids"] == ["video:" + sha] and c["extra"]["topic"] == "synthetic" for c in clips)
    for c in clips:  # frames lie inside their clip; text times are clip-relative
        v = c["extra"]["video"]
        assert all(v["start_s"] <= m["timestamp_s"] < v["end_s"] for m in c["media"])
        assert c["input_ref"].endswith(f"#t={v['start_s']:.3f},{v['end_s']:.3f}")


def test_image_tokens_within_budget_and_counted_like_the_catalog(ingested):
    root, spec, _, ds = ingested
    budgets = {s.name: s.options.get("token_budget", 16384) for s in spec.sources}
    for s in samples(ds):
        plan = s["extra"]["video"]["plan"]
        n = len(s["media"])
        assert s["image_tokens"] == plan["image_tokens"] <= budgets[s["source"]]
        for m in s["media"]:
            assert m["n_tiles"] == count_tiles(m["width"], m["height"], TilingConfig().for_n_images(n))
            assert (m["width"], m["height"]) == (plan["width"], plan["height"])
    first = samples(ds, "source = 'long'")[0]
    data = (root / "ds" / first["media"][0]["uri"]).read_bytes()
    assert Image.open(io.BytesIO(data)).format == "JPEG"


def test_caption_segments_become_clips_under_a_tight_budget(ingested):
    _, _, _, ds = ingested
    clips = samples(ds, "source = 'long'")
    by_text = {c["text"]: c for c in clips}
    assert set(by_text) == {"The whole thing.", "A short part."}
    whole, part = by_text["The whole thing."], by_text["A short part."]
    # 30 s at up to 4 fps, max 48 frames -> 1.6 fps -> 48 frames, then the 3000-token budget.
    assert whole["extra"]["video"]["fps"] == pytest.approx(1.6) and whole["extra"]["video"]["frames_on_grid"] == 48
    assert len(whole["media"]) == 3000 // 258 and whole["image_tokens"] <= 3000
    assert part["extra"]["video"]["fps"] == 4.0  # short segment: the highest rate
    assert all(10 <= m["timestamp_s"] < 12 for m in part["media"]) and part["extra"]["license"] == "cc0"


def test_partial_file_keeps_decoded_clips_and_says_so(ingested, tmp_path):
    from pipeline.sources.video import VideoConfig, VideoSource

    _, _, _, ds = ingested
    (clip,) = samples(ds, "input_ref LIKE '%partial.mp4%'")
    video = clip["extra"]["video"]
    assert video["partial"] and video["decoded_until_s"] < 3.5 and video["end_s"] <= 3.6
    others = samples(ds, "input_ref NOT LIKE '%partial.mp4%'")
    assert others and all(s["extra"]["video"]["partial"] is None for s in others)
    found = rows(ds, "SELECT count(*) AS n FROM samples "
                     "WHERE json_extract_string(extra, '$.video.partial') IS NOT NULL")
    assert found[0]["n"] == 1
    # keep_partial: false makes the same file one "truncated" reject.
    folder = tmp_path / "p"
    folder.mkdir()
    with open(video["path"], "rb") as f:
        (folder / "partial.mp4").write_bytes(f.read())
    source = VideoSource("strict", VideoConfig(path=str(folder), keep_partial=False))
    (raw,) = [r for p in source.partitions(8) for r in source.read(p)]
    assert raw.failure[:2] == ("decode", "truncated")


def test_spec_options_are_checked():
    def spec(**options):
        source = {"name": "v", "type": "video", "path": "/tmp", **options}
        return {"name": "v", "dataset": "/tmp/x", "sources": [source]}

    for bad in ({"fpz": 2}, {"min_fps": 1.0}, {"split": "shots"}, {"scene": {"threshold": 2}},
                {"tiling": {"tile_size": 100}}):
        with pytest.raises((ConfigError, ValueError)):
            parse_spec(spec(**bad))
    parsed = parse_spec(spec(min_fps=0.5, max_fps=2, scene={"threshold": 0.5}, tiling={"max_tiles": 6}))
    config = parsed.sources[0].build().config
    assert config.rate_range == (0.5, 2.0) and config.scene.threshold == 0.5 and config.tiling.max_tiles == 6


def test_caption_split_edge_cases(tmp_path):
    from pipeline.sources.video import VideoConfig, VideoSource

    write_video(str(tmp_path / "v.mp4"), cfr_pts(3, 25), cut_at_ms=[1500])  # first new-scene frame: 1.52 s
    rows_ = [
        {"video": "v.mp4", "captions": [{"start": 10, "end": 12, "text": "after the end"}]},
        {"video": "v.mp4", "caption": "no clip captions: split by scene"},
        {"video": "v.mp4", "captions": [{"start": 2, "end": 1, "text": "backwards"}]},
        {"video": "missing.mp4"},
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_))
    source = VideoSource("m", VideoConfig(path=str(tmp_path / "m.jsonl"), split="captions"))
    out = [r for p in source.partitions(8) for r in source.read(p)]
    assert [r.failure[:2] if r.failure else r.input_ref.rsplit("/", 1)[-1] for r in out] == [
        ("decode", "no_clips"), "v.mp4#t=0.000,1.520", "v.mp4#t=1.520,3.000", ("read", "malformed_row"),
        ("read", "missing_file"),
    ]
    assert out[1].text == "" and out[1].extra["video"]["n_clips"] == 2  # a whole-video caption fits no one clip


def test_frames_are_planned_with_the_jobs_tiling(tmp_path):
    """The spec's top-level tiling reaches the video source: plan and catalog count the same tokens."""
    write_video(str(tmp_path / "v.mp4"), cfr_pts(4, 10), width=320, height=180)
    tiling = {"tile_size": 112, "patch_size": 14, "max_tiles": 4}  # 16 tokens per tile, not 256
    spec = parse_spec({"name": "small-tiles", "dataset": str(tmp_path / "ds"), "tokenizer": "byte-level",
                       "tiling": tiling, "sources": [{"name": "v", "type": "video", "path": str(tmp_path),
                                                      "token_budget": 200, "max_frame_side": 224}]})
    run_ingest(spec, mode="local")
    (clip,) = samples(Dataset(spec.dataset))
    plan, n = clip["extra"]["video"]["plan"], len(clip["media"])
    assert clip["image_tokens"] == plan["image_tokens"] <= 200
    for m in clip["media"]:
        assert m["n_tiles"] == count_tiles(m["width"], m["height"], TilingConfig(**tiling).for_n_images(n))
    # Under the default 448 px tiling one frame alone costs 258 tokens: nothing would fit the budget.
    assert n >= 2


def test_a_video_tiling_other_than_the_jobs_is_refused(tmp_path):
    from pipeline.sources.video import VideoConfig, VideoSource

    ds = Dataset(str(tmp_path / "ds"))
    ds.register_job("j", "fp", "byte-level", {**TilingConfig().__dict__, "max_tiles": 6})
    source = VideoSource("v", VideoConfig(path=str(tmp_path), tiling=TilingConfig(max_tiles=4)))
    with pytest.raises(ValueError, match="differs from the job's tiling"):
        source.attach(ds, "j")
    follows = VideoSource("v", VideoConfig(path=str(tmp_path)))
    follows.attach(ds, "j")
    assert follows.config.tiling == TilingConfig(max_tiles=6)
