"""Images and captions for the offline demo corpus (``jobs/demo_corpus.py`` lays them out).

Three kinds of content, all deterministic given a seed:

* real photographs shipped inside scikit-image's wheel, with hand-written captions;
* synthetic PIL drawings (gradients, shapes, stripes, checkerboards, polygons, text)
  in many sizes and aspect ratios, captioned by a small template grammar that
  describes what was drawn;
* deliberately bad captions and broken files, for the rule filters and the reject path.

Nothing here touches the network: a scikit-image photo that needs a download is skipped.
"""
from __future__ import annotations

import io
import math
import random
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont


@dataclass
class DemoImage:
    """One image with its caption; ``kind`` says what drew it (for names and debugging)."""

    name: str
    image: Image.Image
    caption: str
    kind: str


# ---------------------------------------------------------------- real photos

# (skimage.data function, caption). Only files inside the wheel are used: anything that
# needs pooch (an optional download) raises and is skipped. skimage's ``cat`` is the same
# picture as ``chelsea`` and the stereo pair is two views of one scene, so one of each is
# used: an unplanted duplicate would make the ground truth wrong.
PHOTOS = [
    ("astronaut", "Portrait of astronaut Eileen Collins in an orange flight suit, "
     "smiling in front of an American flag, with a space shuttle model and a black helmet beside her."),
    ("chelsea", "Close-up of a tabby cat with green eyes and long white whiskers looking to the left."),
    ("coffee", "A cup of espresso with crema on a red saucer, with a silver spoon, on a wooden table."),
    ("rocket", "A rocket standing on its launch pad at dusk between four tall lightning towers, lit by floodlights."),
    ("camera", "Black and white photo of a man in a dark coat looking through a camera on a tripod in a field."),
    ("page", "A scanned page of text titled Region-based segmentation, explaining markers for coins."),
    ("text", "Grayscale photo of handwritten symbols and numbers on a slanted sheet of paper."),
    ("immunohistochemistry", "Microscope image of a tissue section stained brown and blue for immunohistochemistry."),
    ("hubble_deep_field", "Hubble deep field: hundreds of small distant galaxies scattered across a black sky."),
    ("retina", "Fundus photograph of a human retina, orange-red, with the optic disc and branching blood vessels."),
    ("coins", "Grayscale photo of twenty-four old coins laid out in rows on a dark background."),
    ("moon", "Grayscale close-up of the lunar surface with craters and dark patches."),
    ("grass", "Grayscale texture of dense dry grass blades seen from above."),
    ("gravel", "Grayscale texture of small rounded gravel stones packed together."),
    ("brick", "Grayscale photo of a brick wall seen at a slant, with long rows of bricks and mortar."),
    ("logo", "The scikit-image logo: a green and orange circle split by a white S-shaped curve, with a snake."),
    ("colorwheel", "A color wheel: a disc of all hues fading to white at the centre, on a black background."),
    ("microaneurysms", "Small grayscale crop of a retina showing faint dark blood vessels."),
    ("cell", "Grayscale microscope image of a single bright round cell on a dark grey background."),
    ("stereo_motorcycle", "A red motorcycle parked in a garage in front of shelves of boxes and tools."),
]


def load_photos() -> list[DemoImage]:
    """The scikit-image photos that load offline, as PIL images (uint8, L/RGB/RGBA)."""
    try:
        from skimage import data
    except ImportError:  # scikit-image is the optional "demo" extra: no photos without it
        return []
    photos = []
    for fn, caption in PHOTOS:
        try:
            arr = getattr(data, fn)()
        except Exception:  # missing attribute, or a file that would need a download
            continue
        if isinstance(arr, tuple):  # stereo_motorcycle: (left, right, disparity)
            arr = arr[0]
        arr = np.asarray(arr)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8) if arr.dtype.kind == "f" else arr.astype(np.uint8) * 255
        photos.append(DemoImage(f"photo_{fn}", Image.fromarray(arr), caption, "photo"))
    return photos


# ---------------------------------------------------------------- synthetic drawings

COLORS = {
    "red": (220, 30, 40), "orange": (245, 140, 20), "yellow": (245, 220, 40), "green": (40, 170, 60),
    "teal": (20, 150, 150), "blue": (30, 80, 220), "navy": (15, 25, 90), "purple": (130, 50, 170),
    "pink": (240, 120, 180), "brown": (120, 70, 30), "black": (10, 10, 10), "white": (250, 250, 250),
    "grey": (128, 128, 128), "beige": (230, 215, 180), "olive": (110, 120, 30), "maroon": (110, 20, 30),
}
NUMBERS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
WORDS = ("HELLO", "Tessera", "data", "PIXELS", "42", "open sky", "vision", "TOKEN", "ocean", "Zebra 7", "map", "QUIET")
PREFIXES = ("", "A synthetic image: ", "Computer-generated picture. ", "Illustration showing ", "Digital art: ")

# Aspect ratios (width / height) the random sizes are drawn from: from 1:20 to 20:1 so that
# dynamic tiling meets many different grids. The fixed sizes come first so that even a small
# corpus holds the extremes (tiny, one pixel wide, panoramas, tall strips, large photos).
ASPECTS = (1 / 20, 1 / 8, 1 / 4, 1 / 3, 1 / 2, 9 / 16, 3 / 4, 1.0, 4 / 3, 16 / 9, 2.0, 3.0, 4.0, 8.0, 20.0)
FIXED_SIZES = [(20, 20), (1, 20), (64, 64), (2048, 512), (512, 2048), (2000, 1500), (1920, 1080),
               (1080, 1920), (1200, 60), (448, 448), (896, 448), (300, 1200)]


def pick_size(rng: random.Random, index: int) -> tuple[int, int]:
    if index < len(FIXED_SIZES):
        return FIXED_SIZES[index]
    aspect = rng.choice(ASPECTS)
    long_side = int(math.exp(rng.uniform(math.log(64), math.log(1600))))
    w, h = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    return max(1, round(w)), max(1, round(h))


def _two_colors(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(sorted(COLORS), 2)
    return a, b


def _count(n: int, noun: str) -> str:
    plural = "" if n == 1 else ("es" if noun.endswith(("s", "x")) else "s")
    return f"{NUMBERS[n] if n < len(NUMBERS) else n} {noun}{plural}"


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    elif shape == "star":
        pts = [(cx + (r if k % 2 == 0 else r / 2.5) * math.cos(math.pi * k / 5 - math.pi / 2),
                cy + (r if k % 2 == 0 else r / 2.5) * math.sin(math.pi * k / 5 - math.pi / 2)) for k in range(10)]
        draw.polygon(pts, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(1, int(r / 4)))
    else:  # cross
        t = r / 3
        draw.rectangle((cx - r, cy - t, cx + r, cy + t), fill=fill)
        draw.rectangle((cx - t, cy - r, cx + t, cy + r), fill=fill)


def _scatter(rng: random.Random, draw, w: int, h: int, shape: str, n: int, color: str, scale: float) -> None:
    r = max(1.0, min(w, h) * scale)
    for _ in range(n):
        _draw_shape(draw, shape, rng.uniform(0, w), rng.uniform(0, h), r * rng.uniform(0.6, 1.4), COLORS[color])


def draw_gradient(rng: random.Random, w: int, h: int) -> tuple[Image.Image, str]:
    c1, c2 = _two_colors(rng)
    direction = rng.choice(("horizontal", "vertical", "diagonal", "radial"))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = x / max(w - 1, 1), y / max(h - 1, 1)
    t = {"horizontal": x, "vertical": y, "diagonal": (x + y) / 2,
         "radial": np.clip(np.hypot(x - 0.5, y - 0.5) * 1.4, 0, 1)}[direction]
    rgb = (1 - t[..., None]) * np.array(COLORS[c1], np.float32) + t[..., None] * np.array(COLORS[c2], np.float32)
    img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    # Dots on top give the gradient structure of its own: two bare gradients in the same
    # direction have the same perceptual hash, which would be an unplanted near-duplicate.
    dot, shape, n = rng.choice(("white", "black")), rng.choice(SHAPES), rng.randint(2, 9)
    _scatter(rng, ImageDraw.Draw(img), w, h, shape, n, dot, rng.uniform(0.04, 0.12))
    return img, f"A smooth {direction} gradient from {c1} to {c2}, sprinkled with {_count(n, dot + ' ' + shape)}."


def draw_shapes(rng: random.Random, w: int, h: int) -> tuple[Image.Image, str]:
    bg = rng.choice(sorted(COLORS))
    img = Image.new("RGB", (w, h), COLORS[bg])
    draw = ImageDraw.Draw(img)
    parts = []
    for shape in rng.sample(SHAPES, rng.randint(1, 3)):
        color = rng.choice([c for c in sorted(COLORS) if c != bg])
        n = rng.randint(1, 7)
        _scatter(rng, draw, w, h, shape, n, color, rng.uniform(0.05, 0.2))
        parts.append(_count(n, f"{color} {shape}"))
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    where = rng.choice(("scattered over", "placed at random on", "drawn on"))
    return img, f"{listed.capitalize()} {where} a plain {bg} background."


def draw_stripes(rng: random.Random, w: int, h: int) -> tuple[Image.Image, str]:
    c1, c2 = _two_colors(rng)
    orientation = rng.choice(("horizontal", "vertical", "diagonal"))
    n = rng.randint(3, 24)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = {"horizontal": y / h, "vertical": x / w, "diagonal": (x + y) / (w + h)}[orientation]
    band = (np.floor(t * n + rng.random()) % 2).astype(bool)
    rgb = np.where(band[..., None], np.array(COLORS[c1], np.uint8), np.array(COLORS[c2], np.uint8))
    img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    # A single shape breaks the symmetry between stripe images of equal band counts.
    shape, color = rng.choice(SHAPES), rng.choice(sorted(COLORS))
    _scatter(rng, ImageDraw.Draw(img), w, h, shape, 1, color, 0.3)
    return img, (f"{orientation.capitalize()} stripes alternating between {c1} and {c2}, "
                 f"about {n} bands, with one large {color} {shape} on top.")


def draw_checkerboard(rng: random.Random, w: int, h: int) -> tuple[Image.Image, str]:
    c1, c2 = _two_colors(rng)
    cols, rows = rng.randint(2, 12), rng.randint(2, 12)
    y, x = np.mgrid[0:h, 0:w]
    cell = ((x * cols // max(w, 1)) + (y * rows // max(h, 1))) % 2 == 0
    rgb = np.where(cell[..., None], np.array(COLORS[c1], np.uint8), np.array(COLORS[c2], np.uint8))
    img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    shape, color = rng.choice(SHAPES), rng.choice(sorted(COLORS))
    _scatter(rng, ImageDraw.Draw(img), w, h, shape, 2, color, 0.2)
    return img, (f"A checkerboard of {c1} and {c2} squares, {cols} columns by {rows} rows, "
                 f"partly covered by {_count(2, f'{color} {shape}')}.")


def draw_polygons(rng: random.Random, w: int, h: int) -> tuple[Image.Image, str]:
    bg = rng.choice(sorted(COLORS))
    palette = rng.sample([c for c in sorted(COLORS) if c != bg], 3)
    img = Image.new("RGB", (w, h), COLORS[bg])
    draw = ImageDraw.Draw(img)
    n = rng.randint(3, 12)
    for _ in range(n):
        k = rng.randint(3, 8)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), max(w, h) * rng.uniform(0.05, 0.35)
        pts = [(cx + r * rng.uniform(0.3, 1) * math.cos(a), cy + r * rng.uniform(0.3, 1) * math.sin(a))
               for a in sorted(rng.uniform(0, 2 * math.pi) for _ in range(k))]
        draw.polygon(pts, fill=COLORS[rng.choice(palette)])
    return img, (f"{_count(n, 'irregular polygon').capitalize()} overlapping in {palette[0]}, "
                 f"{palette[1]} and {palette[2]} on a {bg} background.")


def draw_text(rng: random.Random, w: int, h: int) -> tuple[Image.Image, str]:
    fg, bg = _two_colors(rng)
    word = rng.choice(WORDS)
    img = Image.new("RGB", (w, h), COLORS[bg])
    draw = ImageDraw.Draw(img)
    size = max(6, min(h * 0.6, w / max(len(word), 1) * 1.5))
    font = ImageFont.load_default(size=size)
    draw.text((rng.uniform(0, w * 0.2), rng.uniform(0, h * 0.3)), word, fill=COLORS[fg], font=font)
    # A frame and an underline: text on a flat background is otherwise almost uniform,
    # and almost-uniform images all share one perceptual hash.
    shape = rng.choice(SHAPES)
    _scatter(rng, draw, w, h, shape, 3, fg, 0.15)
    things = _count(3, f"{fg} {shape}")
    return img, f'The word "{word}" written in {fg} letters on a {bg} background, next to {things}.'


def draw_scene(rng: random.Random, w: int, h: int, background: tuple[int, int, int]) -> Image.Image:
    """Many flat shapes, some overlapping or touching the edges, on a given background: the
    picture the near-duplicate captions of ``demo_corpus.NEAR_CAPTION`` describe."""
    img = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(8, 14)):
        shape = rng.choice([s for s in SHAPES if s != "ring"])  # the caption says "no outlines"
        _scatter(rng, draw, w, h, shape, 1, rng.choice(sorted(COLORS)), rng.uniform(0.05, 0.15))
    return img


GENERATORS = {"gradient": draw_gradient, "shapes": draw_shapes, "stripes": draw_stripes,
              "checkerboard": draw_checkerboard, "polygons": draw_polygons, "text": draw_text}


def generate(rng: random.Random, index: int, size: tuple[int, int]) -> DemoImage:
    """The ``index``-th synthetic image, ``size`` = (width, height): the first few cycle
    through the generators so a small corpus holds each kind, then ``rng`` chooses."""
    kind = list(GENERATORS)[index % len(GENERATORS)] if index < len(GENERATORS) else rng.choice(list(GENERATORS))
    w, h = size
    img, caption = GENERATORS[kind](rng, w, h)
    prefix = rng.choice(PREFIXES)
    if prefix.endswith(("showing ", ": ")):  # "Illustration showing a ...": the sentence goes on
        caption = caption[0].lower() + caption[1:]
    return DemoImage(f"gen_{index:04d}_{kind}", img, prefix + caption, kind)


# ---------------------------------------------------------------- encoding

def encode(img: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """Encoded bytes, deterministic for a given Pillow build (no timestamps, no EXIF)."""
    buf = io.BytesIO()
    if fmt == "jpg":
        img.convert("RGB").save(buf, "JPEG", quality=quality)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=6)
    elif fmt == "webp":
        img.convert("RGB").save(buf, "WEBP", quality=quality, method=2)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


# ---------------------------------------------------------------- bad captions and broken files

def mojibake(text: str, rounds: int = 2) -> str:
    """UTF-8 text misread as cp1252, ``rounds`` times: the classic "Ã©" garbage."""
    for _ in range(rounds):
        text = text.encode("utf-8").decode("cp1252", errors="replace")
    return text


# A long caption must trip only the length rule: random words from a large vocabulary have
# almost no repeated n-grams, unlike a template repeated many times.
_VOCAB = (
    "river mountain window garden yellow quietly bright ancient silver market morning candle "
    "harbor lantern orange velvet marble thunder meadow crystal forest copper narrow gentle "
    "village shadow bicycle painter kitchen whisper summer winter autumn spring cotton island "
    "valley desert pocket ribbon saddle timber violin walnut anchor basket bridge castle "
    "cobble dragon engine feather glacier hammer insect jacket kettle ladder magnet needle "
    "oyster pepper quiver rabbit sailor tablet umbrella vessel wagon yogurt zipper almond "
    "blanket cactus dolphin eagle falcon guitar helmet igloo jungle koala lemon mirror nectar "
    "orchid parrot quartz rocket saffron tulip unicorn vortex walrus yarn zenith amber breeze "
    "canyon dune ember fjord grove haze ivory jade kelp lagoon moss nebula oasis prairie "
    "reef sierra tundra upland vista wharf atlas beacon cipher delta echo fable gadget "
    "harvest icicle jigsaw kernel legend mosaic nomad orbit pillar quill relic signal totem "
    "utopia vertex willow"
).split()


def long_caption(rng: random.Random, n_words: int = 2500) -> str:
    """Word salad of ``n_words`` words: longer than any caption limit (the default rule
    flags more than 2000 words) and about 15 kB, yet nothing else is wrong with it."""
    words = [rng.choice(_VOCAB) for _ in range(n_words)]
    sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, n_words, 12)]
    return " ".join(sentences)


def bad_captions(rng: random.Random) -> dict[str, str]:
    """One caption per bad kind, keyed by the rule it should trip."""
    return {
        "caption_too_short": "img",
        "caption_empty": "",
        "garbled_text": mojibake("Café crème à l’été, très élégant: déjà vu, cœur brûlé, où êtes-vous? "
                                 "Première fenêtre, château, forêt, hôtel, naïve, garçon."),
        # A second, different one: two equal captions would be an unplanted text duplicate.
        "garbled_text_2": mojibake("Grâce à la lumière d’été, les élèves étudient près de la fenêtre "
                                   "où l’hôtel du théâtre présente « Noël à Genève »."),
        "nonprintable_text": "\x00\x01\x02 a\x03\x04\x05 red\x06\x07\x08 circle\x0b\x0c\x0e\x0f on\x10\x11\x12\x13 "
                             "a\x14\x15\x16 blue\x17\x18\x19\x1a background\x1b\x1c\x1d\x1e\x1f\x7f\x7f\x00",
        "repetitive_ngrams": " ".join(["a cat"] * 50),
        "repetitive_lines": "\n".join(["Visit our shop for more pictures like this one!"] * 12 + ["A blue square."]),
        "caption_too_long": long_caption(rng),
    }


def random_bytes(rng: random.Random, n: int) -> bytes:
    """``n`` random bytes that no decoder recognises: some formats (TGA, ICO, BMP's "BM")
    have weak signatures that random bytes can match by chance, so such draws are redrawn."""
    while True:
        data = rng.randbytes(n)
        try:
            Image.open(io.BytesIO(data))
        except Exception:
            if not data.startswith((b"BM", b"II", b"MM", b"GIF", b"\x89PNG", b"\xff\xd8", b"RIFF")):
                return data


def truncated(data: bytes) -> bytes:
    """The first half of an encoded image: a download cut off mid-way."""
    return data[: len(data) // 2]


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A few hundred bytes of PNG whose header declares ``width x height`` pixels.

    The IHDR chunk carries a correct CRC so the header parses and a decoder learns the
    size before reading any pixel: a decoder that allocates first is the victim of a
    decompression bomb. The IDAT holds a little zlib stream of zeros (a few rows only).
    """
    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    idat = zlib.compress(b"\x00" * (1 + 3 * width) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
