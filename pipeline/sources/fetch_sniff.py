"""Content sniffing: what image format some bytes are, from their first bytes only.

Servers lie in ``Content-Type`` (an HTML error page served as ``image/jpeg`` is the
classic), so a fetched body is judged by its signature. Only formats the decode step
can open are accepted; anything else is rejected before it is stored or decoded.
"""
from __future__ import annotations

_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def sniff_image(head: bytes) -> str | None:
    """The image format ``head`` (a body's first >= 16 bytes) starts with, or None."""
    for magic, fmt in _SIGNATURES:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    return None
