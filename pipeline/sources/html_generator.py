"""Synthetic HTML documents from a seed: headings, paragraphs, columns, lists, tables with
merged cells, formulas, charts and images, with varied fonts, colours, sizes and geometry.

Everything a page needs is inline (CSS in <style>, images as data: URIs, charts as
inline SVG, formulas as MathML with their LaTeX in an annotation), because the
renderer loads nothing else. Fonts are Debian's (DejaVu, Liberation, Noto CJK), so
what the DOM says is what the screenshot shows.
"""
from __future__ import annotations

import base64
import html
import io
import random

from PIL import Image, ImageDraw

from pipeline.render import text_corpus as tc

LATIN_FONTS = ("DejaVu Sans", "DejaVu Serif", "Liberation Sans", "Liberation Serif", "DejaVu Sans Condensed")
CJK_FONTS = {"zh": ("Noto Sans CJK SC", "Noto Serif CJK SC"), "ja": ("Noto Sans CJK JP", "Noto Serif CJK JP"),
             "ko": ("Noto Sans CJK KR", "Noto Serif CJK KR")}
# (LaTeX, MathML body) pairs; the LaTeX is the ground truth of a formula element.
FORMULAS = (
    (r"\frac{a+b}{c}", "<mfrac><mrow><mi>a</mi><mo>+</mo><mi>b</mi></mrow><mi>c</mi></mfrac>"),
    (r"x^{2}+y^{2}=r^{2}", "<msup><mi>x</mi><mn>2</mn></msup><mo>+</mo><msup><mi>y</mi><mn>2</mn></msup><mo>=</mo><msup><mi>r</mi><mn>2</mn></msup>"),
    (r"\sqrt{a^{2}+b^{2}}", "<msqrt><msup><mi>a</mi><mn>2</mn></msup><mo>+</mo><msup><mi>b</mi><mn>2</mn></msup></msqrt>"),
    (r"\sum_{i=1}^{n} x_{i}", "<munderover><mo>∑</mo><mrow><mi>i</mi><mo>=</mo><mn>1</mn></mrow><mi>n</mi></munderover><msub><mi>x</mi><mi>i</mi></msub>"),
    (r"E=mc^{2}", "<mi>E</mi><mo>=</mo><mi>m</mi><msup><mi>c</mi><mn>2</mn></msup>"),
)


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _colour(rng: random.Random, dark: bool) -> str:
    lo, hi = (0, 90) if dark else (200, 255)
    return "#" + "".join(f"{rng.randint(lo, hi):02x}" for _ in range(3))


def _image_data_uri(rng: random.Random, w: int, h: int) -> str:
    img = Image.new("RGB", (w, h), tuple(rng.randint(120, 255) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 8)):
        x, y = rng.randint(0, w - 10), rng.randint(0, h - 10)
        box = (x, y, x + rng.randint(10, w // 2), y + rng.randint(10, h // 2))
        fill = tuple(rng.randint(0, 255) for _ in range(3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _svg_bars(rng: random.Random, lang: str, accent: str) -> str:
    n = rng.randint(3, 6)
    values = [rng.randint(5, 100) for _ in range(n)]
    labels = [tc.token(lang, rng)[:8] for _ in range(n)]
    bw, h = 40, 160
    bars = "".join(
        f'<rect x="{20 + i * (bw + 12)}" y="{h - v * 1.3}" width="{bw}" height="{v * 1.3}" fill="{accent}"/>'
        f'<text x="{20 + i * (bw + 12) + bw / 2}" y="{h + 14}" font-size="11" text-anchor="middle">{_e(l)}</text>'
        for i, (v, l) in enumerate(zip(values, labels)))
    return f'<svg width="{40 + n * (bw + 12)}" height="{h + 22}" role="img">{bars}</svg>'


def _table(rng: random.Random, lang: str) -> str:
    """A table whose first column groups rows (rowspan) under a header row with a spanning cell."""
    cols = rng.randint(3, 5)
    head = f"<tr><th rowspan=2>{_e(tc.title(lang, rng))}</th><th colspan={cols - 1}>{_e(tc.title(lang, rng))}</th></tr>"
    head += "<tr>" + "".join(f"<th>{_e(tc.token(lang, rng))}</th>" for _ in range(cols - 1)) + "</tr>"
    rows = []
    for _ in range(rng.randint(1, 3)):
        span = rng.randint(1, 3)
        for r in range(span):
            first = f"<td rowspan={span}>{_e(tc.token(lang, rng))}</td>" if r == 0 else ""
            cells = "".join(f"<td>{rng.randint(0, 999)}</td>" for _ in range(cols - 1))
            rows.append(f"<tr>{first}{cells}</tr>")
    caption = f"<caption>{_e(tc.title(lang, rng))}</caption>" if rng.random() < 0.5 else ""
    return f"<table>{caption}<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _block(kind: str, rng: random.Random, lang: str, accent: str) -> str:
    if kind == "heading":
        level = rng.choice((2, 3))
        return f"<h{level}>{_e(tc.title(lang, rng))}</h{level}>"
    if kind == "paragraph":
        return f"<p>{_e(tc.paragraph(lang, rng))}</p>"
    if kind == "columns":
        paras = "".join(f"<p>{_e(tc.paragraph(lang, rng, (3, 6)))}</p>" for _ in range(rng.randint(1, 3)))
        return f'<div style="column-count:{rng.randint(2, 3)};column-gap:{rng.randint(16, 40)}px">{paras}</div>'
    if kind == "list":
        tag = rng.choice(("ul", "ol"))
        items = "".join(f"<li>{_e(tc.sentence(lang, rng, 3, 9))}</li>" for _ in range(rng.randint(2, 5)))
        return f"<{tag}>{items}</{tag}>"
    if kind == "table":
        return _table(rng, lang)
    if kind == "formula":
        tex, body = rng.choice(FORMULAS)
        return (f'<p><math display="block"><semantics><mrow>{body}</mrow>'
                f'<annotation encoding="application/x-tex">{_e(tex)}</annotation></semantics></math></p>')
    if kind == "chart":
        return f"<figure>{_svg_bars(rng, lang, accent)}<figcaption>{_e(tc.title(lang, rng))}</figcaption></figure>"
    if kind == "image":
        w, h = rng.randint(120, 320), rng.randint(80, 200)
        return (f'<figure><img src="{_image_data_uri(rng, w, h)}" width="{w}" height="{h}" '
                f'alt="{_e(tc.title(lang, rng))}"><figcaption>{_e(tc.title(lang, rng))}</figcaption></figure>')
    if kind == "quote":
        return f"<blockquote>{_e(tc.sentence(lang, rng))}</blockquote>"
    raise ValueError(kind)


BLOCKS = ("heading", "paragraph", "columns", "list", "table", "formula", "chart", "image", "quote")


def generate_document(rng: random.Random, languages: list[str], width: tuple[int, int] = (640, 1000),
                      max_blocks: int = 9) -> tuple[str, dict]:
    """One HTML page and what was chosen for it (language, font, geometry, blocks)."""
    lang = rng.choice(languages)
    font = rng.choice(CJK_FONTS[lang] if lang in CJK_FONTS else LATIN_FONTS)
    page_w = rng.randint(*width)
    size = rng.randint(12, 18)
    dark_mode = rng.random() < 0.15
    fg, bg = (_colour(rng, False), _colour(rng, True)) if dark_mode else (_colour(rng, True), _colour(rng, False))
    accent = _colour(rng, dark_mode is False)
    kinds = ["heading", "paragraph"] + [rng.choice(BLOCKS) for _ in range(rng.randint(2, max_blocks - 2))]
    body = "\n".join(_block(k, rng, lang, accent) for k in kinds)
    css = (
        f"body{{margin:{rng.randint(16, 60)}px;font-family:'{font}';font-size:{size}px;color:{fg};"
        f"background:{bg};line-height:{rng.uniform(1.2, 1.7):.2f}}}"
        f"h1{{font-size:{size * rng.uniform(1.6, 2.4):.0f}px;color:{accent}}}"
        f"table{{border-collapse:collapse;margin:8px 0}}td,th{{border:1px solid {fg};padding:{rng.randint(2, 8)}px}}"
        f"figure{{margin:8px 0}}figcaption{{font-size:{max(10, size - 2)}px;font-style:italic}}"
        f"blockquote{{border-left:3px solid {accent};padding-left:10px}}"
    )
    title = tc.title(lang, rng)
    doc = (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{_e(title)}</title>'
           f"<style>{css}</style></head><body><h1>{_e(title)}</h1>\n{body}\n</body></html>")
    meta = {"language": lang, "font": font, "font_size": size, "page_width": page_w, "blocks": kinds,
            "dark": dark_mode}
    return doc, meta
