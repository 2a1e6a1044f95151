"""CLIP image-text similarity (open_clip) as a catalog scorer.

Per sample: the cosine similarity of its first image and its text (``clip_score``,
what DataComp filters on), plus both L2-normalised embeddings stored as float16 for
semantic dedup and later analysis. Weights come from an open_clip pretrained tag
(downloaded on the user's machine), a local checkpoint file, or a ``local-dir:``
folder (``open_clip_config.json`` + weights, the Hugging Face layout).

Batch invariance: a CPU (or GPU) matmul may round differently depending on how many
rows it multiplies, so the same image scored in a batch of 3 and of 64 can differ in
the last bit. The model therefore always runs fixed-size batches of ``infer_batch``
rows (the last one padded by repeating a row), so a sample's scores do not depend on
how the runner groups samples, on part boundaries, or on the number of actors.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from filters.scorers.base import ScoreInput
from schemas.config import ConfigError, from_dict

PRECISIONS = ("fp32", "fp16", "bf16", "amp", "amp_bf16")


@dataclass
class ClipConfig:
    model: str = "ViT-B-32"  # open_clip model name, or "local-dir:PATH"
    checkpoint: str | None = None  # pretrained tag (e.g. "laion2b_s34b_b79k") or a local checkpoint file
    model_config: str | None = None  # JSON of a custom open_clip architecture, registered as `model`
    name: str = "clip"  # column prefix: run two CLIP models side by side as clip and clip_l14
    device: str = "auto"  # "auto": cuda when this worker sees a GPU, else cpu
    precision: str = "fp32"
    infer_batch: int = 32  # rows per model call, fixed (padded) so scores never depend on batching
    allow_random_weights: bool = False  # no weights = noise scores: refused unless asked (tests, benchmarks)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}")
        if self.infer_batch < 1:
            raise ValueError("infer_batch must be >= 1")
        if self.model_config and not os.path.isfile(self.model_config):
            raise ValueError(f"model_config {self.model_config!r} is not a file")
        if self.checkpoint and _looks_like_path(self.checkpoint) and not os.path.isfile(self.checkpoint):
            raise ValueError(f"checkpoint {self.checkpoint!r} is not a file")
        if not self.checkpoint and not self.model.startswith(("local-dir:", "hf-hub:")) and not self.allow_random_weights:
            raise ValueError("give checkpoint (a pretrained tag or a checkpoint file); "
                             "random weights score noise (allow_random_weights: true to insist)")


def _looks_like_path(ref: str) -> bool:
    return os.sep in ref or ref.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz"))


def _register_config(model: str, path: str) -> None:
    """Make a custom architecture JSON known to open_clip under ``model`` (its file stem is the key)."""
    import open_clip

    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg = cfg.get("model_cfg", cfg)
    folder = tempfile.mkdtemp(prefix="tessera-openclip-")
    with open(os.path.join(folder, f"{model}.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    open_clip.add_model_config(folder)


def load_clip(config: ClipConfig, device: str = "cpu"):
    """(model in eval mode, image preprocess, tokenizer): the one path every weight source takes."""
    import open_clip

    if config.model_config:
        _register_config(config.model, config.model_config)
    model, _, preprocess = open_clip.create_model_and_transforms(
        config.model, pretrained=config.checkpoint, precision=config.precision, device=device,
    )
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(config.model)


class ClipScorer:
    needs_images = True
    max_images = 1  # the first image of a sample is the one its caption describes
    version = "1"

    def __init__(self, config: ClipConfig):
        self.config = config
        self.name = config.name
        self.rank_column = f"{config.name}_score"
        self.num_gpus = 1.0
        self.model_id = config.model + (f":{config.checkpoint}" if config.checkpoint else ":random")
        self._model = None
        self._lock = threading.Lock()  # loader threads may ask for the model at once

    # -- loading (lazy: the driver builds a scorer only to read its schema) ----------
    def _load(self) -> None:
        with self._lock:
            if self._model is None:
                self._load_locked()

    def _load_locked(self) -> None:
        import torch

        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self._model, self._preprocess, self._tokenizer = load_clip(self.config, device)
        self._dtype = next(self._model.parameters()).dtype

    def preprocess(self, image) -> Any:
        """PIL image -> model input tensor; the runner calls this on its loader threads."""
        self._load()
        return self._preprocess(image)

    def schema(self) -> pa.Schema:
        p = self.name
        return pa.schema([
            pa.field(f"{p}_score", pa.float32()),
            pa.field(f"{p}_image_emb", pa.list_(pa.float16())),
            pa.field(f"{p}_text_emb", pa.list_(pa.float16())),
            pa.field(f"{p}_model", pa.string()),
            pa.field(f"{p}_error", pa.string()),
        ])

    # -- scoring ------------------------------------------------------------------
    def _fixed_batches(self, encode, x):
        """encode(x) in chunks of exactly infer_batch rows; the last chunk is padded."""
        import torch

        b = self.config.infer_batch
        out = []
        for i in range(0, len(x), b):
            chunk = x[i : i + b]
            n = len(chunk)
            if n < b:
                chunk = torch.cat([chunk, chunk[-1:].expand(b - n, *chunk.shape[1:])])
            out.append(encode(chunk.to(self.device, non_blocking=True)).float()[:n])
        return torch.nn.functional.normalize(torch.cat(out), dim=-1).cpu()

    def embed(self, pixels, texts: list[str]):
        """Normalised float32 (image, text) embeddings; ``pixels`` are preprocessed tensors."""
        import torch

        self._load()
        with torch.inference_mode():
            img = self._fixed_batches(self._model.encode_image, torch.stack(pixels).to(self._dtype))
            txt = self._fixed_batches(self._model.encode_text, self._tokenizer(texts))
        return img, txt

    def score(self, batch: list[ScoreInput]) -> list[dict[str, Any]]:
        p = self.name
        rows: list[dict[str, Any] | None] = [None] * len(batch)
        keep, pixels, texts = [], [], []
        for i, inp in enumerate(batch):
            error = "no_image" if not inp.images else "no_text" if not (inp.text or "").strip() else None
            if error:
                rows[i] = {f"{p}_score": None, f"{p}_image_emb": None, f"{p}_text_emb": None,
                           f"{p}_model": self.model_id, f"{p}_error": error}
                continue
            image = inp.images[0]
            pixels.append(image if hasattr(image, "shape") else self.preprocess(image))
            texts.append(inp.text)
            keep.append(i)
        if keep:
            img, txt = self.embed(pixels, texts)
            sims = (img * txt).sum(-1).numpy().astype(np.float32)
            img16, txt16 = img.numpy().astype(np.float16), txt.numpy().astype(np.float16)
            for k, i in enumerate(keep):
                rows[i] = {f"{p}_score": sims[k], f"{p}_image_emb": img16[k], f"{p}_text_emb": txt16[k],
                           f"{p}_model": self.model_id, f"{p}_error": None}
        return rows  # type: ignore[return-value]

    def describe(self) -> dict:
        return asdict(self.config)


def build_clip_scorer(options: dict[str, Any]) -> ClipScorer:
    options = dict(options)
    # Relative paths resolve here, in the driver's directory: Ray workers run elsewhere.
    if isinstance(options.get("checkpoint"), str) and _looks_like_path(options["checkpoint"]):
        options["checkpoint"] = os.path.abspath(options["checkpoint"])
    if isinstance(options.get("model_config"), str):
        options["model_config"] = os.path.abspath(options["model_config"])
    model = options.get("model")
    if isinstance(model, str) and model.startswith("local-dir:"):
        options["model"] = "local-dir:" + os.path.abspath(model.removeprefix("local-dir:"))
    config = from_dict(ClipConfig, options, "clip")
    if config.name != "clip" and not config.name.startswith("clip"):
        raise ConfigError("clip.name: keep a name starting with 'clip' (e.g. clip_l14) so columns stay recognisable")
    return ClipScorer(config)
