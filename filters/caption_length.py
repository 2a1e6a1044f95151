"""Caption length scores: words and characters.

Too-short captions ("image", "IMG_0042") teach the model nothing; extremely long
ones are usually scraped page text, not a description. Words are the unit the
thresholds are written in.

Scripts written without spaces would otherwise count a whole Chinese or Japanese
sentence as one "word", so each Han, Hiragana or Katakana character counts as one
word (roughly what a reader would call a word in those scripts; Hangul uses spaces
and needs no special case).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# CJK Unified Ideographs (+ extension A, compatibility), Hiragana, Katakana.
_CJK_CHAR = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# One word = one CJK character, or a run of anything else that is not whitespace.
_WORD = re.compile(rf"[{_CJK_CHAR}]|[^\s{_CJK_CHAR}]+")


@dataclass
class LengthScores:
    caption_words: int = 0
    caption_chars: int = 0  # Unicode code points of the whole text, whitespace included


def count_words(text: str) -> int:
    """Whitespace-separated words, with each CJK character counted as a word."""
    return len(_WORD.findall(text))


def measure_length(text: str) -> LengthScores:
    return LengthScores(caption_words=count_words(text), caption_chars=len(text))
