"""The fonts Debian packages install, and which of them can draw a given text.

Synthetic ground truth is only true if every character is really drawn: a font
without a glyph renders an empty box (tofu) while the label still holds the
character. So a text is rendered only with a face whose cmap covers all of it, and
CJK faces are matched to their language (a Japanese text in a Chinese face draws
the wrong regional glyph shapes). Fonts come from fonts-dejavu-core, fonts-liberation
and fonts-noto-cjk; a machine without them simply offers fewer faces.
"""
from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass

FONT_GLOBS = (
    "/usr/share/fonts/truetype/dejavu/*.ttf",
    "/usr/share/fonts/truetype/liberation/*.ttf",
    "/usr/share/fonts/truetype/liberation2/*.ttf",
    "/usr/share/fonts/opentype/noto/NotoS*CJK-*.ttc",
)
# Noto CJK faces in a .ttc, by the language they are drawn for.
CJK_REGION = {"zh": " SC", "ja": " JP", "ko": " KR"}
SKIP = ("Math", "ExtraLight", "Narrow", "Mono CJK")


@dataclass(frozen=True)
class FontFace:
    path: str
    index: int  # face index inside a .ttc collection
    family: str  # e.g. "DejaVu Serif", "Noto Sans CJK JP"
    style: str  # "Regular", "Bold", ...

    @property
    def cjk(self) -> bool:
        return "CJK" in self.family


@functools.lru_cache(maxsize=1)
def available_faces() -> tuple[FontFace, ...]:
    from fontTools.ttLib import TTCollection, TTFont

    faces = []
    for pattern in FONT_GLOBS:
        for path in sorted(glob.glob(pattern)):
            fonts = TTCollection(path, lazy=True).fonts if path.endswith(".ttc") else [TTFont(path, lazy=True)]
            for index, font in enumerate(fonts):
                name = font["name"]
                family = str(name.getDebugName(1) or os.path.basename(path))
                style = str(name.getDebugName(2) or "Regular")
                if not any(s in family for s in SKIP):
                    faces.append(FontFace(path, index, family, style))
    return tuple(faces)


@functools.lru_cache(maxsize=64)
def _cmap(path: str, index: int) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(path, fontNumber=index, lazy=True).getBestCmap())


def covers(face: FontFace, text: str) -> bool:
    cmap = _cmap(face.path, face.index)
    return all(ord(c) in cmap for c in text if not c.isspace())


def faces_for(language: str, faces: tuple[FontFace, ...] | None = None) -> list[FontFace]:
    """Faces suited to ``language``: regional CJK faces for zh/ja/ko, non-CJK faces otherwise."""
    faces = available_faces() if faces is None else faces
    if language in CJK_REGION:
        return [f for f in faces if f.cjk and f.family.endswith(CJK_REGION[language])]
    return [f for f in faces if not f.cjk]


def pick_face(language: str, text: str, rng, faces: tuple[FontFace, ...] | None = None) -> FontFace | None:
    """A random face of ``language`` that draws every character of ``text``; None when none does."""
    candidates = faces_for(language, faces)
    rng.shuffle(candidates)
    return next((f for f in candidates if covers(f, text)), None)
