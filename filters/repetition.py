"""Repetition scores: repeated word n-grams and repeated lines.

Degenerate, looping text ("a cat on a mat a cat on a mat a cat on ...") in the
training data is what taught InternVL 2.5 to generate endless loops; InternVL 2.5's
data pipeline and Gopher's quality rules both remove such text by counting
repeated n-grams and lines. Here the counts are recorded as ratios, and flagging
happens in ``filters.rules``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RepetitionScores:
    repeated_ngram_ratio: float = 0.0
    repeated_line_ratio: float = 0.0


def repeated_ngram_ratio(text: str, n: int = 3) -> float:
    """Fraction of the word n-grams that are a repeat of an earlier n-gram.

    Words are whitespace-separated and lower-cased ("The cat" repeats "the cat").
    A text with fewer than ``n`` words has no n-grams and scores 0. Text that is one
    phrase looped k times scores close to 1 - 1/k.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    words = text.lower().split()
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for i in range(total):
        gram = tuple(words[i : i + n])
        if gram in seen:
            repeats += 1
        else:
            seen.add(gram)
    return repeats / total


def repeated_line_ratio(text: str) -> float:
    """Fraction of the non-empty lines that equal an earlier line.

    Lines are compared after stripping surrounding whitespace (indentation and
    trailing spaces do not make a copy new); blank lines are not counted at all.
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return 0.0
    return (len(lines) - len(set(lines))) / len(lines)


def measure_repetition(text: str, n: int = 3) -> RepetitionScores:
    return RepetitionScores(
        repeated_ngram_ratio=repeated_ngram_ratio(text, n),
        repeated_line_ratio=repeated_line_ratio(text),
    )
