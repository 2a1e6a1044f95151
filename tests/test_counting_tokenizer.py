"""Token counts at ingest without transformers: identical to the trainer's tokenizer."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

import model.tokenizer as T
from model.chat_template import caption_conversation, encode_conversation
from schemas import Turn

TEXTS = ["a photo of a cat on a red sofa", "ünïcödé café, naïve façade", "你好，世界 🙂 emoji 👍🏽",
         "tabs\tand  double  spaces\n\nnew lines", "literal <|im_end|> and <img> inside a caption", ""]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "COUNTING_CACHE", str(tmp_path / "cache"))
    T.load_tokenizer.cache_clear()
    T.load_counting_tokenizer.cache_clear()
    yield tmp_path / "cache"
    T.load_tokenizer.cache_clear()
    T.load_counting_tokenizer.cache_clear()


@pytest.fixture(params=["untrained", "trained"])
def tokenizer_dir(request, tmp_path):
    texts = None if request.param == "untrained" else TEXTS * 30
    return T.build_tokenizer(str(tmp_path / request.param), texts=texts, vocab_size=600)


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abc xyz ÄÖü é 中文 🙂\t\n<>|_" + "".join(TEXTS)
    return [TEXTS[i % len(TEXTS)] + " " + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
            for i in range(n)]


def test_counts_and_ids_equal_the_trainer_tokenizer(cache, tokenizer_dir):
    reference = T.load_tokenizer(tokenizer_dir)  # what the trainer and the ingest driver load
    counting = T.load_counting_tokenizer(tokenizer_dir)
    assert isinstance(counting, T.CountingTokenizer)
    assert T.fingerprint(counting) == T.fingerprint(reference)
    assert counting.get_vocab() == reference.get_vocab()
    for i, text in enumerate(random_texts(60)):
        conv = caption_conversation(text, f"{i:08x}", n_images=1 + i % 3)
        conv.append(Turn("user", "and <image> this one?"))  # an image mid-text
        tiles = [1 + (i + k) % 7 for k in range(conv[0].content.count("<image>") + 1)]
        a = encode_conversation(reference, conv, tiles, 64)
        b = encode_conversation(counting, conv, tiles, 64)
        assert (a.input_ids, a.labels_mask, a.text_tokens) == (b.input_ids, b.labels_mask, b.text_tokens)
    batch = random_texts(10, seed=1)
    assert counting(batch, add_special_tokens=False)["input_ids"] == reference(batch, add_special_tokens=False)["input_ids"]


def test_without_a_record_it_is_the_transformers_tokenizer(cache, tokenizer_dir):
    tok = T.load_counting_tokenizer(tokenizer_dir)  # nothing recorded yet in this cache
    assert not isinstance(tok, T.CountingTokenizer) and hasattr(tok, "apply_chat_template")
    assert list(cache.iterdir())  # loading it recorded the backend: the next process is fast
    T.load_counting_tokenizer.cache_clear()
    assert isinstance(T.load_counting_tokenizer(tokenizer_dir), T.CountingTokenizer)


def test_a_changed_directory_or_a_damaged_record_is_not_trusted(cache, tokenizer_dir):
    T.load_tokenizer(tokenizer_dir)
    (record,) = cache.iterdir()
    # Another tokenizer in the same directory: a different key, so no record applies.
    config = os.path.join(tokenizer_dir, "tokenizer_config.json")
    with open(config) as f:
        cfg = json.load(f)
    with open(config, "w") as f:
        json.dump({**cfg, "model_max_length": 77}, f)
    assert not isinstance(T.load_counting_tokenizer(tokenizer_dir), T.CountingTokenizer)
    with open(config, "w") as f:
        json.dump(cfg, f)
    # A record whose backend does not match its fingerprint: the safe path again.
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "fingerprint": "0" * 64}))
    T.load_counting_tokenizer.cache_clear()
    assert not isinstance(T.load_counting_tokenizer(tokenizer_dir), T.CountingTokenizer)


@pytest.mark.slow
def test_counting_does_not_import_transformers(cache, tokenizer_dir):
    T.load_tokenizer(tokenizer_dir)
    code = (
        "import sys, model.tokenizer as T\n"
        f"T.COUNTING_CACHE = {str(cache)!r}\n"
        "from model.chat_template import caption_conversation, encode_conversation\n"
        f"tok = T.load_counting_tokenizer({tokenizer_dir!r})\n"
        "n = encode_conversation(tok, caption_conversation('a cat', '00000000'), [3], 64).text_tokens\n"
        "print(type(tok).__name__, n, 'transformers' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout.split()
    expected = encode_conversation(T.load_tokenizer(tokenizer_dir), caption_conversation("a cat", "00000000"), [3], 64)
    assert out == ["CountingTokenizer", str(expected.text_tokens), "False", "False"]
