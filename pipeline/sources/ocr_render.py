"""SynthDoG-like text images: lines and paragraphs drawn with PIL, with exact boxes.

Every word is drawn where its box says, so the ground truth is exact by construction
(no OCR involved). The page is then degraded the way scans and photos are: rotation
(boxes are carried through the same affine map), blur, sensor noise and JPEG.
All randomness comes from the ``rng`` passed in: one seed, one image.
"""
from __future__ import annotations

import functools
import io
import math
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pipeline.render import text_corpus
from pipeline.render.boxes import quad_to_box, union
from pipeline.render.fonts import FontFace


@dataclass
class RenderOptions:
    width: tuple[int, int] = (320, 800)  # canvas width range, pixels
    height: tuple[int, int] = (96, 640)
    font_size: tuple[int, int] = (16, 44)
    max_rotation: float = 4.0  # degrees, either way
    blur_prob: float = 0.3
    noise_prob: float = 0.4
    jpeg_prob: float = 0.3  # else PNG


@dataclass
class TextImage:
    data: bytes
    format: str
    width: int
    height: int
    lines: list[dict] = field(default_factory=list)  # [{"text", "box", "quad", "words": [{"text", "box"}]}]
    params: dict = field(default_factory=dict)  # what was drawn: font, size, rotation, degradations


@functools.lru_cache(maxsize=128)
def load_font(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, index=index)


def _colours(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Background and ink with enough luminance contrast that the text stays legible."""
    while True:
        bg = tuple(rng.randint(0, 255) for _ in range(3))
        ink = tuple(rng.randint(0, 255) for _ in range(3))
        lum = lambda c: 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]  # noqa: E731
        if abs(lum(bg) - lum(ink)) > 110:
            return bg, ink


def _background(w: int, h: int, bg, rng: random.Random, np_rng) -> Image.Image:
    style = rng.choice(("solid", "gradient", "paper"))
    base = np.empty((h, w, 3), np.float32)
    base[:] = bg
    if style == "gradient":
        shade = np.linspace(-25, 25, w if rng.random() < 0.5 else h, dtype=np.float32)
        base += shade[None, :, None] if shade.size == w else shade[:, None, None]
    elif style == "paper":  # low-frequency blotches like paper fibre or uneven lighting
        small = np_rng.normal(0, 12, (max(2, h // 32), max(2, w // 32), 1)).astype(np.float32)
        base += np.asarray(Image.fromarray(small[..., 0]).resize((w, h), Image.BILINEAR))[..., None]
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def _layout_lines(lang: str, font, width: int, height: int, margin: int, paragraph: bool, rng) -> list[list[str]]:
    """Words per line, wrapped to the canvas width; as many lines as fit."""
    line_h = font.size * 1.35
    max_lines = max(1, int((height - 2 * margin) // line_h))
    if not paragraph:
        max_lines = min(max_lines, rng.randint(1, 3))
    sep = "" if lang in text_corpus.NO_SPACES else " "
    lines, current = [], []
    for word in text_corpus.words(lang, 400 if paragraph else 8 * max_lines, rng):
        trial = sep.join(current + [word])
        if current and font.getlength(trial) > width - 2 * margin:
            lines.append(current)
            current = [word]
            if len(lines) == max_lines:
                break
        else:
            current.append(word)
    if current and len(lines) < max_lines:
        lines.append(current)
    return [l for l in lines if font.getlength(sep.join(l)) <= width - 2 * margin]


def _rotate_point(x, y, angle_deg, w, h, new_w, new_h):
    """Where PIL's ``rotate(angle, expand=True)`` moves pixel (x, y) (counter-clockwise, y down)."""
    a = math.radians(angle_deg)
    dx, dy = x - w / 2, y - h / 2
    return new_w / 2 + dx * math.cos(a) + dy * math.sin(a), new_h / 2 - dx * math.sin(a) + dy * math.cos(a)


def render_text_image(lang: str, face: FontFace, rng: random.Random, opts: RenderOptions,
                      paragraph: bool) -> TextImage:
    np_rng = np.random.default_rng(rng.getrandbits(64))
    size = rng.randint(*opts.font_size)
    font = load_font(face.path, face.index, size)
    w = rng.randint(*opts.width)
    h = rng.randint(*opts.height) if paragraph else rng.randint(int(size * 1.6), int(size * 5))
    h = max(h, int(size * 1.6))
    margin = max(4, size // 3)
    bg, ink = _colours(rng)
    img = _background(w, h, bg, rng, np_rng)
    draw = ImageDraw.Draw(img)
    sep = "" if lang in text_corpus.NO_SPACES else " "
    sep_w = font.getlength(sep)
    lines = []
    y = margin + rng.randint(0, max(0, int(size * 0.5)))
    for line_words in _layout_lines(lang, font, w, h - y + margin, margin, paragraph, rng):
        x = margin + rng.randint(0, max(0, int(w - 2 * margin - font.getlength(sep.join(line_words))) // 3))
        words = []
        for word in line_words:
            draw.text((x, y), word, font=font, fill=ink)
            box = draw.textbbox((x, y), word, font=font)
            words.append({"text": word, "box": [float(v) for v in box]})
            x += font.getlength(word) + sep_w
        lines.append({"text": sep.join(line_words), "words": words, "box": union([wd["box"] for wd in words])})
        y += size * 1.35
    angle = rng.uniform(-opts.max_rotation, opts.max_rotation) if opts.max_rotation else 0.0
    if abs(angle) >= 0.2:
        fill = tuple(int(v) for v in np.asarray(img).reshape(-1, 3).mean(0))
        rotated = img.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=fill)
        nw, nh = rotated.size
        for item in [l for l in lines] + [wd for l in lines for wd in l["words"]]:
            x1, y1, x2, y2 = item["box"]
            quad = [_rotate_point(px, py, angle, w, h, nw, nh) for px, py in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))]
            item["quad"] = [[round(px, 1), round(py, 1)] for px, py in quad]
            item["box"] = quad_to_box(quad)
        img, w, h = rotated, nw, nh
    else:
        angle = 0.0
    blur = rng.uniform(0.4, 1.2) if rng.random() < opts.blur_prob else 0.0
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    noise = rng.uniform(3, 12) if rng.random() < opts.noise_prob else 0.0
    if noise:
        arr = np.asarray(img, np.float32) + np_rng.normal(0, noise, (h, w, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    fmt = "jpeg" if rng.random() < opts.jpeg_prob else "png"
    quality = rng.randint(60, 95)
    img.save(buf, format=fmt, **({"quality": quality} if fmt == "jpeg" else {}))
    for item in lines + [wd for l in lines for wd in l["words"]]:
        item["box"] = [round(min(max(v, 0), lim), 1) for v, lim in zip(item["box"], (w, h, w, h))]
    params = {"language": lang, "font": f"{face.family} {face.style}", "font_size": size,
              "rotation": round(angle, 2), "blur": round(blur, 2), "noise": round(noise, 1),
              "image_format": fmt, "paragraph": paragraph, "background": list(bg), "ink": list(ink)}
    if fmt == "jpeg":
        params["jpeg_quality"] = quality
    return TextImage(buf.getvalue(), fmt, w, h, lines, params)
