"""Text quality scores: invisible characters and garbled tokens.

Two failure modes of scraped and OCR'd text that a tokenizer happily encodes and a
model then learns to emit:

``nonprintable_ratio``
    Characters of Unicode category Cc (control), Cf (format: zero-width spaces,
    bidi overrides, soft hyphens), Cs (lone surrogates from bad decoding), Co
    (private use) or Cn (unassigned), over all characters. The ordinary
    whitespace controls ``\\n``, ``\\t`` and ``\\r`` (Windows line ends) are not
    counted. Emoji joiners (U+200D) are Cf and do count; one per caption stays far
    below any sensible threshold.

``garbled_ratio``
    The fraction of whitespace-separated tokens that look garbled. A token is
    garbled when ANY of these holds:

    1. it contains U+FFFD, the replacement character a failed decode leaves behind;
    2. it contains a mojibake pair: UTF-8 bytes that were decoded as cp1252/latin-1
       show up as a UTF-8 lead byte character (one of ``Â Ã Ä Å Ð Ñ â ï``) followed
       by a character that a continuation byte 0x80-0xBF decodes to
       (``€ ‚ ™ © ¤ ¿ ...``) - e.g. ``Ã©`` for é, ``â€™`` for ’, ``Ð¿`` for п;
    3. it is longer than 3 characters and has no letter or digit at all
       (``#$%&@!``, ``||||||``; note this also counts long emoji runs and ``----``
       rules, which are rare in captions);
    4. its letters come from two or more alphabetic scripts (Latin, Cyrillic,
       Greek, Arabic, ...) - homoglyph spam (``pаypal`` with a Cyrillic а) and
       mis-decoded text. Han, Kana and Hangul letters are ignored for this test,
       because CJK writing embeds Latin words without spaces (``使用Python``).
       Technical words such as ``α-helix`` do count; they are rare enough in
       captions for a ratio threshold to absorb.

    An empty text scores 0 on both.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_NONPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_ALLOWED_CONTROLS = frozenset("\n\t\r")

# Characters that the bytes 0x80-0xBF become when decoded as cp1252 or latin-1.
_CONTINUATION = "".join(
    sorted(
        set(bytes(range(0x80, 0xC0)).decode("cp1252", errors="ignore"))
        | set(bytes(range(0x80, 0xC0)).decode("latin-1"))
    )
)
# UTF-8 lead bytes of common scripts, decoded the same wrong way: C2/C3 (Latin-1
# supplement: é ü ñ), C4/C5 (Latin Extended-A: ł ś č), D0/D1 (Cyrillic), E2
# (punctuation: ’ “ – €), EF (BOM, fullwidth forms).
_LEADS = "ÂÃÄÅÐÑâï"
_MOJIBAKE = re.compile(f"[{re.escape(_LEADS)}][{re.escape(_CONTINUATION)}]")

# Scripts told apart by the first word of a letter's Unicode name. Letters of
# other scripts (CJK, or names like "MICRO SIGN") do not take part in the test.
_SCRIPTS = frozenset(
    "LATIN CYRILLIC GREEK ARMENIAN HEBREW ARABIC SYRIAC THAANA DEVANAGARI BENGALI "
    "GURMUKHI GUJARATI ORIYA TAMIL TELUGU KANNADA MALAYALAM SINHALA THAI LAO TIBETAN "
    "MYANMAR GEORGIAN ETHIOPIC KHMER MONGOLIAN".split()
)


@dataclass
class TextQualityScores:
    nonprintable_ratio: float = 0.0
    garbled_ratio: float = 0.0


def nonprintable_ratio(text: str) -> float:
    """Fraction of characters that are invisible/unassigned (see the module docstring)."""
    if not text:
        return 0.0
    bad = sum(
        1
        for c in text
        if c not in _ALLOWED_CONTROLS and unicodedata.category(c) in _NONPRINTABLE_CATEGORIES
    )
    return bad / len(text)


@lru_cache(maxsize=65536)
def _script(char: str) -> str | None:
    """The alphabetic script of a letter, or None when it is not one we tell apart."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0]
    return first if first in _SCRIPTS else None


def is_garbled(token: str) -> bool:
    """Whether one whitespace-free token looks garbled (rules 1-4 of the module docstring)."""
    if "\ufffd" in token:
        return True
    if _MOJIBAKE.search(token):
        return True
    if len(token) > 3 and not any(c.isalnum() for c in token):
        return True
    scripts = {s for s in map(_script, token) if s is not None}
    return len(scripts) > 1


def garbled_ratio(text: str) -> float:
    """Fraction of whitespace-separated tokens for which ``is_garbled`` holds."""
    tokens = text.split()
    if not tokens:
        return 0.0
    return sum(map(is_garbled, tokens)) / len(tokens)


def measure_text_quality(text: str) -> TextQualityScores:
    return TextQualityScores(
        nonprintable_ratio=nonprintable_ratio(text), garbled_ratio=garbled_ratio(text)
    )
