"""Synthetic OCR images: deterministic per (seed, index), exact boxes, glyph coverage, formats."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from pipeline.render import fonts
from pipeline.sources.ocr_render import _rotate_point
from pipeline.sources.ocr_synthetic import SyntheticOCRConfig, SyntheticOCRSource
from schemas.config import ConfigError, from_dict


def source(**kw) -> SyntheticOCRSource:
    return SyntheticOCRSource("synth", from_dict(SyntheticOCRConfig, {"count": 12, **kw}))


def test_same_seed_and_index_give_identical_samples():
    a, b = source(seed=5), source(seed=5)
    for i in (0, 7):
        x, y = a.generate(i), b.generate(i)
        assert x.media == y.media and x.conversation == y.conversation and x.input_ref == y.input_ref
    assert a.generate(0).media != a.generate(1).media
    assert source(seed=6).generate(0).media != a.generate(0).media
    parts = a.partitions(5)
    assert [p.args for p in parts] == [(0, 5), (5, 10), (10, 12)]
    assert len(list(a.read(parts[-1]))) == 2


def test_boxes_lie_in_the_image_and_words_in_their_line():
    src = source(seed=1, max_rotation=6.0)
    for i in range(10):
        raw = src.generate(i)
        img = Image.open(io.BytesIO(raw.media[0]))
        w, h = img.size
        assert raw.kind == "ocr" and raw.text == "\n".join(l["text"] for l in raw.extra["lines"])
        for line in raw.extra["lines"]:
            x1, y1, x2, y2 = line["box"]
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            for word in line["words"]:
                wx1, wy1, wx2, wy2 = word["box"]
                assert x1 - 1 <= wx1 < wx2 <= x2 + 1 and y1 - 1 <= wy1 < wy2 <= y2 + 1
                assert word["text"] in line["text"]


def test_ink_is_inside_the_word_boxes():
    """The boxes are where the text was drawn: dark-on-light ink falls inside them."""
    src = source(seed=2, max_rotation=0.0, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0, languages=["en"])
    raw = src.generate(3)
    gray = np.asarray(Image.open(io.BytesIO(raw.media[0])).convert("L"), np.float32)
    bg = np.median(gray)
    ink = np.abs(gray - bg) > 80
    inside = np.zeros_like(ink)
    for line in raw.extra["lines"]:
        for word in line["words"]:
            x1, y1, x2, y2 = (int(round(v)) for v in word["box"])
            inside[max(0, y1 - 1):y2 + 1, max(0, x1 - 1):x2 + 1] = True
    assert ink.sum() > 50
    assert (ink & inside).sum() / ink.sum() > 0.97


def test_rotation_maps_points_like_pil():
    img = Image.new("L", (200, 100), 0)
    img.putpixel((150, 30), 255)
    for angle in (5.0, -12.0):
        rot = img.rotate(angle, resample=Image.NEAREST, expand=True)
        ys, xs = np.nonzero(np.asarray(rot))
        px, py = _rotate_point(150.5, 30.5, angle, 200, 100, *rot.size)
        assert math.hypot(xs.mean() + 0.5 - px, ys.mean() + 0.5 - py) < 1.5


@pytest.mark.parametrize("lang", ["zh", "ja", "ko"])
def test_cjk_text_is_drawn_with_a_face_that_covers_it(lang):
    src = source(languages=[lang])
    raw = src.generate(0)
    face = next(f for f in fonts.faces_for(lang) if f"{f.family} {f.style}" == raw.extra["font"])
    assert face.cjk and fonts.covers(face, raw.text)
    assert not fonts.covers(next(f for f in fonts.available_faces() if f.family == "DejaVu Sans"), raw.text)


def test_formats_and_box_conventions():
    grounded = source(formats=["grounded"], box_format="norm1000", granularity="word").generate(4)
    user, answer = grounded.conversation
    assert user.content.startswith("<image>\n") and "0-1000" in user.content
    items = json.loads(answer.content)
    assert len(items) == sum(len(l["words"]) for l in grounded.extra["lines"])
    assert all(0 <= v <= 1000 for it in items for v in it["bbox_2d"])
    read = source(formats=["read_all"]).generate(4)
    assert read.conversation[1].content == read.text
    qa = source(formats=["region_qa"], paragraph_ratio=1.0).generate(2)
    assert sum(t.content.count("<image>") for t in qa.conversation) == 1
    assert [t.role for t in qa.conversation][:2] == ["user", "assistant"]


def test_bad_options_are_refused():
    for bad in ({"languages": ["xx"]}, {"formats": ["html"]}, {"box_format": "yolo"}, {"width": [10]}):
        with pytest.raises(ConfigError):
            from_dict(SyntheticOCRConfig, bad)
