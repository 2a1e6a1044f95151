"""Offline OCR labelling with RapidOCR (PP-OCRv4 det + rec, ONNX, shipped in its wheel).

Two fixes on top of the engine, both measured on rendered text with known truth
(docs/bench/render_ocr.md):
- the angle classifier is off: it flips clean horizontal lines and loses ~15% of
  characters; real upside-down text is rare in the inputs we label;
- the bundled Chinese recogniser drops most spaces between Latin words. They are put
  back from the pixels: a run of blank columns wider than a fraction of the line
  height, between two non-CJK characters, is a space. Character positions come from
  the recogniser's own per-character boxes (``return_word_box``);
- detection is limited by the long side (see ``load_engine``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.render.boxes import quad_to_box

ENGINE = "rapidocr-onnxruntime PP-OCRv4 (ch det+rec, use_cls=False)"


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (0x2E80 <= o <= 0x9FFF) or (0xAC00 <= o <= 0xD7AF) or (0xF900 <= o <= 0xFAFF) or (0xFF00 <= o <= 0xFFEF)


@functools.lru_cache(maxsize=4)
def load_engine(threads: int = 0, det_max_side: int = 960):
    """One engine per process and setting: loading the ONNX sessions takes ~1 s.

    Detection resizes so the LONG side is at most ``det_max_side``. The wheel's default
    (short side at least 736) blows a 736x100 text strip up to 5400x736: twice as slow
    overall, and it split lines into single words on our rendered pages.
    """
    from rapidocr_onnxruntime import RapidOCR

    kwargs = {"det_limit_type": "max", "det_limit_side_len": det_max_side}
    if threads > 0:  # several Ray workers on one machine each get a share of the cores
        for part in ("det", "cls", "rec"):
            kwargs[f"{part}_intra_op_num_threads"] = threads
            kwargs[f"{part}_inter_op_num_threads"] = 1
    return RapidOCR(**kwargs)


@dataclass
class OCRLine:
    text: str
    quad: list[list[float]]  # 4 points, clockwise from top-left, image pixels
    confidence: float

    @property
    def box(self) -> list[float]:
        return quad_to_box(self.quad)

    def as_dict(self) -> dict:
        return {"text": self.text, "box": [round(v, 1) for v in self.box], "quad": self.quad,
                "confidence": round(self.confidence, 4)}


def blank_runs(gray: np.ndarray, min_width: float) -> list[tuple[int, int]]:
    """Column runs [a, b) without ink in a line crop, at least ``min_width`` wide."""
    bg = np.median(gray)
    ink = (np.abs(gray.astype(np.float32) - bg) > 48).any(axis=0)
    runs, start = [], None
    for x, has_ink in enumerate(list(ink) + [True]):
        if not has_ink and start is None:
            start = x
        elif has_ink and start is not None:
            if x - start >= min_width:
                runs.append((start, x))
            start = None
    return runs


def restore_spaces(gray_line: np.ndarray, x0: float, chars: list[str], char_boxes: list, gap_ratio: float) -> str:
    """``chars`` with a space inserted wherever a wide blank gap separates two non-CJK characters."""
    if not chars or len(chars) != len(char_boxes):
        return "".join(chars)
    centres = [(min(p[0] for p in b) + max(p[0] for p in b)) / 2 - x0 for b in char_boxes]
    cuts = set()
    min_width = gap_ratio * gray_line.shape[0]
    for a, b in blank_runs(gray_line, min_width):
        k = sum(c < (a + b) / 2 for c in centres)  # characters left of the gap
        if 0 < k < len(chars) and chars[k - 1] != " " and chars[k] != " ":
            # Digits sit in fixed-width cells ("1" has wide side bearings): "4711" must stay one number.
            if chars[k - 1].isdigit() and chars[k].isdigit() and b - a < 1.8 * min_width:
                continue
            if not (is_cjk(chars[k - 1]) or is_cjk(chars[k])):
                cuts.add(k)
    return "".join((" " if i in cuts else "") + ch for i, ch in enumerate(chars))


def run_ocr(image: Image.Image, *, text_score: float = 0.5, fix_spaces: bool = True, gap_ratio: float = 0.3,
            threads: int = 0, det_max_side: int = 960) -> list[OCRLine]:
    """Lines found in an RGB image, in the engine's reading order (top to bottom, left to right)."""
    engine = load_engine(threads, det_max_side)
    result, _ = engine(image, use_cls=False, text_score=text_score, return_word_box=fix_spaces)
    gray = np.asarray(image.convert("L")) if fix_spaces else None
    lines = []
    for item in result or []:
        quad = [[float(x), float(y)] for x, y in item[0]]
        text, conf = str(item[1]), float(item[2])
        if fix_spaces and len(item) > 3 and item[3] and _is_level(quad):
            x1, y1, x2, y2 = (int(round(v)) for v in quad_to_box(quad))
            crop = gray[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
            if crop.size:
                # The crop's top and bottom rows may hold the neighbouring lines' ascenders.
                trim = crop.shape[0] // 6
                text = restore_spaces(crop[trim:crop.shape[0] - trim] if trim else crop, x1,
                                      list(item[4]), item[3], gap_ratio * crop.shape[0] / max(1, crop.shape[0] - 2 * trim))
        lines.append(OCRLine(text.strip(), quad, conf))
    return [l for l in lines if l.text]


def _is_level(quad) -> bool:
    """Only nearly horizontal lines: blank columns mean nothing in a tilted crop."""
    (x1, y1), (x2, y2) = quad[0], quad[1]
    return abs(y2 - y1) <= 0.08 * max(1.0, abs(x2 - x1))
