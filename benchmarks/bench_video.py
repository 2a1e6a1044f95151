"""Benchmark: video frames decoded per second and sample frames produced per second.

    python benchmarks/bench_video.py [--seconds 20] [--repeats 3] [--fps 2]

Generates a synthetic 1280x720 30 fps H.264 clip with PyAV (textured panning background,
a moving square, a cut every 5 s; libx264 ``--preset``, default veryfast), then times, on the same file:

- ``decode``: PyAV decode only, frame threading on (the floor of everything else);
- ``decode 1 thread``: the same with decoder threading off;
- ``+ scenes``: decode + the histogram cut detector at 8 frames/s (default) or on every frame;
- ``extract``: the whole per-video path of the ``video`` source: decode, cuts,
  candidates on the 2 fps grid, token-budget plan, JPEG encoding of the kept frames.

Rates are decoded (source) frames per wall-clock second, and for ``extract`` also kept
(sampled, JPEG-encoded) frames per second, plus CPU milliseconds per decoded frame
(process time, all threads), which a busy machine distorts less. Median of ``--repeats`` runs. The load
average is printed with each row: on a shared machine it says how much the numbers
can be trusted.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import av  # noqa: E402

from pipeline.video.decode import VideoReader  # noqa: E402
from pipeline.video.extract import ExtractConfig, extract_clips  # noqa: E402
from pipeline.video.scenes import CutDetector, SceneConfig  # noqa: E402
from pipeline.video.synth import cfr_pts, write_video  # noqa: E402


def decode_only(path: str, threads: bool) -> tuple[int, int]:
    with open(path, "rb") as f, VideoReader(f, threads=threads) as reader:
        return sum(1 for _ in reader.frames()), 0


def decode_scenes(path: str, detect_fps: float) -> tuple[int, int]:
    detector, n, cuts = CutDetector(SceneConfig(detect_fps=detect_fps)), 0, 0
    with open(path, "rb") as f, VideoReader(f) as reader:
        for t, frame in reader.frames():
            cuts += detector.update(t, frame)
            n += 1
    return n, cuts


def extract(path: str, config: ExtractConfig) -> tuple[int, int]:
    with open(path, "rb") as f, VideoReader(f) as reader:
        kept = sum(len(c.jpegs) for c in extract_clips(reader, config))
        return reader.report.frames, kept


def timed(fn, repeats: int) -> tuple[float, float, int, int]:
    """Median wall and CPU seconds (all threads of this process: less sensitive to a busy machine)."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        decoded, other = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), decoded, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fps", type=float, default=2.0, help="sampling rate of the extract row")
    parser.add_argument("--preset", default="veryfast",
                        help="x264 preset of the clip (veryfast: CABAC, B-frames, deblocking, like real files)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench_720p.mp4")
        cuts = list(range(5000, int(args.seconds * 1000), 5000))
        start = time.perf_counter()
        write_video(path, cfr_pts(args.seconds, 30), width=1280, height=720, cut_at_ms=cuts, texture=True,
                    x264_options={"preset": args.preset})
        print(f"generated {args.seconds:g} s of 1280x720 30 fps H.264 {args.preset} "
              f"({os.path.getsize(path) / 1e6:.1f} MB) "
              f"in {time.perf_counter() - start:.1f} s; PyAV {av.__version__}, {platform.machine()}, "
              f"{os.cpu_count()} CPUs")
        config = ExtractConfig(fps=args.fps)
        rows = [
            ("decode", lambda: decode_only(path, True)),
            ("decode 1 thread", lambda: decode_only(path, False)),
            ("decode + scenes (8/s)", lambda: decode_scenes(path, 8.0)),
            ("decode + scenes (every frame)", lambda: decode_scenes(path, 0.0)),
            (f"extract ({args.fps:g} fps, JPEG)", lambda: extract(path, config)),
        ]
        print("\n| stage | decoded frames/s | sampled frames/s | CPU ms / decoded frame | frames decoded "
              "| frames kept | wall s (median) | load avg 1 min |")
        print("|---|---|---|---|---|---|---|---|")
        for name, fn in rows:
            wall, cpu, decoded, other = timed(fn, args.repeats)
            kept = other if name.startswith("extract") else None
            sampled = f"{kept / wall:.0f}" if kept is not None else "-"
            print(f"| {name} | {decoded / wall:.0f} | {sampled} | {1000 * cpu / decoded:.2f} | {decoded} "
                  f"| {kept if kept is not None else '-'} | "
                  f"{wall:.2f} | {os.getloadavg()[0]:.2f} |")
            if name.startswith("decode + scenes"):
                assert other == len(cuts), f"expected {len(cuts)} cuts, detector found {other}"


if __name__ == "__main__":
    main()
