"""Save a model the way transformers loads it: ``save_pretrained`` of model and processor.

The directory loads with plain ``InternVLForConditionalGeneration.from_pretrained``
(and ``AutoProcessor.from_pretrained`` when the tokenizer has InternVL's image and
video token fields; otherwise the tokenizer and the image processor are saved apart), with no Tessera code. Writes go to a temporary sibling folder that is
renamed into place, so a crash mid-save never leaves a half checkpoint behind.
"""
from __future__ import annotations

import os
import shutil

from pipeline.tiling import TilingConfig


def _processor(tokenizer, tiling: TilingConfig):
    """An InternVLProcessor with the dataset's tiling, or None when the tokenizer lacks its fields."""
    from transformers import InternVLProcessor, InternVLVideoProcessor

    try:
        return InternVLProcessor(image_processor=image_processor(tiling), tokenizer=tokenizer,
                                 video_processor=InternVLVideoProcessor(), image_seq_length=tiling.tokens_per_tile)
    except (AttributeError, TypeError, ValueError, ImportError):
        return None  # e.g. a tokenizer without InternVL's video token: saved without a processor


def image_processor(tiling: TilingConfig):
    """InternVL's image processor with the dataset's tile geometry (preprocessor_config.json)."""
    from transformers import GotOcr2ImageProcessor

    return GotOcr2ImageProcessor(
        size={"height": tiling.tile_size, "width": tiling.tile_size}, crop_to_patches=True,
        min_patches=tiling.min_tiles, max_patches=tiling.max_tiles,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )


def write_hf(model, tokenizer, tiling: TilingConfig, out_dir: str, state_dict: dict | None = None) -> None:
    model.save_pretrained(out_dir, state_dict=state_dict)
    processor = _processor(tokenizer, tiling)
    if processor is not None:
        processor.save_pretrained(out_dir)
    else:
        tokenizer.save_pretrained(out_dir)
        image_processor(tiling).save_pretrained(out_dir)


def save_hf(model, tokenizer, tiling: TilingConfig, out_dir: str, state_dict: dict | None = None) -> str:
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_hf(model, tokenizer, tiling, tmp, state_dict)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
