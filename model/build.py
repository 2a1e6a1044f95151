"""Build the InternVL model (transformers' classes) for a tokenizer and a dataset tiling.

The architecture is ``InternVLForConditionalGeneration`` as transformers defines it:
InternViT tower -> pixel unshuffle (downsample 0.5) -> LayerNorm-Linear-GELU-Linear
projector -> causal LLM. Nothing is re-implemented here; this module only decides
where the weights come from and checks that the model, the tokenizer and the tiling
the shards were made with agree, so a mismatch fails before training, not as a
shape error (or silently wrong image tokens) in the middle of it.
"""
from __future__ import annotations

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLVisionConfig,
    InternVLVisionModel,
)

from model.chat_template import IMG_CONTEXT
from model.config import PRESETS, ModelConfig
from pipeline.tiling import TilingConfig


def _pair(value) -> int:
    return value[0] if isinstance(value, (list, tuple)) else value


def check_tiling(config: InternVLConfig, tiling: TilingConfig) -> None:
    """Refuse a model whose tile geometry differs from the one the shards were tiled with."""
    vision = config.vision_config
    got = (_pair(vision.image_size), _pair(vision.patch_size), config.downsample_ratio, config.image_seq_length)
    want = (tiling.tile_size, tiling.patch_size, tiling.downsample_ratio, tiling.tokens_per_tile)
    if got != want:
        raise ValueError(
            "the model's vision config does not match the dataset's tiling: model (image_size, patch_size, "
            f"downsample_ratio, image_seq_length) = {got}, shards were tiled with {want} "
            f"(tile_size, patch_size, downsample_ratio, tokens_per_tile). Ingest with a matching tiling "
            "or pick a model whose vision tower takes these tiles."
        )


def _fit_tokenizer(model: InternVLForConditionalGeneration, tokenizer) -> None:
    """Grow the embeddings for tokens the tokenizer added (image tokens) and point at <IMG_CONTEXT>."""
    if len(tokenizer) > model.config.text_config.vocab_size:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)


def _internvl_config(vision_config, text_config, tokenizer, tiling: TilingConfig) -> InternVLConfig:
    return InternVLConfig(
        vision_config=vision_config, text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT),
        image_seq_length=tiling.tokens_per_tile, downsample_ratio=tiling.downsample_ratio,
        tie_word_embeddings=getattr(text_config, "tie_word_embeddings", True),
    )


def build_model(cfg: ModelConfig, tokenizer, tiling: TilingConfig, seed: int = 0) -> InternVLForConditionalGeneration:
    attn = {"attn_implementation": cfg.attn_implementation}
    if cfg.pretrained is not None:
        model = InternVLForConditionalGeneration.from_pretrained(cfg.pretrained, dtype=torch.float32, **attn)
    elif cfg.preset is not None:
        preset = PRESETS[cfg.preset]
        text_kwargs = dict(preset["text"])
        text = AutoConfig.for_model(text_kwargs.pop("model_type"), vocab_size=len(tokenizer), **text_kwargs)
        text.tie_word_embeddings = True
        config = _internvl_config(InternVLVisionConfig(**preset["vision"]), text, tokenizer, tiling)
        config._attn_implementation = cfg.attn_implementation
        torch.manual_seed(seed)  # the same seed gives the same initial weights on every rank
        model = InternVLForConditionalGeneration(config)
    else:
        vision = InternVLVisionModel.from_pretrained(cfg.vision, dtype=torch.float32, **attn)
        llm = AutoModelForCausalLM.from_pretrained(cfg.llm, dtype=torch.float32, **attn)
        config = _internvl_config(vision.config, llm.config, tokenizer, tiling)
        config._attn_implementation = cfg.attn_implementation
        torch.manual_seed(seed)  # the projector is the only part initialised here
        model = InternVLForConditionalGeneration(config)
        model.model.vision_tower.load_state_dict(vision.state_dict())
        model.model.language_model.load_state_dict(llm.model.state_dict())
        model.lm_head.load_state_dict(llm.lm_head.state_dict())
    _fit_tokenizer(model, tokenizer)
    check_tiling(model.config, tiling)
    if cfg.gradient_checkpointing:
        # Non-reentrant: frozen towers (no input needing grad) still pass gradients through, and
        # DDP/FSDP2 hooks stay outside the recomputed forward.
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        # transformers also hooks every sub-model's input embeddings to require grad (needed only by
        # reentrant checkpointing). On the ViT's patch embeddings that made a frozen tower recompute
        # and back-propagate through all its layers every step (stage 1: projector only).
        model.disable_input_require_grads()
    model.config.use_cache = False
    return model
