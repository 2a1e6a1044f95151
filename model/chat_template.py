"""ChatML rendering shared by token counting (ingest) and the trainer.

Token counts in the catalog are counts of exactly this rendering, so the packer's
budgets hold for the sequences the trainer builds. ``<image>`` placeholders are not
text: each becomes ``<img>`` + one context token per image token + ``</img>``, which
``image_token_count`` accounts for.
"""
from __future__ import annotations

from schemas import IMAGE_PLACEHOLDER, Turn

# Tokens around each image besides its tile tokens: <img> and </img>.
IMAGE_WRAPPER_TOKENS = 2

# Caption prompts: a sample's prompt is chosen by its id so a re-run renders the same text.
CAPTION_PROMPTS = (
    "Describe the image.",
    "What is shown in this picture?",
    "Write a short caption for this image.",
    "Give a brief description of the photo.",
)


def render_chatml(conversation: list[Turn], strip_images: bool = True) -> str:
    parts = []
    for turn in conversation:
        content = turn.content.replace(IMAGE_PLACEHOLDER, "") if strip_images else turn.content
        parts.append(f"<|im_start|>{turn.role}\n{content}<|im_end|>\n")
    return "".join(parts)


def caption_conversation(caption: str, sample_id: str, n_images: int = 1) -> list[Turn]:
    prompt = CAPTION_PROMPTS[int(sample_id[:8], 16) % len(CAPTION_PROMPTS)]
    images = (IMAGE_PLACEHOLDER + "\n") * n_images
    return [Turn("user", images + prompt), Turn("assistant", caption)]


def image_token_count(tiles_per_image: list[int], tokens_per_tile: int) -> int:
    return sum(t * tokens_per_tile + IMAGE_WRAPPER_TOKENS for t in tiles_per_image)
