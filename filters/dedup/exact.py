"""Exact-duplicate keys: normalised text and its hash.

Two captions that differ only by Unicode form, case, spacing or surrounding
punctuation ("A cat." / "a  cat") are the same training signal, so the exact-text
signal compares a normalised form instead of the raw bytes.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")


def _is_punct(ch: str) -> bool:
    # Unicode categories P* (punctuation) and S* (symbols: quotes, currency, ...).
    return unicodedata.category(ch)[0] in "PS"


def normalize_text(text: str | None) -> str:
    """NFKC, casefold, collapse runs of whitespace to one space, strip edge punctuation.

    Only punctuation at the two ends of the whole text is removed (a trailing full stop,
    surrounding quotes); inner punctuation carries meaning and is kept.
    """
    if not text:
        return ""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _SPACE.sub(" ", t).strip()
    start, end = 0, len(t)
    while start < end and (_is_punct(t[start]) or t[start].isspace()):
        start += 1
    while end > start and (_is_punct(t[end - 1]) or t[end - 1].isspace()):
        end -= 1
    return t[start:end]


def text_hash(text: str | None) -> str | None:
    """sha256 hex of the normalised text; None when nothing is left ("no signal")."""
    norm = normalize_text(text)
    if not norm:
        return None
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()
