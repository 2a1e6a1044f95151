"""Strict parsing of a judge's answer: one JSON object, exactly the rubric's keys, integers 1-5.

Anything else is unparseable and raises ``AnswerError`` with a short reason, which the
judge feeds back to the model on retry. No guessing: a number pulled out of prose, a
missing criterion or a 7 on a 1-5 scale would be a made-up score. The one leniency is a
Markdown code fence around the object, which chat models add out of habit.
"""
from __future__ import annotations

import json
import math
import re

from filters.scorers.judges.rubrics import SCORE_MAX, SCORE_MIN, Rubric

OPTIONAL_KEYS = {"rationale"}
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL | re.IGNORECASE)


class AnswerError(ValueError):
    """The model's answer is not a valid judgment; ``reason`` is short and machine-groupable."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def parse_answer(answer: str, rubric: Rubric) -> dict[str, int]:
    """The criterion scores of ``answer``; raise ``AnswerError`` when it is not exactly valid."""
    text = (answer or "").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise AnswerError("empty_answer")
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise AnswerError("not_json", str(exc)[:80]) from None
    if not isinstance(obj, dict):
        raise AnswerError("not_an_object", type(obj).__name__)
    expected = set(rubric.criteria)
    missing = sorted(expected - obj.keys())
    extra = sorted(obj.keys() - expected - OPTIONAL_KEYS)
    if missing:
        raise AnswerError("missing_keys", ",".join(missing))
    if extra:
        raise AnswerError("unexpected_keys", ",".join(extra)[:80])
    if "rationale" in obj and not isinstance(obj["rationale"], str):
        raise AnswerError("bad_rationale")
    scores = {}
    for key in rubric.criteria:
        value = obj[key]
        # bool is an int in Python and 4.0 is what some servers emit for 4; 4.5 is not a score.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AnswerError("not_an_integer", f"{key}={value!r}"[:80])
        if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
            raise AnswerError("not_an_integer", f"{key}={value!r}")
        if not SCORE_MIN <= value <= SCORE_MAX:
            raise AnswerError("out_of_range", f"{key}={value}")
        scores[key] = int(value)
    return scores
