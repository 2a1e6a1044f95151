"""The model section of a training file, and the named configs for tests, the demo and benchmarks.

A model starts in one of three ways (exactly one is given):

- ``pretrained``: a full VLM checkpoint directory in transformers format (an InternVL
  ``-hf`` checkpoint, or a Tessera stage output);
- ``vision`` + ``llm``: an InternVL vision tower and a causal LM from two directories,
  with a freshly initialised projector (the classic stage-1 start);
- ``preset``: a named config below, randomly initialised.
"""
from __future__ import annotations

from dataclasses import dataclass

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


@dataclass
class ModelConfig:
    pretrained: str | None = None
    vision: str | None = None
    llm: str | None = None
    preset: str | None = None
    attn_implementation: str = "sdpa"  # flash_attention_2 on GPU: varlen kernels, no L x L mask
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        ways = [self.pretrained is not None, self.vision is not None or self.llm is not None, self.preset is not None]
        if sum(ways) != 1:
            raise ValueError("give exactly one of: pretrained, vision + llm, preset")
        if (self.vision is None) != (self.llm is None):
            raise ValueError("vision and llm go together: a vision tower directory and an LLM directory")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {sorted(PRESETS)}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}")


# Vision and text config kwargs of each preset. The vision tile geometry (image_size,
# patch_size) must equal the dataset's tiling, which ``build.check_tiling`` enforces.
PRESETS: dict[str, dict] = {
    # ~0.2 M parameters: 56 px tiles, 7 px patches -> 64 patches -> 16 tokens per tile.
    "tiny": {
        "vision": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                       image_size=56, patch_size=7),
        "text": dict(model_type="qwen2", hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=1, intermediate_size=128, max_position_embeddings=4096),
    },
    # InternVL3-1B's shape (InternViT-300M + a Qwen2.5-0.5B-sized LLM): ~0.9 B parameters, GPU benchmark.
    "internvl3-1b": {
        "vision": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                       image_size=448, patch_size=14, layer_norm_eps=1e-6),
        "text": dict(model_type="qwen2", hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                     num_key_value_heads=2, intermediate_size=4864, max_position_embeddings=32768,
                     rope_theta=1_000_000.0),
    },
}
