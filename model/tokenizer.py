"""Tokenizers: loading the user's, building small local ones, and fingerprints.

Token counts are written into the catalog at ingest and summed by the packer, so the
shard step and the trainer must use the very tokenizer the counts came from; the
fingerprint (a hash of the serialized tokenizer) is what they compare.

No hub access: a user points at a local transformers tokenizer directory. For tests
and the demo, ``build_tokenizer`` makes a byte-level BPE (untrained: one token per
UTF-8 byte, or trained on given texts) and saves it with ``save_pretrained`` so it is
loaded through exactly the path a real tokenizer takes.

Counting at ingest does not need transformers (whose import pulls in torch: seconds
per Ray worker). ``load_tokenizer`` leaves, beside its result, the serialized Rust
backend that transformers built for the directory (``COUNTING_CACHE``, keyed by the
directory's file contents and the transformers version); ``load_counting_tokenizer``
rebuilds that very backend with ``tokenizers`` alone, checks it has the same
fingerprint, and falls back to ``load_tokenizer`` when there is no such record. The
trainer's tokenizer stays the source of truth: counts are the same by construction.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from importlib import metadata

# ChatML turn markers and the InternVL image tokens; added when a tokenizer lacks them.
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
IMAGE_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>"]
BYTE_LEVEL = "byte-level"  # the built-in tokenizer's name in job specs
COUNTING_CACHE = os.path.join(os.path.expanduser("~/.cache/tessera"), "counting-tokenizers")


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
    _record_backend(path, tok)
    return tok


class CountingTokenizer:
    """What token counting uses of a transformers fast tokenizer, on its Rust backend only.

    ``tokenizer(text, add_special_tokens=False)["input_ids"]`` is, in transformers,
    ``backend.encode_batch([text], add_special_tokens=False)`` on this same backend
    (no truncation, no padding), so the ids are identical.
    """

    def __init__(self, backend):
        self.backend_tokenizer = backend
        self._vocab = backend.get_vocab(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._vocab  # built once (transformers rebuilds it per call); do not mutate

    def get_added_vocab(self) -> dict[str, int]:
        added = self.backend_tokenizer.get_added_tokens_decoder()
        return {tok.content: i for i, tok in sorted(added.items())}

    def __call__(self, text, add_special_tokens: bool = True) -> dict:
        if isinstance(text, str):
            return {"input_ids": self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}
        encodings = self.backend_tokenizer.encode_batch(list(text), add_special_tokens=add_special_tokens)
        return {"input_ids": [e.ids for e in encodings]}


def _record_path(path: str) -> str | None:
    """The cache file for a tokenizer directory's current contents, or None (not a directory)."""
    if not os.path.isdir(path):
        return None
    try:
        version = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return None
    h = hashlib.sha256(f"transformers {version}\n".encode())
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            with open(full, "rb") as f:
                h.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return os.path.join(COUNTING_CACHE, h.hexdigest() + ".json")


def _record_backend(path: str, tok) -> None:
    """Save the backend transformers built, when its encoding is the plain backend call."""
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    plain = isinstance(tok, TokenizersBackend) and all(
        getattr(type(tok), name) is getattr(TokenizersBackend, name) for name in ("__call__", "_encode_plus")
    )
    target = _record_path(path) if plain and not tok.split_special_tokens else None
    if target is None or os.path.exists(target):
        return
    record = {"fingerprint": fingerprint(tok), "backend": tok.backend_tokenizer.to_str()}
    try:  # a cache only: a read-only home just means the slow path next time
        os.makedirs(COUNTING_CACHE, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=COUNTING_CACHE, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, target)  # atomic: concurrent workers read whole records or none
    except OSError:
        pass


@functools.lru_cache(maxsize=8)
def load_counting_tokenizer(path: str):
    """A tokenizer that counts exactly like ``load_tokenizer(path)``, without transformers if it can."""
    target = _record_path(path)
    if target and os.path.exists(target):
        from tokenizers import Tokenizer

        try:
            with open(target) as f:
                record = json.load(f)
            tok = CountingTokenizer(Tokenizer.from_str(record["backend"]))
            if fingerprint(tok) == record["fingerprint"]:
                return tok
        except Exception:  # a damaged or foreign record: take the safe path
            pass
    return load_tokenizer(path)


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
