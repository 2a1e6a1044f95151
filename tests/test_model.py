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


VARLEN_REFERENCE = "tessera_varlen_reference"
VARLEN_CALLS: list = []


def varlen_reference_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                               is_causal=None, **kwargs):
    """On CPU, what ``flash_attn_varlen_func`` computes from the kwargs transformers hands it.

    Query/key/value are [1, heads, L, d]. With ``cu_seq_lens_q`` (the LLM), causal attention
    inside each segment [cu[i], cu[i+1]); without (the vision tower), plain attention per tile.
    """
    n_rep = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(n_rep, 1), value.repeat_interleave(n_rep, 1)
    attend = lambda q, k, v, causal: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                                      scale=scaling)
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        VARLEN_CALLS.append(None)
        out = attend(query, key, value, bool(module.is_causal if is_causal is None else is_causal))
    else:
        # transformers' _flash_attention_forward unpads with a mask when one is given and then
        # ignores cu_seq_lens: the packed path only isolates sub-samples if no mask reaches it.
        assert attention_mask is None
        VARLEN_CALLS.append({k: kwargs[k] for k in ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")})
        b = cu.tolist()
        out = torch.cat([attend(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], True)
                         for s, e in zip(b, b[1:])], dim=2)
    return out.transpose(1, 2).contiguous(), None


def test_flash_varlen_kwargs_are_the_sub_sample_boundaries_and_isolate_them(train_data, tiny):
    import copy
    import itertools

    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask
    from transformers.modeling_flash_attention_utils import prepare_fa_kwargs_from_position_ids

    tok, model = tiny
    raw = max(packs(train_data["shards"], 8), key=lambda p: p["json"].count(b"sample_id"))
    packed = collate_packed(decode_pack(raw, tok, TINY, None, None))
    assert len(packed.seq_lens) >= 3
    kw = attention_inputs(packed, "flash_attention_2", torch.bfloat16)
    assert "attention_mask" not in kw  # a mask would send flash attention down its padding path
    assert kw["cu_seq_lens_q"].dtype == torch.int32 and kw["cu_seq_lens_q"] is kw["cu_seq_lens_k"]
    assert kw["cu_seq_lens_q"].tolist() == [0, *itertools.accumulate(packed.seq_lens)]
    assert kw["max_length_q"] == kw["max_length_k"] == max(packed.seq_lens) and isinstance(kw["max_length_q"], int)
    # transformers derives the same boundaries from the restarting position ids.
    (cu_q, _), (longest, _) = prepare_fa_kwargs_from_position_ids(kw["position_ids"])
    assert torch.equal(cu_q, kw["cu_seq_lens_q"]) and int(longest) == kw["max_length_q"]

    # Through the real model, with the kernel swapped for its CPU reference: the kwargs reach
    # every LLM attention layer (and no vision layer) and give the block-mask loss.
    AttentionInterface.register(VARLEN_REFERENCE, varlen_reference_attention)
    AttentionMaskInterface.register(VARLEN_REFERENCE, flash_attention_mask)
    varlen = copy.deepcopy(model)
    varlen.set_attn_implementation(VARLEN_REFERENCE)
    VARLEN_CALLS.clear()
    with torch.no_grad():
        got = weighted_loss_sum(varlen, packed, "flash_attention_2") / packed.weights.sum()
        want = weighted_loss_sum(model, packed, "sdpa") / packed.weights.sum()
    assert abs(got - want) / want < 1e-5
    llm = [c for c in VARLEN_CALLS if c is not None]
    assert len(llm) == model.config.text_config.num_hidden_layers
    assert VARLEN_CALLS.count(None) == model.config.vision_config.num_hidden_layers
    assert all(torch.equal(c["cu_seq_lens_q"], kw["cu_seq_lens_q"]) and c["max_length_q"] == kw["max_length_q"]
               for c in llm)


def counted(forward, calls: dict, key: str):
    def wrapper(*args, **kwargs):
        calls[key] += 1
        return forward(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("train", [["vision", "projector", "llm"], ["projector"]])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(train_data, train):
    from model.freeze import apply_freezing

    tok = load_tokenizer(train_data["tokenizer"])
    packed = collate_packed(decode_pack(packs(train_data["shards"], 1)[0], tok, TINY, None, None))
    runs = []
    for checkpointing in (False, True):
        model = build_model(ModelConfig(preset="tiny", gradient_checkpointing=checkpointing), tok, TINY, seed=0)
        apply_freezing(model, train, 0)
        model.train()
        # Count calls of a module inside the first layer of each tower: transformers checkpoints the
        # layer's forward, which the backward pass runs again. (Forward hooks do not fire during
        # torch's recompute, so the forward itself is wrapped.)
        calls = {"llm": 0, "vision": 0}
        for tower, mlp in (("llm", model.model.language_model.layers[0].mlp),
                           ("vision", model.model.vision_tower.encoder.layer[0].mlp)):
            mlp.forward = counted(mlp.forward, calls, tower)
        loss = weighted_loss_sum(model, packed) / packed.weights.sum()
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        runs.append((loss.detach(), grads, calls))
    (loss_a, grads_a, calls_a), (loss_b, grads_b, calls_b) = runs
    assert calls_a == {"llm": 1, "vision": 1}
    assert calls_b["llm"] == 2  # recomputed in the backward pass: checkpointing is really on
    assert calls_b["vision"] == (2 if "vision" in train else 1)  # a frozen tower needs no recompute
    assert torch.allclose(loss_a, loss_b, rtol=1e-6, atol=0)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-7), name


def test_piece_cache_never_changes_an_encoding(tmp_path, monkeypatch):
    """encode_conversation caches short recurring pieces per tokenizer; ids and masks must equal
    those of an encoder that tokenizes every piece afresh, over repeated and unique texts."""
    import random

    import model.chat_template as ct
    from model.tokenizer import build_tokenizer, load_tokenizer
    from schemas import Turn

    tok = load_tokenizer(build_tokenizer(str(tmp_path / "tok")))
    rng = random.Random(0)
    words = ["cat", "Zürich", "東京", "<|im_end|>", "<img>", " ", "\n", "a b", "🙂"]
    convs = []
    for i in range(300):
        caption = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        convs.append(ct.caption_conversation(caption, f"{i:08x}", 1))
        convs.append([Turn("user", "<image>\n" + caption), Turn("assistant", caption[::-1])])
    cached = [ct.encode_conversation(tok, c, [2], 4) for c in convs * 2]
    monkeypatch.setattr(ct, "CACHED_PIECES", 0)
    ct._CACHES.clear()
    fresh = [ct.encode_conversation(tok, c, [2], 4) for c in convs * 2]
    assert [(e.input_ids, e.labels_mask) for e in cached] == [(e.input_ids, e.labels_mask) for e in fresh]
    assert not ct._encoder_cache(tok).pieces  # the fresh pass really cached nothing
