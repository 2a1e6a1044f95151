"""Training throughput and model FLOPs utilisation of a ~1B InternVL configuration on one GPU.

    python benchmarks/bench_train_gpu.py [--seq 16384] [--steps 20] [--attn flash_attention_2]

Model: the ``internvl3-1b`` preset (InternViT-300M shape + a Qwen2.5-0.5B-shaped LLM with a
151,674-token vocabulary), random weights. Data: synthetic packed rows of ``--seq`` tokens,
sub-samples of 1-6 tiles (448 px, 256 tokens each) plus 50-400 text tokens, random pixels:
the same code path as training (``model.packed``), bf16 autocast, AdamW, full model trained.

MFU = achieved model FLOPs / peak dense bf16 FLOPs (``--peak-tflops``, 989 for H100 SXM).
Model FLOPs per step: 6 x parameters x tokens for the LLM (tokens of the packed row) and the
ViT (1025 patch tokens per tile), plus causal attention 6 x layers x hidden x sum(len^2) per
sub-sample (12 x ... for the bidirectional ViT). Gradient checkpointing recompute is not counted.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

VOCAB = 151_674


def synthetic_batch(seq: int, tokens_per_tile: int, image_token_id: int, tile: int, rng: random.Random):
    from model.packed import SubSample, collate_packed

    subs, used = [], 0
    while True:
        tiles = rng.randint(1, 6)
        text = rng.randint(50, 400)
        n = tiles * tokens_per_tile + 2 + text
        if used + n > seq:
            break
        ids = [rng.randrange(1000, VOCAB - 10) for _ in range(text // 2)]
        ids += [image_token_id - 1] + [image_token_id] * (tiles * tokens_per_tile) + [image_token_id + 1]
        ids += [rng.randrange(1000, VOCAB - 10) for _ in range(text - text // 2)]
        mask = [False] * (len(ids) - text // 2) + [True] * (text // 2)
        subs.append(SubSample(ids, mask, torch.randn(tiles, 3, tile, tile), 1))
        used += n
    return collate_packed(subs, "square")


def model_flops(model, batch, tiles: int) -> float:
    cfg = model.config
    vit = sum(p.numel() for p in model.model.vision_tower.parameters())
    llm = sum(p.numel() for n, p in model.named_parameters() if "vision_tower" not in n)
    patches = (cfg.vision_config.image_size[0] // cfg.vision_config.patch_size[0]) ** 2 + 1
    t, v = cfg.text_config, cfg.vision_config
    dense = 6 * llm * batch.n_tokens + 6 * vit * tiles * patches
    attn = 6 * t.num_hidden_layers * t.hidden_size * sum(n * n for n in batch.seq_lens)  # causal: half of 12
    attn += 12 * v.num_hidden_layers * v.hidden_size * tiles * patches**2
    return dense + attn


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seq", type=int, default=16384)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--attn", default="flash_attention_2", choices=["flash_attention_2", "sdpa"])
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    args = p.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a GPU"

    import tempfile

    from model.build import build_model
    from model.config import ModelConfig
    from model.packed import weighted_loss_sum
    from model.tokenizer import build_tokenizer, load_tokenizer
    from pipeline.tiling import TilingConfig

    if args.attn == "flash_attention_2":
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            print("flash-attn is not installed: using sdpa with a block-diagonal mask")
            args.attn = "sdpa"
    tiling = TilingConfig()
    with tempfile.TemporaryDirectory() as tmp:
        tok = load_tokenizer(build_tokenizer(tmp))
        model = build_model(ModelConfig(preset="internvl3-1b", attn_implementation=args.attn,
                                        gradient_checkpointing=args.grad_ckpt), tok, tiling)
    model.resize_token_embeddings(VOCAB, mean_resizing=False)  # a real LLM's vocabulary, for realistic cost
    image_token_id = 5000
    model.config.image_token_id = image_token_id
    model = model.cuda().train()
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    rng = random.Random(0)
    batches = [synthetic_batch(args.seq, tiling.tokens_per_tile, image_token_id, tiling.tile_size, rng).to("cuda")
               for _ in range(4)]
    times, flops, tokens = [], 0.0, 0
    for step in range(args.warmup + args.steps):
        batch = batches[step % len(batches)]
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = weighted_loss_sum(model, batch, args.attn, torch.bfloat16) / batch.weights.sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            flops += model_flops(model, batch, batch.pixel_values.shape[0])
            tokens += batch.n_tokens
    seconds = sum(times)
    print(f"command: python benchmarks/bench_train_gpu.py --seq {args.seq} --steps {args.steps} --attn {args.attn}"
          + (" --grad-ckpt" if args.grad_ckpt else ""))
    print(f"device: {torch.cuda.get_device_name()}  parameters: {n_params / 1e9:.3f} B  attention: {args.attn}")
    print(f"tokens/s: {tokens / seconds:,.0f}  step: {seconds / len(times):.3f} s  "
          f"MFU: {flops / seconds / (args.peak_tflops * 1e12):.1%}  peak memory: "
          f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
