"""Rule filters: measure every sample, flag what fails a threshold, drop nothing.

``measure`` fills the ``RuleScores`` of a sample from its text and image sizes;
``flags`` names the thresholds of a ``RuleConfig`` those scores fail. Both are
stored in the catalog (``Sample.scores``, ``Sample.rule_flags``): selection
happens later, with SQL, so a threshold can be changed without re-running the
pipeline - re-run ``flags`` on the stored scores, or query the scores directly.

Threshold semantics: a score exactly at a ``max_*`` threshold passes, and a score
exactly at a ``min_*`` threshold passes; only strictly worse values are flagged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from filters.caption_length import measure_length
from filters.image_geometry import measure_geometry
from filters.repetition import measure_repetition
from filters.text_quality import measure_text_quality
from schemas.sample import RuleScores

FLAG_NAMES = (
    "caption_too_short",
    "caption_too_long",
    "image_too_small",
    "extreme_aspect_ratio",
    "nonprintable_text",
    "garbled_text",
    "repetitive_ngrams",
    "repetitive_lines",
)


@dataclass
class RuleConfig:
    """Thresholds. They produce flags only; nothing is dropped."""

    min_caption_words: int = 3
    max_caption_words: int = 2000
    min_side: int = 32  # pixels, smallest side of any image of the sample
    max_aspect_ratio: float = 10.0  # max(w/h, h/w) of any image
    max_nonprintable_ratio: float = 0.02
    max_garbled_ratio: float = 0.2
    repetition_ngram: int = 3  # n of the word n-grams behind repeated_ngram_ratio
    max_repeated_ngram_ratio: float = 0.3
    max_repeated_line_ratio: float = 0.3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"RuleConfig.{f.name} must be an int, got {value!r}")
            if f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"RuleConfig.{f.name} must be a number, got {value!r}")
                setattr(self, f.name, float(value))
            if getattr(self, f.name) < 0:
                raise ValueError(f"RuleConfig.{f.name} must be >= 0, got {value!r}")
        if self.repetition_ngram < 1:
            raise ValueError(f"RuleConfig.repetition_ngram must be >= 1, got {self.repetition_ngram}")
        if self.min_caption_words > self.max_caption_words:
            raise ValueError(
                f"RuleConfig.min_caption_words ({self.min_caption_words}) must be <= "
                f"max_caption_words ({self.max_caption_words})"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RuleConfig":
        """Build from a job spec's ``rules:`` mapping; missing keys keep their defaults.

        Unknown keys are an error (a typo such as ``min_caption_word`` would
        otherwise silently leave the default in force), and so are wrong types.
        """
        if not isinstance(d, dict):
            raise ValueError(f"rule config must be a mapping, got {type(d).__name__}")
        valid = [f.name for f in fields(cls)]
        for key in d:
            if key not in valid:
                raise ValueError(
                    f"unknown rule config key {key!r}; valid keys: {', '.join(valid)}"
                )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(text: str, image_sizes: list[tuple[int, int]], config: RuleConfig) -> RuleScores:
    """All rule scores of one sample: its text and the ``(width, height)`` of each image."""
    length = measure_length(text)
    quality = measure_text_quality(text)
    repetition = measure_repetition(text, config.repetition_ngram)
    geometry = measure_geometry(image_sizes)
    return RuleScores(
        caption_words=length.caption_words,
        caption_chars=length.caption_chars,
        nonprintable_ratio=quality.nonprintable_ratio,
        garbled_ratio=quality.garbled_ratio,
        repeated_ngram_ratio=repetition.repeated_ngram_ratio,
        repeated_line_ratio=repetition.repeated_line_ratio,
        min_side=geometry.min_side,
        max_side=geometry.max_side,
        aspect_ratio=geometry.aspect_ratio,
    )


def flags(scores: RuleScores, config: RuleConfig) -> list[str]:
    """Names of the thresholds ``scores`` fail, in ``FLAG_NAMES`` order; [] passes all."""
    has_images = scores.max_side > 0  # image sides are >= 1, so 0 means "no images"
    failed = {
        "caption_too_short": scores.caption_words < config.min_caption_words,
        "caption_too_long": scores.caption_words > config.max_caption_words,
        "image_too_small": has_images and scores.min_side < config.min_side,
        "extreme_aspect_ratio": has_images and scores.aspect_ratio > config.max_aspect_ratio,
        "nonprintable_text": scores.nonprintable_ratio > config.max_nonprintable_ratio,
        "garbled_text": scores.garbled_ratio > config.max_garbled_ratio,
        "repetitive_ngrams": scores.repeated_ngram_ratio > config.max_repeated_ngram_ratio,
        "repetitive_lines": scores.repeated_line_ratio > config.max_repeated_line_ratio,
    }
    return [name for name in FLAG_NAMES if failed[name]]
