"""RapidOCR labelling of real images: known rendered text is read back, boxes and measures kept."""
from __future__ import annotations

import difflib
import json

import pytest
from PIL import Image, ImageDraw, ImageFont

from pipeline.sources.ocr_engine import restore_spaces
from pipeline.sources.ocr_images import OCRImagesConfig, OCRImagesSource

pytest.importorskip("rapidocr_onnxruntime")
LINES = ["Quarterly report 2024", "Total revenue grew by 12.5 percent", "Shipping address: North Street 42"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("scans")
    img = Image.new("RGB", (620, 190), (250, 248, 240))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 28)
    for i, line in enumerate(LINES):
        draw.text((24, 20 + 55 * i), line, font=font, fill=(20, 20, 40))
    img.save(root / "page.png")
    Image.new("RGB", (200, 120), "white").save(root / "blank.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    src = OCRImagesSource("scans", OCRImagesConfig(path=str(root), formats=["grounded"]))
    (part,) = src.partitions(10)
    return {r.input_ref.rsplit("/", 1)[1]: r for r in src.read(part)}


def squash(text: str) -> str:
    return "".join(text.split())


def test_reads_known_text_with_boxes_inside_the_image(labelled):
    raw = labelled["page.png"]
    assert raw.failure is None and raw.kind == "ocr"
    truth, got = "\n".join(LINES), raw.text
    chars = difflib.SequenceMatcher(None, squash(truth), squash(got), autojunk=False).ratio()
    words = difflib.SequenceMatcher(None, truth.split(), got.split(), autojunk=False).ratio()
    assert chars >= 0.95, got
    assert words >= 0.8, got  # the space fix: the raw engine output runs Latin words together
    for line in raw.extra["lines"]:
        x1, y1, x2, y2 = line["box"]
        assert 0 <= x1 < x2 <= 620 and 0 <= y1 < y2 <= 190
        assert 0.5 <= line["confidence"] <= 1.0 and len(line["quad"]) == 4
    answer = json.loads(raw.conversation[1].content)
    assert [a["text_content"] for a in answer] == [l["text"] for l in raw.extra["lines"]]


def test_quality_measures_are_kept_for_sql_selection(labelled):
    extra = labelled["page.png"].extra
    assert 0.8 <= extra["ocr_mean_confidence"] <= 1.0
    assert extra["ocr_min_confidence"] <= extra["ocr_mean_confidence"]
    assert 0.05 < extra["ocr_text_area_ratio"] < 0.8
    assert extra["ocr_n_lines"] == len(LINES)


def test_no_text_and_undecodable_images_are_rejects(labelled):
    assert labelled["blank.png"].failure[:2] == ("ocr", "no_text")
    assert labelled["broken.jpg"].failure[0] == "decode"


def test_restore_spaces_uses_blank_columns():
    import numpy as np

    line = np.full((20, 60), 255, np.uint8)
    for x0 in (2, 10, 30):  # "ab" close together, then a wide gap before "c"
        line[4:16, x0:x0 + 6] = 0
    boxes = [[[2, 0], [8, 0], [8, 20], [2, 20]], [[10, 0], [16, 0], [16, 20], [10, 20]], [[30, 0], [36, 0], [36, 20], [30, 20]]]
    assert restore_spaces(line, 0, list("abc"), boxes, 0.3) == "ab c"
    assert restore_spaces(line, 0, list("中文字"), boxes, 0.3) == "中文字"  # CJK is written without spaces
