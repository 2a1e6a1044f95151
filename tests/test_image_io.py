"""pipeline.image_io: every failure gets its reason code, every success is upright RGB."""
from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from pipeline.image_io import DEFAULT_MAX_PIXELS, DecodedImage, ImageDecodeError, decode_image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert(mode)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose IHDR claims width x height RGB pixels (the IDAT is tiny)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def reason_of(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, **kwargs)
    assert info.value.detail  # every error explains itself
    return info.value.reason


# --- failures ---------------------------------------------------------------------------
def test_empty():
    assert reason_of(b"") == "empty"


def test_random_bytes_and_text_are_not_images():
    rng = np.random.default_rng(1)
    assert reason_of(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()) == "not_an_image"
    assert reason_of(b"<html><body>404 Not Found</body></html>") == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF"])
def test_truncated(fmt):
    data = encode(noise(64, 64), fmt)
    assert reason_of(data[: len(data) // 2]) == "truncated"
    # The same bytes in full decode fine: the failure is the truncation.
    assert decode_image(data).width == 64


def test_truncation_is_not_enabled_globally():
    data = encode(noise(64, 64), "JPEG")
    reason_of(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_png_cut_inside_header_is_truncated():
    data = encode(noise(8, 8), "PNG")
    assert reason_of(data[:20]) == "truncated"


def test_image_signature_with_garbage_is_corrupt_not_foreign():
    # Starts like a PNG / JPEG, then nothing PIL can parse: a damaged image, which
    # is worth telling apart from an HTML page saved with an image name.
    rng = np.random.default_rng(2)
    garbage = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    assert reason_of(b"\x89PNG\r\n\x1a\n" + garbage) == "corrupt"
    assert reason_of(b"GIF89a" + b"\x00" * 7) == "corrupt"


def test_header_claiming_100k_by_100k_is_a_bomb():
    data = png_declaring(100_000, 100_000)
    assert len(data) < 100
    assert reason_of(data) == "decompression_bomb"


def test_bomb_is_rejected_before_decoding(monkeypatch):
    # 9000x9000 = 81 Mpx: above our 64 Mpx default but below PIL's own limit (~89 Mpx),
    # so only decode_image's header check can stop it - and it must do so before load().
    assert 9000 * 9000 > DEFAULT_MAX_PIXELS
    assert 9000 * 9000 < Image.MAX_IMAGE_PIXELS
    calls = []
    original_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(1) or original_load(self))
    assert reason_of(png_declaring(9000, 9000)) == "decompression_bomb"
    assert calls == []


def test_pil_bomb_warning_is_an_error_even_with_a_higher_max_pixels():
    # 10000x9500 = 95 Mpx: PIL only *warns* above MAX_IMAGE_PIXELS (~89 Mpx) and errors
    # above twice that; decode_image turns the warning into a rejection too.
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 9_500 < 2 * Image.MAX_IMAGE_PIXELS
    assert reason_of(png_declaring(10_000, 9_500), max_pixels=200_000_000) == "decompression_bomb"


def test_max_pixels_lowered():
    data = encode(noise(100, 100), "PNG")
    assert reason_of(data, max_pixels=9_999) == "decompression_bomb"
    assert decode_image(data, max_pixels=10_000).width == 100  # the limit is inclusive


def test_bomb_warning_does_not_leak_into_global_filters():
    before = list(warnings.filters)
    reason_of(png_declaring(100_000, 100_000))
    assert warnings.filters == before


def test_too_small_is_checked_after_orientation():
    assert reason_of(encode(noise(40, 10), "PNG"), min_side=16) == "too_small"
    assert decode_image(encode(noise(40, 16), "PNG"), min_side=16).height == 16


# --- successes --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_formats_decode_to_rgb(fmt):
    out = decode_image(encode(noise(30, 20), fmt))
    assert isinstance(out, DecodedImage)
    assert out.format == fmt.lower()
    assert out.image.mode == "RGB"
    assert (out.width, out.height) == out.image.size == (30, 20)


def test_exif_orientation_6_swaps_width_and_height():
    # A 60x20 image whose left third is red, stored with orientation 6 ("rotate 90
    # clockwise to display"): displayed it is 20 wide, 60 tall, red at the top.
    img = Image.new("RGB", (60, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert (out.width, out.height) == (20, 60) == out.image.size
    pixels = np.asarray(out.image).astype(int)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 60  # top is red
    assert pixels[55, 10, 2] > 200 and pixels[55, 10, 0] < 60  # bottom is blue


def test_rgba_composited_onto_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    img.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    img.putpixel((1, 0), (0, 0, 0, 128))  # half transparent black
    out = decode_image(encode(img, "PNG")).image
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert all(abs(v - 127) <= 1 for v in out.getpixel((1, 0)))
    assert out.getpixel((2, 2)) == (255, 0, 0)


def test_palette_with_transparency():
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    out = decode_image(encode(img, "PNG", transparency=0)).image
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent index -> white
    assert out.getpixel((3, 3)) == (0, 255, 0)


def test_palette_without_transparency():
    out = decode_image(encode(noise(16, 16, "P"), "GIF"))
    assert out.image.mode == "RGB" and out.format == "gif"


def test_grayscale_and_la():
    out = decode_image(encode(Image.new("L", (5, 5), 77), "PNG")).image
    assert out.mode == "RGB" and out.getpixel((2, 2)) == (77, 77, 77)
    la = Image.new("LA", (5, 5), (0, 0))  # black, fully transparent
    assert decode_image(encode(la, "PNG")).image.getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg():
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    out = decode_image(encode(img, "JPEG", quality=95)).image
    r, g, b = out.getpixel((4, 4))
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16_bit_grayscale_is_scaled_not_clipped():
    array = np.full((6, 6), 32768, dtype=np.uint16)  # mid grey in 16 bits
    img = Image.fromarray(array)
    assert img.mode == "I;16"
    out = decode_image(encode(img, "PNG")).image
    assert out.mode == "RGB"
    assert all(abs(v - 128) <= 1 for v in out.getpixel((3, 3)))  # PIL's convert would give 255


def test_result_is_fully_loaded_and_independent_of_input_buffer():
    data = bytearray(encode(noise(10, 10), "PNG"))
    out = decode_image(bytes(data))
    data[:] = b"\x00" * len(data)
    assert np.asarray(out.image).shape == (10, 10, 3)


# --- JPEG draft decode (ingest: pixels only feed the perceptual hash) -------------------
def smooth(w: int, h: int, seed: int = 0) -> Image.Image:
    """A photo-like image: smooth colour fields (noise would make pHash meaningless)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)


@pytest.mark.parametrize("size, scale", [((1200, 900), 2), ((2400, 1100), 4), ((4100, 2100), 8), ((500, 300), 1)])
def test_draft_keeps_full_size_and_the_shorter_side_above_the_floor(size, scale):
    out = decode_image(encode(smooth(*size), "JPEG", quality=90), draft_min_side=256)
    assert (out.width, out.height) == size  # the full-resolution size: tiling does not change
    assert out.scale == scale
    assert min(out.image.size) >= 256 or scale == 1
    assert out.image.size == (-(-size[0] // scale), -(-size[1] // scale)) and out.image.mode == "RGB"


def test_draft_still_rejects_truncated_and_corrupt_jpegs():
    data = encode(noise(2048, 1024), "JPEG", quality=90)
    assert decode_image(data, draft_min_side=64).scale == 8
    for cut in (0.3, 0.9, 0.995):  # cut anywhere in the entropy-coded data: still caught
        assert reason_of(data[: int(len(data) * cut)], draft_min_side=64) == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_draft_with_exif_quarter_turn_reports_the_upright_full_size():
    exif = Image.Exif()
    exif[0x0112] = 6
    out = decode_image(encode(smooth(1600, 600), "JPEG", exif=exif.tobytes()), draft_min_side=256)
    assert (out.width, out.height) == (600, 1600)  # upright, full resolution
    assert out.scale == 2 and out.image.size == (300, 800)  # pixels upright too


def test_draft_min_side_is_checked_on_the_full_size():
    data = encode(smooth(1600, 600), "JPEG")
    assert reason_of(data, draft_min_side=64, min_side=601) == "too_small"
    assert decode_image(data, draft_min_side=64, min_side=600).height == 600


def test_draft_applies_to_jpeg_only_and_keeps_phash_close():
    from filters.dedup import phash64
    from filters.dedup.phash import hamming

    png = decode_image(encode(smooth(1200, 900), "PNG"), draft_min_side=256)
    assert png.scale == 1 and png.image.size == (1200, 900)
    for seed in range(6):
        data = encode(smooth(2000, 1500, seed), "JPEG", quality=90)
        full, drafted = decode_image(data), decode_image(data, draft_min_side=256)
        assert drafted.scale == 4
        assert hamming(phash64(full.image), phash64(drafted.image)) <= 4
