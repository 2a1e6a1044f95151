"""Judge rubrics: versioned prompts that ask for one strict JSON object of integer scores.

The criteria follow the Qwen2.5-VL report's data-quality scoring: interleaved and
caption data are rated on text quality, image-text relevance, information
complementarity and information-density balance; instruction/QA data on correctness,
completeness and relevance. Each criterion is an integer 1-5.

A rubric's ``prompt_version`` is its hand-set version plus a hash of every text that
reaches the model: editing a prompt without bumping the version still changes the key
the cache and the stored scores are filed under, so old answers are never mixed in.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from schemas import IMAGE_PLACEHOLDER, Turn

SCORE_MIN, SCORE_MAX = 1, 5


@dataclass(frozen=True)
class Rubric:
    name: str  # short id; the default judge (scorer) name is "judge_" + name
    version: str  # bump by hand when the meaning of the scores changes
    criteria: dict[str, str]  # JSON key -> what it measures (shown to the model)
    task: str  # what is being judged, one paragraph

    def answer_template(self) -> str:
        return json.dumps({k: SCORE_MIN for k in self.criteria})

    def system_prompt(self) -> str:
        lines = [f"- {k}: {v}" for k, v in self.criteria.items()]
        return (
            "You are a strict data-quality judge for vision-language model training data.\n"
            f"{self.task}\n"
            f"Rate each criterion with an integer from {SCORE_MIN} (worst) to {SCORE_MAX} (best):\n"
            + "\n".join(lines)
            + "\nAnswer with exactly one JSON object and nothing else, with these keys and integer values, "
            f'optionally plus a short "rationale" string. Example shape: {self.answer_template()}'
        )

    @property
    def prompt_version(self) -> str:
        digest = hashlib.sha256((self.system_prompt() + USER_PREFIX + RETRY_PROMPT).encode()).hexdigest()[:8]
        return f"{self.name}-{self.version}-{digest}"


USER_PREFIX = "Judge this training sample. Images appear as [image N]{shown}.\n\n"
RETRY_PROMPT = "That answer was not usable ({reason}). Reply with only the JSON object: {template}"

CAPTION = Rubric(
    name="caption",
    version="v1",
    task=(
        "The sample is an image caption or an interleaved image-text document. Judge how useful it "
        "is for training: the text itself, and how text and images work together."
    ),
    criteria={
        "text_quality": "fluent, correct, well-formed text; no boilerplate, spam, garbled or repeated fragments",
        "image_text_relevance": "the text is about what the images show",
        "information_complementarity": "text and images add to each other instead of merely repeating",
        "information_density_balance": "neither text nor images carry almost all the information; "
                                       "no near-empty text for rich images or long text for trivial images",
    },
)

QA = Rubric(
    name="qa",
    version="v1",
    task=(
        "The sample is an instruction or question-answer conversation about images. Judge the "
        "assistant's answers against the user's requests and the images."
    ),
    criteria={
        "correctness": "answers are factually and visually correct",
        "completeness": "answers address every part of the request",
        "relevance": "answers stay on the request and the images, without filler",
    },
)

RUBRICS = {r.name: r for r in (CAPTION, QA)}


def get_rubric(name: str) -> Rubric:
    if name not in RUBRICS:
        raise ValueError(f"unknown judge rubric {name!r}; choose one of {sorted(RUBRICS)}")
    return RUBRICS[name]


def _number_images(text: str) -> str:
    """``<image>`` placeholders become ``[image 1]``, ``[image 2]``... in order."""
    parts = text.split(IMAGE_PLACEHOLDER)
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"[image {i}]{part}")
    return "".join(out)


def render_sample(text: str, conversation: list[Turn], max_chars: int) -> str:
    """The sample as the judge reads it: the conversation turns, or the bare text.

    Long samples are cut to ``max_chars`` (and say so) so one huge document cannot blow
    the model's context or the request size.
    """
    if conversation:
        body = "\n\n".join(f"{t.role.upper()}: {t.content}" for t in conversation if t.role != "system")
    else:
        body = text
    body = _number_images(body.strip())
    if len(body) > max_chars:
        body = body[:max_chars] + f"\n[... cut: {len(body) - max_chars} more characters]"
    return body


def user_prompt(sample_text: str, images_shown: bool) -> str:
    shown = " and are attached in that order" if images_shown else " (the images are not shown to you)"
    return USER_PREFIX.format(shown=shown) + sample_text
