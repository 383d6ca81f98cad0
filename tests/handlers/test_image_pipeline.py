"""classifier_image: decoding, colour modes, EXIF, draft decoding, refusals, resize/crop.

Pure functions, tested without TorchServe. Every image here is encoded by Pillow in the test itself; nothing
about Pillow is mocked.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from classifier_config import IMAGENET_MEAN, IMAGENET_STD
from classifier_errors import InputError
from classifier_image import decode_image, high_depth_to_l, resize_crop

PILLOW_DEFAULT_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3  # Pillow's Image.MAX_IMAGE_PIXELS


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR claiming width x height and no pixel data at all."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def rejected(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(InputError) as info:
        func(*args, **kwargs)
    return info.value.status, info.value.slug


def pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 2) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


@pytest.fixture(autouse=True)
def _pillow_default_bomb_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # The handler may raise this global when configured with a higher limit; these tests need the default.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_DEFAULT_MAX_PIXELS)


# --------------------------------------------------------------------------------------------- colour modes


def _mode_images() -> dict[str, tuple[Image.Image, str, tuple[int, int, int]]]:
    """mode -> (64x48 image in that mode, a format that stores the mode, expected RGB of pixel (0, 0))."""
    size = (64, 48)
    p_img = Image.new("P", size, 1)
    p_img.putpalette([0, 0, 0, 200, 30, 40] + [0] * 762)
    i16 = Image.fromarray(np.full((48, 64), 257 * 100, dtype=np.uint16))
    i32 = Image.fromarray(np.full((48, 64), 65535, dtype=np.int32))
    f32 = Image.fromarray(np.full((48, 64), 0.5, dtype=np.float32))
    return {
        "1": (Image.new("1", size, 1), "PNG", (255, 255, 255)),
        "L": (Image.new("L", size, 77), "PNG", (77, 77, 77)),
        "LA": (Image.new("LA", size, (0, 0)), "PNG", (255, 255, 255)),  # fully transparent -> white
        "P": (p_img, "PNG", (200, 30, 40)),
        "RGBA": (Image.new("RGBA", size, (255, 0, 0, 128)), "PNG", (255, 127, 127)),  # half red on white
        "CMYK": (Image.new("CMYK", size, (0, 255, 255, 0)), "TIFF", (255, 0, 0)),
        "I;16": (i16, "PNG", (100, 100, 100)),  # 16-bit full range scaled by 1/257, not clipped to 255
        "I": (i32, "TIFF", (255, 255, 255)),  # 0..65535 data stored as I is scaled like 16-bit
        "F": (f32, "TIFF", (128, 128, 128)),  # float in [0, 1]: x255
    }


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_mode_decodes_to_rgb(mode: str) -> None:
    img, fmt, expected = _mode_images()[mode]
    data = encode(img, fmt)
    assert Image.open(io.BytesIO(data)).mode.startswith(mode[0])  # the file really holds that mode
    rgb, info = decode_image(data)
    assert rgb.mode == "RGB"
    assert rgb.size == (64, 48)
    assert (info["width"], info["height"], info["format"]) == (64, 48, fmt)
    assert close(pixel(rgb, (10, 10)), expected), (mode, pixel(rgb, (10, 10)))


def test_high_depth_gradient_is_scaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 256 * 4, dtype=np.float64).round().astype(np.uint16).reshape(4, 256)
    gray = high_depth_to_l(Image.fromarray(ramp))
    values = np.asarray(gray)
    assert values.min() == 0 and values.max() == 255
    assert len(np.unique(values)) > 200  # clipping would leave almost everything at 255
    # signed 32-bit data outside 0..65535 is stretched min..max
    signed = high_depth_to_l(Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32)))
    assert np.asarray(signed).tolist() == [[0, 128, 255]]
    # float data with NaN/inf does not crash and keeps finite values
    floats = np.array([[np.nan, 0.0, 1.0, np.inf]], dtype=np.float32)
    assert np.asarray(high_depth_to_l(Image.fromarray(floats))).tolist() == [[0, 0, 255, 0]]


def test_palette_transparency_goes_to_white() -> None:
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    img.info["transparency"] = 1
    rgb, _ = decode_image(encode(img, "PNG", transparency=1))
    assert pixel(rgb, (3, 3)) == (255, 255, 255)


# ---------------------------------------------------------------------------------------------- formats


def _formats() -> dict[str, bytes]:
    base = Image.new("RGB", (90, 60), (220, 30, 30))
    second = Image.new("RGB", (90, 60), (30, 30, 220))
    return {
        "JPEG": encode(base, "JPEG", quality=95),
        "PNG": encode(base, "PNG"),
        "WEBP": encode(base, "WEBP", lossless=True),
        "GIF": encode(base, "GIF", save_all=True, append_images=[second], duration=100, loop=0),
        "BMP": encode(base, "BMP"),
        "TIFF": encode(base, "TIFF", save_all=True, append_images=[second]),
    }


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_format_decodes_first_frame(fmt: str) -> None:
    rgb, info = decode_image(_formats()[fmt], draft_size=256)
    assert rgb.mode == "RGB" and rgb.size == (90, 60)
    assert info == {"width": 90, "height": 60, "format": fmt}
    assert close(pixel(rgb, (45, 30)), (220, 30, 30), tol=6)  # first frame (red), not the blue one


def test_other_formats_are_refused() -> None:
    ico = encode(Image.new("RGB", (32, 32), (1, 2, 3)), "ICO")
    assert rejected(decode_image, ico) == (415, "unsupported_image")


# ------------------------------------------------------------------------------------------ EXIF / draft


def _oriented_jpeg(width: int, height: int, orientation: int) -> bytes:
    """Gray JPEG with a red top-left corner block (in stored orientation) and an EXIF orientation."""
    img = Image.new("RGB", (width, height), (128, 128, 128))
    ImageDraw.Draw(img).rectangle((0, 0, width // 8, height // 8), fill=(255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_6_rotates_pixels_and_reported_size() -> None:
    rgb, info = decode_image(_oriented_jpeg(400, 300, 6))
    # Orientation 6: the stored image must be turned 90 degrees clockwise to display it.
    assert rgb.size == (300, 400)
    assert (info["width"], info["height"]) == (300, 400)
    assert close(pixel(rgb, (300 - 10, 10)), (255, 0, 0), tol=10)  # stored top-left -> displayed top-right
    assert close(pixel(rgb, (10, 10)), (128, 128, 128), tol=10)
    assert close(pixel(rgb, (10, 400 - 10)), (128, 128, 128), tol=10)


def test_exif_rotation_with_draft_reports_full_display_size() -> None:
    rgb, info = decode_image(_oriented_jpeg(4000, 3000, 6), draft_size=256)
    assert (info["width"], info["height"]) == (3000, 4000)
    assert rgb.size == (375, 500)  # decoded at 1/8 scale, then rotated
    assert min(rgb.size) >= 256
    assert close(pixel(rgb, (375 - 5, 5)), (255, 0, 0), tol=12)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((4000, 3000), (500, 375)),  # 1/8
        ((4000, 2048), (500, 256)),  # 1/8 exactly reaches 256 on the short side
        ((4000, 2047), (1000, 512)),  # 1/8 would give 255.9: falls back to 1/4
        ((2100, 1000), (1050, 500)),  # limited by the short side, not the long one
        ((300, 2000), (300, 2000)),  # short side 300 < 2*256: no reduction
    ],
)
def test_draft_keeps_short_side_at_least_resize_size(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    data = encode(Image.new("RGB", size, (10, 120, 200)), "JPEG", quality=70)
    rgb, info = decode_image(data, draft_size=256)
    assert rgb.size == expected
    assert min(rgb.size) >= 256
    assert (info["width"], info["height"]) == size


def _natural_looking(width: int = 4000, height: int = 3000) -> Image.Image:
    """Smooth gradients, shapes and some texture, drawn small and upscaled (fast to build)."""
    w, h = width // 4, height // 4
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = np.stack([255 * xx / w, 255 * yy / h, 128 + 100 * np.sin(xx / 23.0) * np.cos(yy / 31.0)], axis=-1)
    arr += np.random.default_rng(0).normal(0, 6, arr.shape).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    rng = np.random.default_rng(1)
    for i in range(30):
        s = int(rng.integers(w // 50, w // 10))
        x0, y0 = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if i % 2 else draw.rectangle)((x0, y0, x0 + s, y0 + s), fill=colour)
    return img.filter(ImageFilter.GaussianBlur(1)).resize((width, height), Image.Resampling.BICUBIC)


def normalised(pixels: np.ndarray) -> torch.Tensor:
    """HWC uint8 -> CHW in the model's input units, ``(x / 255 - mean) / std`` (ImageNet statistics)."""
    x = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255
    return (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def test_draft_decode_of_12mp_jpeg_matches_full_decode() -> None:
    data = encode(_natural_looking(), "JPEG", quality=90)
    started = time.perf_counter()
    full, full_info = decode_image(data)
    full_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    drafted, draft_info = decode_image(data, draft_size=256)
    draft_ms = (time.perf_counter() - started) * 1000
    print(f"\n12 MP JPEG decode: full {full_ms:.1f} ms, draft {draft_ms:.1f} ms")

    assert full.size == (4000, 3000)
    assert drafted.size == (500, 375)  # the draft really decoded at 1/8 scale
    assert full_info == draft_info == {"width": 4000, "height": 3000, "format": "JPEG"}
    diff = (normalised(resize_crop(full)) - normalised(resize_crop(drafted))).abs()
    # 0.05 in normalised units is about 3 grey levels of 255 (0.05 * 0.226 * 255): far below anything a
    # classifier reacts to, and 5-10x above what DCT-domain scaling costs on photo-like content (~0.006).
    assert diff.mean().item() < 0.05
    assert torch.quantile(diff.flatten()[::7], 0.99).item() < 0.25


# ---------------------------------------------------------------------------------------------- refusals


def test_header_over_limit_refused_before_any_pixel_is_decoded() -> None:
    # 81 MP: under Pillow's own limit (89 MP) but over ours (64 MP). The file has no pixel data, so had
    # it been decoded the answer would be 415 "truncated", not 422.
    assert rejected(decode_image, png_header_only(9000, 9000)) == (422, "image_too_large")
    assert rejected(decode_image, png_header_only(900, 900)) == (415, "unsupported_image")


def test_configured_small_limit_is_enforced() -> None:
    data = encode(Image.new("RGB", (200, 200), (5, 5, 5)), "PNG")
    assert rejected(decode_image, data, max_pixels=10_000) == (422, "image_too_large")
    assert decode_image(data, max_pixels=40_000)[0].size == (200, 200)


@pytest.mark.parametrize("size", [(12000, 10000), (20000, 10000)])
def test_pillow_bomb_warning_and_error_map_to_422(size: tuple[int, int]) -> None:
    # 120 MP triggers Pillow's DecompressionBombWarning, 200 MP its DecompressionBombError.
    data = png_header_only(*size)
    assert rejected(decode_image, data, max_pixels=10**12) == (422, "image_too_large")


def test_truncated_images_are_refused() -> None:
    img = _natural_looking(400, 300)
    for fmt in ("JPEG", "PNG", "WEBP"):
        data = encode(img, fmt)
        assert rejected(decode_image, data[: len(data) // 2]) == (415, "unsupported_image"), fmt


def test_non_image_bytes_are_refused() -> None:
    assert rejected(decode_image, b"\x00\x01\x02 definitely not an image \xff" * 10) == (
        415,
        "unsupported_image",
    )
    assert rejected(decode_image, b"GIF89a") == (415, "unsupported_image")


# ------------------------------------------------------------------------------------------- resize/crop


@pytest.mark.parametrize("size", [(2000, 10), (10, 2000), (1, 1), (224, 224), (300, 200)])
def test_resize_crop_any_aspect_ratio(size: tuple[int, int]) -> None:
    pixels = resize_crop(Image.new("RGB", size, (1, 2, 3)))
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8


def test_resize_crop_refuses_a_crop_larger_than_the_resize() -> None:
    with pytest.raises(ValueError, match="crop_size"):
        resize_crop(Image.new("RGB", (300, 300)), 224, 256)
