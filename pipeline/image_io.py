"""Safe image decoding: untrusted bytes in, an upright RGB image (or a reason) out.

Web-scale image data is full of empty files, HTML error pages saved as .jpg,
half-downloaded files and the occasional decompression bomb. ``decode_image``
turns each of these into an ``ImageDecodeError`` with a short ``reason`` code
(the ingest step records it as a reject), and everything else into the one
representation the rest of the pipeline assumes: RGB, EXIF orientation applied.

Order matters for safety:
1. ``Image.open`` only parses the header, so the declared size is checked against
   ``max_pixels`` before any pixel buffer is allocated;
2. ``load()`` forces the full decode here, so a truncated file fails now instead of
   at training time (``ImageFile.LOAD_TRUNCATED_IMAGES`` is never touched: it is
   process-global and would silently pad broken images with grey);
3. orientation, then conversion to RGB.

``draft_min_side`` (JPEG only) decodes at 1/2, 1/4 or 1/8 scale in the DCT domain
(``Image.draft``), keeping the shorter side >= ``draft_min_side``: for ingest, whose
pixels only feed a perceptual hash, this is 2-3x less decode and resize work. It is
no shortcut on validation: libjpeg still entropy-decodes the whole stream, so a
truncated or corrupt file fails the same way; ``width``/``height`` stay those of the
full-resolution upright image (tile counts and size rules do not change).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 64_000_000
# EXIF orientations that are a quarter turn (with or without a flip): width and height swap.
_QUARTER_TURNS = (5, 6, 7, 8)

# Signatures of formats we expect. Bytes that start like an image but that PIL
# cannot identify are a damaged image ("corrupt"), not some other file type.
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")

REASONS = ("empty", "not_an_image", "truncated", "decompression_bomb", "too_small", "corrupt")


class ImageDecodeError(Exception):
    """Why some bytes are not a usable image: ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied; reduced by ``scale`` when drafted
    width: int  # after orientation, at full resolution (also when drafted)
    height: int
    format: str  # lower-case container format: "jpeg", "png", "webp", "gif", ...
    scale: int = 1  # 1, 2, 4 or 8: the image is 1/scale of the full resolution (JPEG draft)


def _looks_like_image(data: bytes) -> bool:
    return data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _classify(exc: Exception, data: bytes) -> ImageDecodeError:
    """Map a PIL exception to a reason code. PIL has no error taxonomy, so this reads messages."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageDecodeError("decompression_bomb", str(exc))
    message = str(exc)
    if "truncat" in message.lower():  # "image file is truncated", "Truncated File Read"
        return ImageDecodeError("truncated", message)
    if isinstance(exc, UnidentifiedImageError) and not _looks_like_image(data):
        return ImageDecodeError("not_an_image", "no image format recognised")
    return ImageDecodeError("corrupt", f"{type(exc).__name__}: {message}")


def _high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit integer and float grayscale to 8-bit "L" by scaling, not clipping.

    PIL's own ``convert("L")`` clips I;16 values above 255, which turns almost every
    16-bit PNG white. Integer data is taken as 16-bit (PNG/TIFF); float as [0, 1]
    when it fits there, else clipped to [0, 255].
    """
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        if array.size and array.max() <= 1.0:
            array = array * 255.0
    else:
        array = array / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparent pixels become white (captions describe them as background)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _high_bit_depth_to_8bit(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        # convert("RGBA") also turns a palette/grey/RGB "transparency" key into alpha.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # Covers P, L, 1, CMYK (PIL already undoes Adobe's inverted CMYK JPEGs), YCbCr.
    return image.convert("RGB")


def _draft(image: Image.Image, min_side: int) -> int:
    """Ask a JPEG for the smallest DCT scale whose shorter side stays >= ``min_side``; the scale."""
    width, height = image.size
    if image.format != "JPEG" or min(width, height) < 2 * min_side:
        return 1
    ratio = min_side / min(width, height)
    drafted = image.draft(image.mode, (max(1, int(width * ratio)), max(1, int(height * ratio))))
    return 1 if drafted is None else round(width / image.size[0])


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = 1, draft_min_side: int | None = None
) -> DecodedImage:
    """Decode ``data`` fully; raise ``ImageDecodeError`` with a reason code when unusable.

    ``max_pixels`` bounds the declared width*height (checked before decoding).
    PIL's own, process-wide limit (``Image.MAX_IMAGE_PIXELS``) still applies on top:
    its warning is raised as an error here too. ``min_side`` is checked on the
    upright image. ``draft_min_side``: see the module docstring (None: full resolution).
    """
    if not data:
        raise ImageDecodeError("empty", "0 bytes")
    with warnings.catch_warnings():
        # Local only: other code keeps its own warning filters. (catch_warnings swaps
        # process-wide state while active, so decode in processes, not threads, if
        # other threads rely on warnings at the same time.)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))  # header only: no pixel buffer yet
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    "decompression_bomb", f"{width}x{height} exceeds max_pixels={max_pixels}"
                )
            fmt = (image.format or "unknown").lower()
            scale = _draft(image, draft_min_side) if draft_min_side else 1
            image.load()
        except ImageDecodeError:
            raise
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error...
            raise _classify(exc, data) from exc

    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        image = ImageOps.exif_transpose(image)
        if orientation in _QUARTER_TURNS:
            width, height = height, width
    except Exception:
        # A malformed EXIF block does not make the pixels unusable: keep them as stored.
        pass
    try:
        rgb = to_rgb(image)
    except Exception as exc:  # an exotic mode PIL cannot convert (e.g. LAB)
        raise ImageDecodeError("corrupt", f"cannot convert mode {image.mode} to RGB: {exc}") from exc

    if scale == 1:
        width, height = rgb.size
    if min(width, height) < min_side:
        raise ImageDecodeError("too_small", f"{width}x{height} has a side below min_side={min_side}")
    return DecodedImage(image=rgb, width=width, height=height, format=fmt, scale=scale)
