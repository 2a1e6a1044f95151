"""Ground truth as ChatML conversations, in the formats VLM trainers use.

Each builder returns ``list[Turn]`` whose first user turn starts with one ``<image>``
placeholder (one image per sample). Grounding answers are JSON, as Qwen2.5-VL emits
them (``{"bbox_2d": [...], "text_content": ...}``); coordinates are absolute pixels
of the stored image, or the 0-1000 grid with ``box_format="norm1000"``. Prompts are
drawn from small pools with the sample's own RNG, so a re-run writes the same text.
"""
from __future__ import annotations

import json
import random
from collections.abc import Sequence

from pipeline.render.boxes import format_box
from schemas import IMAGE_PLACEHOLDER, Turn

OCR_FORMATS = ("read_all", "grounded", "region_qa")
HTML_FORMATS = ("html", "read_all", "grounded")
CHART_FORMATS = ("chart_to_table", "chart_qa")

READ_PROMPTS = (
    "Read all the text in the image.",
    "Transcribe every line of text in this image, top to bottom.",
    "What text appears in this image? Give it line by line.",
)
SPOT_PROMPTS = (
    "Spot all the text in the image at {level} level. Output JSON: "
    '[{{"bbox_2d": [x1, y1, x2, y2], "text_content": "..."}}] with {coords}.',
    "Find every {level} of text and give its bounding box as JSON "
    '[{{"bbox_2d": [x1, y1, x2, y2], "text_content": "..."}}], {coords}.',
)
DOC_PROMPTS = ("QwenVL HTML", "Convert this document page to HTML, with a data-bbox on each element.")
LAYOUT_PROMPT = ('Detect the layout elements of this page. Output JSON: [{{"bbox_2d": [x1, y1, x2, y2], '
                 '"category": "...", "text_content": "..."}}] with {coords}.')
TABLE_PROMPTS = (
    "Convert the chart to a data table.",
    "Extract the underlying data of this chart as a table.",
    "What data is plotted here? Answer with a markdown table.",
)


def coords_phrase(box_format: str) -> str:
    return "coordinates normalised to 0-1000" if box_format == "norm1000" else "absolute pixel coordinates"


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _first(prompt: str) -> Turn:
    return Turn("user", f"{IMAGE_PLACEHOLDER}\n{prompt}")


def ocr_conversation(
    fmt: str, lines: Sequence[dict], width: int, height: int, rng: random.Random,
    box_format: str = "absolute", granularity: str = "line", n_questions: int = 3,
) -> list[Turn]:
    """``lines``: [{"text", "box", "words": [{"text", "box"}]}] in reading order, boxes in pixels."""
    if fmt == "read_all":
        return [_first(rng.choice(READ_PROMPTS)), Turn("assistant", "\n".join(l["text"] for l in lines))]
    if fmt == "grounded":
        items = [w for l in lines for w in l.get("words", [])] if granularity == "word" else list(lines)
        prompt = rng.choice(SPOT_PROMPTS).format(level=granularity, coords=coords_phrase(box_format))
        answer = [{"bbox_2d": format_box(i["box"], width, height, box_format), "text_content": i["text"]} for i in items]
        return [_first(prompt), Turn("assistant", _dumps(answer))]
    if fmt == "region_qa":
        return region_questions(lines, width, height, rng, box_format, n_questions)
    raise ValueError(f"unknown OCR format {fmt!r}; known: {OCR_FORMATS}")


def region_questions(lines, width, height, rng, box_format, n_questions) -> list[Turn]:
    """Alternating "read this region" and "where is this text" turns over distinct lines."""
    picked = rng.sample(list(lines), min(n_questions, len(lines)))
    turns: list[Turn] = []
    for i, line in enumerate(picked):
        box = format_box(line["box"], width, height, box_format)
        if rng.random() < 0.5:
            q = f"What does the text inside the box {box} say? (Boxes use {coords_phrase(box_format)}.)"
            a = line["text"]
        else:
            q = f'Where is the text "{line["text"]}"? Answer with a bounding box in {coords_phrase(box_format)}.'
            a = _dumps({"bbox_2d": box})
        turns += [Turn("user", (f"{IMAGE_PLACEHOLDER}\n" if i == 0 else "") + q), Turn("assistant", a)]
    return turns


def document_conversation(
    fmt: str, omni_html: str, text: str, elements: Sequence[dict], width: int, height: int,
    rng: random.Random, box_format: str = "absolute",
) -> list[Turn]:
    """A rendered page: its omni-document HTML, its visible text, or its layout boxes."""
    if fmt == "html":
        return [_first(rng.choice(DOC_PROMPTS)), Turn("assistant", omni_html)]
    if fmt == "read_all":
        return [_first(rng.choice(READ_PROMPTS)), Turn("assistant", text)]
    if fmt == "grounded":
        answer = [
            {"bbox_2d": format_box(e["box"], width, height, box_format), "category": e["category"],
             "text_content": e["text"]}
            for e in elements
        ]
        return [_first(LAYOUT_PROMPT.format(coords=coords_phrase(box_format))), Turn("assistant", _dumps(answer))]
    raise ValueError(f"unknown document format {fmt!r}; known: {HTML_FORMATS}")


def chart_conversation(fmt: str, table_text: str, qa: Sequence[tuple[str, str]], rng: random.Random) -> list[Turn]:
    if fmt == "chart_to_table":
        return [_first(rng.choice(TABLE_PROMPTS)), Turn("assistant", table_text)]
    if fmt == "chart_qa":
        turns: list[Turn] = []
        for i, (q, a) in enumerate(qa):
            turns += [Turn("user", (f"{IMAGE_PLACEHOLDER}\n" if i == 0 else "") + q), Turn("assistant", a)]
        return turns
    raise ValueError(f"unknown chart format {fmt!r}; known: {CHART_FORMATS}")
