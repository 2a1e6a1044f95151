"""What a judge backend is: something that turns chat messages (and images) into an answer.

Two implementations: ``HTTPBackend`` (any OpenAI-compatible ``/v1/chat/completions``:
vLLM, SGLang, TGI, llama.cpp server...) and ``LocalBackend`` (a transformers model
directory, text LLM or VLM). The judge owns retries for *unusable answers*; a backend
owns retries for *transport* trouble and raises ``BackendError`` once it gives up.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image


class BackendError(RuntimeError):
    """The model could not be asked (timeout, 5xx, connection refused) after the backend's retries.

    Not a judgment: nothing is cached, the sample's error column says why, a re-run asks again.
    """


class FatalBackendError(BackendError):
    """A request the server will never accept (bad model name, 401, 404): stop the run, fix the config."""


@dataclass
class Message:
    role: str  # "system" | "user" | "assistant"
    text: str
    images: list[Image.Image] = field(default_factory=list)  # attached after the text, in order


@dataclass
class JudgeRequest:
    messages: list[Message]
    max_new_tokens: int = 256
    temperature: float = 0.0  # greedy first; the judge raises it on a retry so the answer can change


class Backend(Protocol):
    model_id: str  # part of the cache key: a different model never reuses another's answers
    takes_images: bool  # whether images in messages reach the model
    concurrency: int  # how many requests may be in flight at once

    async def complete(self, request: JudgeRequest) -> str:
        """The model's answer text; raise ``BackendError`` when it cannot be had."""
        ...

    async def aclose(self) -> None:
        ...


def image_data_url(image: Image.Image, max_side: int = 1024, quality: int = 90) -> str:
    """A JPEG data URL, downscaled so one request stays a few hundred KB at most.

    Judges look at content, not pixels; servers (and the VLM's own resizer) would
    shrink larger images anyway.
    """
    img = image.convert("RGB")
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
