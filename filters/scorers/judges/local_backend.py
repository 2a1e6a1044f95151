"""A judge model loaded from a local transformers directory: a text LLM or a VLM.

The directory is whatever ``save_pretrained`` wrote (no hub access). A config with a
``vision_config`` is loaded as an image-text-to-text model with its processor, and
images are passed to it; otherwise it is a causal LM and images stay out of the prompt
(the rubric tells the model so). Generation runs in a worker thread, one call at a
time: one process holds one copy of the weights, and torch already uses every core.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from filters.scorers.judges.backend import BackendError, JudgeRequest

# ChatML, used when a tokenizer ships without a chat template (e.g. a bare base model).
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class LocalConfig:
    path: str  # a local transformers model directory
    device: str = "cpu"
    dtype: str = "auto"  # "auto", "float32", "bfloat16", "float16"
    max_input_tokens: int = 8192  # a longer prompt is refused with an error, not truncated mid-token
    # Optional constrained decoding: called once per generate() for fresh LogitsProcessors
    # (e.g. a JSON grammar); None leaves generation free.
    logits_processors: Callable[[], list] | None = None
    cache_model_id: str | None = None


def model_fingerprint(path: str) -> str:
    """Identify a model directory for the cache key: its config plus weight file names and sizes.

    Hashing multi-GB weights on every start would cost minutes; a retrained model saved
    in place changes at least its sizes or config in practice, and ``cache_model_id``
    exists for the case where it does not.
    """
    h = hashlib.sha256()
    with open(os.path.join(path, "config.json"), "rb") as f:
        h.update(f.read())
    for name in sorted(os.listdir(path)):
        if name.endswith((".safetensors", ".bin", ".pt")):
            h.update(f"{name}:{os.path.getsize(os.path.join(path, name))}".encode())
    return f"local:{os.path.basename(os.path.normpath(path))}:{h.hexdigest()[:12]}"


class LocalBackend:
    concurrency = 1

    def __init__(self, config: LocalConfig):
        # Cheap: reads config.json only. The weights load on the first call, in the worker
        # that uses them (the scorer registry builds scorers on the driver just to inspect them).
        path = os.path.join(config.path, "config.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{config.path!r} is not a transformers model directory (no config.json)")
        with open(path, encoding="utf-8") as f:
            self.takes_images = "vision_config" in json.load(f)
        self.config = config
        self.model_id = config.cache_model_id or model_fingerprint(config.path)
        self.model = self.processor = self.tokenizer = None
        self.calls = 0
        self._lock = threading.Lock()

    def _load(self) -> None:
        import torch
        from transformers import AutoTokenizer

        config = self.config
        dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
        if self.takes_images:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            self.processor = AutoProcessor.from_pretrained(config.path)
            self.tokenizer = self.processor.tokenizer
            model = AutoModelForImageTextToText.from_pretrained(config.path, dtype=dtype)
        else:
            from transformers import AutoModelForCausalLM

            self.tokenizer = AutoTokenizer.from_pretrained(config.path)
            model = AutoModelForCausalLM.from_pretrained(config.path, dtype=dtype)
        if not getattr(self.tokenizer, "chat_template", None):
            self.tokenizer.chat_template = CHATML_TEMPLATE
        self.model = model.to(config.device).eval()

    def _chat(self, request: JudgeRequest) -> tuple[list[dict], list]:
        messages, images = [], []
        for m in request.messages:
            if self.takes_images and m.images:
                content = [{"type": "text", "text": m.text}] + [{"type": "image"} for _ in m.images]
                images.extend(m.images)
            elif self.takes_images:
                content = [{"type": "text", "text": m.text}]
            else:
                content = m.text
            messages.append({"role": m.role, "content": content})
        return messages, images

    def _inputs(self, request: JudgeRequest) -> dict:
        messages, images = self._chat(request)
        if self.processor is not None:
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return dict(self.processor(text=[text], images=images or None, return_tensors="pt"))
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        ids = enc["input_ids"]
        if ids.shape[1] > self.config.max_input_tokens:
            raise BackendError(f"prompt of {ids.shape[1]} tokens exceeds max_input_tokens={self.config.max_input_tokens}")
        return dict(enc)

    def generate(self, request: JudgeRequest) -> str:
        import torch
        from transformers import LogitsProcessorList

        with self._lock, torch.inference_mode():
            if self.model is None:
                self._load()
            inputs = {k: v.to(self.config.device) if hasattr(v, "to") else v for k, v in self._inputs(request).items()}
            sampling = request.temperature > 0
            kwargs = dict(max_new_tokens=request.max_new_tokens, do_sample=sampling,
                          pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                          eos_token_id=self.tokenizer.eos_token_id)
            if sampling:
                kwargs["temperature"] = request.temperature
            if self.config.logits_processors is not None:
                kwargs["logits_processor"] = LogitsProcessorList(self.config.logits_processors())
            self.calls += 1
            out = self.model.generate(**inputs, **kwargs)
            new = out[0, inputs["input_ids"].shape[1]:]
            return self.tokenizer.decode(new, skip_special_tokens=True)

    async def complete(self, request: JudgeRequest) -> str:
        try:
            return await asyncio.to_thread(self.generate, request)
        except BackendError:
            raise
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory on one huge sample
            raise BackendError(f"generation failed: {exc}"[:300]) from exc

    async def aclose(self) -> None:
        pass

    def describe(self) -> str:
        return json.dumps({"path": self.config.path, "model_id": self.model_id, "takes_images": self.takes_images})
