"""The model side: token counts, packed-sequence isolation, HF checkpoints, the three ways to start."""
from __future__ import annotations

import os

import pytest
import torch
import webdataset as wds
from transformers import AutoConfig, AutoModelForCausalLM, InternVLForConditionalGeneration, InternVLVisionModel

from jobs.demo import corpus_texts
from jobs.train_config import DataSource
from jobs.train_data import decode_pack, open_shard_set
from jobs.train_demo import TILING, prepare_train_data
from model.build import build_model
from model.chat_template import encode_conversation
from model.checkpoint import save_hf
from model.config import ModelConfig
from model.packed import IGNORE, attention_inputs, collate_packed, sample_weight, weighted_loss_sum
from model.tokenizer import build_tokenizer, fingerprint, load_tokenizer
from pipeline import catalog
from pipeline.dataset import Dataset
from pipeline.tiling import TilingConfig


@pytest.fixture(scope="session")
def train_data(corpus, tmp_path_factory):
    """A small-tile ingest of the demo corpus and its shards, shared by the model and train tests."""
    base = tmp_path_factory.getbasetemp() / "train-data"
    tok = str(base / "tokenizer")
    if not os.path.exists(os.path.join(tok, "tokenizer_config.json")):
        build_tokenizer(tok, texts=corpus_texts(str(corpus.root)), vocab_size=600)
    shards = prepare_train_data(str(base), corpus, tok)
    return {"root": str(base), "tokenizer": tok, "shards": shards, "dataset": str(base / "dataset-train")}


TINY = TilingConfig(**TILING)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def packs(shards: str, n: int) -> list[dict]:
    return list(wds.WebDataset(open_shard_set(DataSource("x", shards)).urls, shardshuffle=False).slice(n))


def test_catalog_token_counts_equal_the_encoded_sequence(train_data):
    tok = load_tokenizer(train_data["tokenizer"])
    rows = catalog.query(Dataset(train_data["dataset"]),
                         "SELECT conversation, media, text_tokens, image_tokens, total_tokens FROM samples").to_pylist()
    assert len(rows) > 100
    for r in rows:
        enc = encode_conversation(tok, r["conversation"], [m["n_tiles"] for m in r["media"]], TINY.tokens_per_tile)
        assert r["text_tokens"] + r["image_tokens"] == r["total_tokens"] == len(enc.input_ids)
        assert enc.image_tokens == r["image_tokens"] and enc.text_tokens == r["text_tokens"]
        ids = torch.tensor(enc.input_ids)
        assert int((ids == tok.convert_tokens_to_ids("<IMG_CONTEXT>")).sum()) == sum(
            m["n_tiles"] for m in r["media"]) * TINY.tokens_per_tile
        # Loss only on the assistant's answer and its <|im_end|>.
        supervised = tok.decode([i for i, m in zip(enc.input_ids, enc.labels_mask) if m])
        assert supervised == r["conversation"][-1]["content"] + "<|im_end|>"


@pytest.fixture(scope="module")
def tiny(train_data):
    tok = load_tokenizer(train_data["tokenizer"])
    model = build_model(ModelConfig(preset="tiny"), tok, TINY, seed=0).eval()
    return tok, model


@pytest.mark.parametrize("reduction", ["token", "sample", "square"])
def test_packed_loss_equals_weighted_sum_of_separate_losses(train_data, tiny, reduction):
    tok, model = tiny
    raw = max(packs(train_data["shards"], 8), key=lambda p: p["json"].count(b"sample_id"))
    subs = decode_pack(raw, tok, TINY, None, None)
    assert len(subs) >= 3
    packed = collate_packed(subs, reduction)
    assert packed.n_tokens == sum(len(s.input_ids) for s in subs)  # no padding at all
    with torch.no_grad():
        loss = weighted_loss_sum(model, packed) / packed.weights.sum()
        # One at a time: plain mean cross-entropy of each sub-sample.
        alone = [weighted_loss_sum(model, collate_packed([s], "token")) / sum(s.labels_mask) for s in subs]
    w = torch.tensor([sample_weight(sum(s.labels_mask), reduction) * sum(s.labels_mask) for s in subs])
    expected = (w * torch.stack(alone)).sum() / w.sum()
    assert abs(loss - expected) / expected < 1e-5
    # The mask is what isolates them: position ids alone let sub-samples attend to each other.
    with torch.no_grad():
        kwargs = attention_inputs(packed, "sdpa", torch.float32)
        leaky = model(input_ids=packed.input_ids, pixel_values=packed.pixel_values,
                      position_ids=kwargs["position_ids"]).logits
        isolated = model(input_ids=packed.input_ids, pixel_values=packed.pixel_values, **kwargs).logits
    second = slice(packed.seq_lens[0], packed.seq_lens[0] + packed.seq_lens[1])
    assert (leaky[0, second] - isolated[0, second]).abs().max() > 1e-3


def test_targets_never_cross_sub_sample_boundaries(train_data, tiny):
    tok, _ = tiny
    subs = decode_pack(packs(train_data["shards"], 1)[0], tok, TINY, None, None)
    packed = collate_packed(subs, "token")
    ends = torch.tensor(packed.seq_lens).cumsum(0) - 1
    assert (packed.targets[0, ends] == IGNORE).all()
    assert int((packed.targets != IGNORE).sum()) == sum(sum(s.labels_mask) for s in subs)


def test_checkpoint_loads_in_plain_transformers_with_identical_logits(train_data, tiny, tmp_path):
    tok, model = tiny
    packed = collate_packed(decode_pack(packs(train_data["shards"], 1)[0], tok, TINY, None, None))
    save_hf(model, tok, TINY, str(tmp_path / "ckpt"))
    loaded = InternVLForConditionalGeneration.from_pretrained(str(tmp_path / "ckpt")).eval()
    with torch.no_grad():
        kwargs = attention_inputs(packed, "sdpa", torch.float32)
        a = model(input_ids=packed.input_ids, pixel_values=packed.pixel_values, **kwargs).logits
        b = loaded(input_ids=packed.input_ids, pixel_values=packed.pixel_values, **kwargs).logits
    assert torch.equal(a, b)
    assert loaded.config.image_token_id == tok.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert fingerprint(load_tokenizer.__wrapped__(str(tmp_path / "ckpt"))) == fingerprint(tok)


def test_start_from_a_vision_tower_and_an_llm(train_data, tiny, tmp_path):
    tok, model = tiny
    vision_dir, llm_dir = str(tmp_path / "vit"), str(tmp_path / "llm")
    model.model.vision_tower.save_pretrained(vision_dir)
    llm = AutoModelForCausalLM.from_config(AutoConfig.for_model(
        "qwen2", vocab_size=len(tok) - 3, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, intermediate_size=128, tie_word_embeddings=True))
    llm.save_pretrained(llm_dir)
    built = build_model(ModelConfig(vision=vision_dir, llm=llm_dir), tok, TINY)
    vit = InternVLVisionModel.from_pretrained(vision_dir)
    for (name, p), (_, q) in zip(built.model.vision_tower.state_dict().items(), vit.state_dict().items()):
        assert torch.equal(p, q), name
    # The LLM's weights are kept; its embeddings grew for the tokens the tokenizer has beyond its vocabulary.
    emb = built.model.language_model.embed_tokens.weight
    assert emb.shape[0] == len(tok) and torch.equal(emb[: len(tok) - 3], llm.model.embed_tokens.weight)
    assert torch.equal(built.model.language_model.layers[1].mlp.up_proj.weight, llm.model.layers[1].mlp.up_proj.weight)


def test_model_and_tiling_must_agree(tiny):
    tok, _ = tiny
    with pytest.raises(ValueError, match="does not match the dataset's tiling"):
        build_model(ModelConfig(preset="tiny"), tok, TilingConfig(tile_size=112, patch_size=14))
    with pytest.raises(ValueError, match="exactly one"):
        ModelConfig(preset="tiny", pretrained="/x")
