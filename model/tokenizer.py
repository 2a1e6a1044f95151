"""Tokenizers: loading the user's, building small local ones, and fingerprints.

Token counts are written into the catalog at ingest and summed by the packer, so the
shard step and the trainer must use the very tokenizer the counts came from; the
fingerprint (a hash of the serialized tokenizer) is what they compare.

No hub access: a user points at a local transformers tokenizer directory. For tests
and the demo, ``build_tokenizer`` makes a byte-level BPE (untrained: one token per
UTF-8 byte, or trained on given texts) and saves it with ``save_pretrained`` so it is
loaded through exactly the path a real tokenizer takes.
"""
from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable

# ChatML turn markers and the InternVL image tokens; added when a tokenizer lacks them.
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
IMAGE_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>"]
BYTE_LEVEL = "byte-level"  # the built-in tokenizer's name in job specs


def build_tokenizer(out_dir: str, texts: Iterable[str] | None = None, vocab_size: int = 4096) -> str:
    """Save a byte-level BPE tokenizer in transformers format to ``out_dir``; return it.

    With ``texts`` the BPE merges are learned from them (deterministic for the same
    texts); without, the vocabulary is the 256 bytes plus special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = CHAT_TOKENS + IMAGE_TOKENS
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if texts is None:
        vocab = {tok: i for i, tok in enumerate(sorted(alphabet))}
        backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    else:
        backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    if texts is not None:
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=alphabet, special_tokens=specials, show_progress=False
        )
        backend.train_from_iterator(texts, trainer=trainer)
    backend.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<IMG_CONTEXT>", "start_image_token": "<img>", "end_image_token": "</img>"},
    )
    os.makedirs(out_dir, exist_ok=True)
    tok.save_pretrained(out_dir)
    return out_dir


@functools.lru_cache(maxsize=8)
def load_tokenizer(path: str):
    """Load a local transformers tokenizer directory, adding Tessera's special tokens if missing."""
    from transformers import AutoTokenizer

    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"tokenizer directory {path!r} not found: give a local transformers tokenizer "
            f"directory (save_pretrained output) or {BYTE_LEVEL!r}"
        )
    tok = AutoTokenizer.from_pretrained(path)
    missing = [t for t in CHAT_TOKENS + IMAGE_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": missing})
    return tok


def fingerprint(tokenizer) -> str:
    """A hash of what decides token counts: the serialized backend and the added tokens."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:  # slow tokenizers: the vocabulary stands in for the model
        h.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    h.update(repr(sorted(tokenizer.get_added_vocab().items())).encode())
    return h.hexdigest()


def count_tokens(tokenizer, texts: list[str]) -> list[int]:
    if not texts:
        return []
    enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in enc]
