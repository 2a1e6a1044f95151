"""The CLIP scorer on a tiny open_clip model built here (no download), saved and reloaded
through the same checkpoint path real weights take."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from filters.scorers.base import ScoreInput
from filters.scorers.clip import ClipConfig, ClipScorer, load_clip
from filters.scorers.registry import build_scorer
from schemas.config import ConfigError

# A CLIP small enough for CPU tests: 32 px images, 2-layer towers, real BPE vocab.
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


def make_tiny_clip(folder) -> dict:
    """Random tiny CLIP: its config JSON and a saved state dict; returns clip scorer options."""
    import open_clip

    cfg_path = folder / "TinyCLIP.json"
    cfg_path.write_text(json.dumps(TINY))
    open_clip.add_model_config(str(cfg_path))
    torch.manual_seed(0)
    model = open_clip.create_model("TinyCLIP", pretrained=None)
    ckpt = folder / "tiny_clip.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    return {"model": "TinyCLIP", "model_config": str(cfg_path), "checkpoint": str(ckpt), "infer_batch": 16}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40 + i % 7, 48, 3), dtype=np.uint8)) for i in range(n)]


def inputs(n: int) -> list[ScoreInput]:
    return [ScoreInput(f"s{i:03d}", "image_text", f"a photo of thing number {i}", [], [], [img])
            for i, img in enumerate(images(n))]


def test_checkpoint_reload_gives_the_saved_models_embeddings(tiny_clip, tmp_path):
    import open_clip

    torch.manual_seed(0)  # the same seed builds the same random weights that were saved
    reference = open_clip.create_model("TinyCLIP", pretrained=None).eval()
    torch.manual_seed(123)  # ... and a different seed must not matter once the checkpoint loads
    model, preprocess, tokenizer = load_clip(ClipConfig(**tiny_clip))
    x = torch.stack([preprocess(im) for im in images(4)])
    t = tokenizer(["a cat", "a dog", "two birds", "a red car"])
    with torch.inference_mode():
        assert torch.equal(model.encode_image(x), reference.encode_image(x))
        assert torch.equal(model.encode_text(t), reference.encode_text(t))
    other = open_clip.create_model("TinyCLIP", pretrained=None).eval()
    with torch.inference_mode():
        assert not torch.equal(other.encode_image(x), reference.encode_image(x))


def test_scores_are_cosines_of_stored_unit_embeddings(tiny_clip):
    scorer = build_scorer("clip", tiny_clip)
    rows = scorer.score(inputs(5))
    assert scorer.schema().names == [f"clip_{c}" for c in ("score", "image_emb", "text_emb", "model", "error")]
    for r in rows:
        img, txt = np.asarray(r["clip_image_emb"], np.float32), np.asarray(r["clip_text_emb"], np.float32)
        assert r["clip_image_emb"].dtype == np.float16 and len(img) == TINY["embed_dim"]
        assert abs(np.linalg.norm(img) - 1) < 2e-3 and abs(np.linalg.norm(txt) - 1) < 2e-3
        assert abs(float(img @ txt) - r["clip_score"]) < 3e-3
        assert r["clip_error"] is None and r["clip_model"].startswith("TinyCLIP:")


def test_scores_do_not_depend_on_batching(tiny_clip):
    """Bit-identical whether a sample is scored alone, in odd batches or all at once."""
    scorer = build_scorer("clip", tiny_clip)
    batch = inputs(21)
    whole = scorer.score(batch)
    for size in (1, 4, 7):
        parts = [r for i in range(0, len(batch), size) for r in scorer.score(batch[i : i + size])]
        for a, b in zip(whole, parts):
            assert a["clip_score"] == b["clip_score"]
            assert np.array_equal(a["clip_image_emb"], b["clip_image_emb"])
            assert np.array_equal(a["clip_text_emb"], b["clip_text_emb"])


def test_missing_image_or_text_is_an_error_row_not_a_failure(tiny_clip):
    scorer = build_scorer("clip", tiny_clip)
    good = inputs(1)[0]
    no_image = ScoreInput("x", "image_text", "a caption", [], [])
    no_text = ScoreInput("y", "image_text", "  ", [], [], images(1))
    rows = scorer.score([no_image, good, no_text])
    assert [r["clip_error"] for r in rows] == ["no_image", None, "no_text"]
    assert rows[0]["clip_score"] is None and rows[1]["clip_score"] is not None


def test_bad_options_fail_before_any_work(tiny_clip, tmp_path):
    with pytest.raises(ConfigError, match="checkpoint"):
        build_scorer("clip", {"model": "ViT-B-32"})  # no weights: noise scores refused
    with pytest.raises(ConfigError, match="not a file"):
        build_scorer("clip", {**tiny_clip, "checkpoint": str(tmp_path / "missing.pt")})
    with pytest.raises(ConfigError, match="unknown key"):
        build_scorer("clip", {**tiny_clip, "modle": "x"})
    with pytest.raises(ConfigError, match="unknown scorer"):
        build_scorer("nope", {})
    assert isinstance(build_scorer("clip", {"model": "ViT-B-32", "allow_random_weights": True}), ClipScorer)
