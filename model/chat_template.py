"""ChatML rendering shared by token counting (ingest) and the trainer.

Token counts in the catalog are counts of exactly this rendering, so the packer's
budgets hold for the sequences the trainer builds. ``<image>`` placeholders are not
text: each becomes ``<img>`` + one context token per image token + ``</img>``, which
``image_token_count`` accounts for. ``encode_conversation`` builds the actual token
sequence (and the loss mask); ingest counts its length, the trainer trains on it.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

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


# ---- the token sequence the trainer builds (ingest counts exactly this) ----------------

IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"


@dataclass
class EncodedConversation:
    input_ids: list[int]
    labels_mask: list[bool]  # True on tokens the loss supervises: assistant content and its <|im_end|>
    image_tokens: int  # of len(input_ids): <img>, context tokens and </img> of every image

    @property
    def text_tokens(self) -> int:
        return len(self.input_ids) - self.image_tokens

    @property
    def n_supervised(self) -> int:
        return sum(self.labels_mask)


def _role_content(turn) -> tuple[str, str]:
    # Catalog rows and pack JSON carry turns as dicts; ingest has Turn objects.
    return (turn["role"], turn["content"]) if isinstance(turn, dict) else (turn.role, turn.content)


# Turn headers, "<|im_end|>", "\n" and the caption prompts recur in every sample: tokenizing
# them once per tokenizer removes most of the tokenizer calls of a caption sample (ingest
# spent ~0.8 ms per sample in 8 calls), and get_vocab() builds a whole dict per call on
# transformers tokenizers. Short pieces only, and a bounded number of them.
CACHED_PIECE_CHARS = 64
CACHED_PIECES = 4096


@dataclass
class _EncoderCache:
    image_ids: tuple[int, int, int]  # <img>, </img>, <IMG_CONTEXT>
    pieces: dict[str, list[int]]


_CACHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _image_ids(tokenizer) -> tuple[int, int, int]:
    vocab = tokenizer.get_vocab()
    missing = [t for t in (IMG_START, IMG_END, IMG_CONTEXT) if t not in vocab]
    if missing:
        raise ValueError(f"tokenizer lacks the image tokens {missing}: load it with model.tokenizer.load_tokenizer")
    return vocab[IMG_START], vocab[IMG_END], vocab[IMG_CONTEXT]


def _encoder_cache(tokenizer) -> _EncoderCache:
    """Per tokenizer object; one whose vocabulary changes later must be a new object (tokens are
    only ever added by ``load_tokenizer``, before any encoding)."""
    try:
        cache = _CACHES.get(tokenizer)
    except TypeError:  # unhashable or not weakly referenceable: no caching
        return _EncoderCache(_image_ids(tokenizer), {})
    if cache is None:
        cache = _EncoderCache(_image_ids(tokenizer), {})
        _CACHES[tokenizer] = cache
    return cache


def encode_conversation(tokenizer, conversation, tiles_per_image: list[int], tokens_per_tile: int) -> EncodedConversation:
    """Token ids and loss mask of ``conversation`` in ChatML, images expanded in place.

    Each ``<image>`` becomes ``<img>`` + ``<IMG_CONTEXT>`` * (tiles * tokens_per_tile) +
    ``</img>``; the vision features replace the context tokens in the model. Text is
    tokenized piece by piece (turn header, text between images, turn end) so that
    the loss mask falls on token boundaries; the ingest step counts tokens with this
    very function, so catalog counts equal the trainer's sequence lengths.
    """
    cache = _encoder_cache(tokenizer)
    start, end, context = cache.image_ids
    pieces = cache.pieces
    ids: list[int] = []
    mask: list[bool] = []
    images = iter(tiles_per_image)
    n_image_tokens = 0

    def text(piece: str, supervised: bool) -> None:
        if piece:
            new = pieces.get(piece)
            if new is None:
                new = tokenizer(piece, add_special_tokens=False)["input_ids"]
                if len(piece) <= CACHED_PIECE_CHARS and len(pieces) < CACHED_PIECES:
                    pieces[piece] = new
            ids.extend(new)
            mask.extend([supervised] * len(new))

    for turn in conversation:
        role, content = _role_content(turn)
        supervised = role == "assistant"
        text(f"<|im_start|>{role}\n", False)
        for i, piece in enumerate(content.split(IMAGE_PLACEHOLDER)):
            if i:  # an image sits between this piece and the previous one
                tiles = next(images, None)
                if tiles is None:
                    raise ValueError(f"conversation has more {IMAGE_PLACEHOLDER} placeholders than images ({len(tiles_per_image)})")
                block = [start] + [context] * (tiles * tokens_per_tile) + [end]
                ids.extend(block)
                mask.extend([False] * len(block))  # image tokens are inputs, never targets
                n_image_tokens += len(block)
            text(piece, supervised)
        text("<|im_end|>", supervised)  # the model must learn to stop
        text("\n", False)
    if next(images, None) is not None:
        raise ValueError(f"conversation has fewer {IMAGE_PLACEHOLDER} placeholders than images ({len(tiles_per_image)})")
    return EncodedConversation(ids, mask, n_image_tokens)
