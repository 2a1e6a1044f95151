"""RapidOCR labelling: images/s, and agreement with known text on synthetic images.

Synthetic OCR images (no rotation) have exact ground truth, so this measures both
speed and what the labeller gets right: character recall (whitespace ignored) and
word recall (whitespace-aware), with and without the space restoration. Usage:
    python benchmarks/bench_ocr.py [--images 24] [--threads 0]
"""
from __future__ import annotations

import argparse
import difflib
import io
import time

from PIL import Image

from pipeline.sources.ocr_engine import run_ocr
from pipeline.sources.ocr_synthetic import SyntheticOCRConfig, SyntheticOCRSource


def recall(truth: list, got: list) -> float:
    sm = difflib.SequenceMatcher(None, truth, got, autojunk=False)
    return sum(b.size for b in sm.get_matching_blocks()) / max(1, len(truth))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    for langs in (["en", "fr", "de", "es"], ["zh", "ja"]):
        src = SyntheticOCRSource("b", SyntheticOCRConfig(count=0, languages=langs, max_rotation=0.0, seed=11))
        samples = [src.generate(i) for i in range(args.images)]
        images = [Image.open(io.BytesIO(s.media[0])).convert("RGB") for s in samples]
        run_ocr(images[0], threads=args.threads)  # model load is not per-image cost
        for fix in (True, False):
            start, chars, words = time.perf_counter(), 0.0, 0.0
            for s, img in zip(samples, images):
                got = "\n".join(l.text for l in run_ocr(img, fix_spaces=fix, threads=args.threads))
                chars += recall(list("".join(s.text.split())), list("".join(got.split())))
                words += recall(s.text.split(), got.split())
            secs = time.perf_counter() - start
            n = len(samples)
            print(f"langs={','.join(langs)} fix_spaces={fix} images={n} images_per_s={n / secs:.2f} "
                  f"char_recall={chars / n:.3f} word_recall={words / n:.3f}")


if __name__ == "__main__":
    main()
