"""Pure image code of the handler: input parsing, decoding, colour modes, EXIF, draft decoding, transform.

Every image here is encoded by Pillow in the test itself; nothing about Pillow is mocked.
"""

from __future__ import annotations

import base64
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

from handlers import classifier_handler as ch

InputError = ch.ImageClassifierHandler.InputError
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
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
    rgb, info = ch.decode_image(data)
    assert rgb.mode == "RGB"
    assert rgb.size == (64, 48)
    assert (info["width"], info["height"], info["format"]) == (64, 48, fmt)
    assert close(pixel(rgb, (10, 10)), expected), (mode, pixel(rgb, (10, 10)))


def test_high_depth_gradient_is_scaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 256 * 4, dtype=np.float64).round().astype(np.uint16).reshape(4, 256)
    gray = ch.high_depth_to_l(Image.fromarray(ramp))
    values = np.asarray(gray)
    assert values.min() == 0 and values.max() == 255
    assert len(np.unique(values)) > 200  # clipping would leave almost everything at 255
    # signed 32-bit data outside 0..65535 is stretched min..max
    signed = ch.high_depth_to_l(Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32)))
    assert np.asarray(signed).tolist() == [[0, 128, 255]]
    # float data with NaN/inf does not crash and keeps finite values
    floats = np.array([[np.nan, 0.0, 1.0, np.inf]], dtype=np.float32)
    assert np.asarray(ch.high_depth_to_l(Image.fromarray(floats))).tolist() == [[0, 0, 255, 0]]


def test_palette_transparency_goes_to_white() -> None:
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    img.info["transparency"] = 1
    rgb, _ = ch.decode_image(encode(img, "PNG", transparency=1))
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
    rgb, info = ch.decode_image(_formats()[fmt], draft_size=256)
    assert rgb.mode == "RGB" and rgb.size == (90, 60)
    assert info == {"width": 90, "height": 60, "format": fmt}
    assert close(pixel(rgb, (45, 30)), (220, 30, 30), tol=6)  # first frame (red), not the blue one


def test_other_formats_are_refused() -> None:
    ico = encode(Image.new("RGB", (32, 32), (1, 2, 3)), "ICO")
    assert rejected(ch.decode_image, ico) == (415, "unsupported_image")


# ------------------------------------------------------------------------------------------ EXIF / draft


def _oriented_jpeg(width: int, height: int, orientation: int) -> bytes:
    """Gray JPEG with a red top-left corner block (in stored orientation) and an EXIF orientation."""
    img = Image.new("RGB", (width, height), (128, 128, 128))
    ImageDraw.Draw(img).rectangle((0, 0, width // 8, height // 8), fill=(255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_6_rotates_pixels_and_reported_size() -> None:
    rgb, info = ch.decode_image(_oriented_jpeg(400, 300, 6))
    # Orientation 6: the stored image must be turned 90 degrees clockwise to display it.
    assert rgb.size == (300, 400)
    assert (info["width"], info["height"]) == (300, 400)
    assert close(pixel(rgb, (300 - 10, 10)), (255, 0, 0), tol=10)  # stored top-left -> displayed top-right
    assert close(pixel(rgb, (10, 10)), (128, 128, 128), tol=10)
    assert close(pixel(rgb, (10, 400 - 10)), (128, 128, 128), tol=10)


def test_exif_rotation_with_draft_reports_full_display_size() -> None:
    rgb, info = ch.decode_image(_oriented_jpeg(4000, 3000, 6), draft_size=256)
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
    rgb, info = ch.decode_image(data, draft_size=256)
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


def test_draft_decode_of_12mp_jpeg_matches_full_decode() -> None:
    data = encode(_natural_looking(), "JPEG", quality=90)
    started = time.perf_counter()
    full, full_info = ch.decode_image(data)
    full_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    drafted, draft_info = ch.decode_image(data, draft_size=256)
    draft_ms = (time.perf_counter() - started) * 1000
    print(f"\n12 MP JPEG decode: full {full_ms:.1f} ms, draft {draft_ms:.1f} ms")

    assert full.size == (4000, 3000)
    assert drafted.size == (500, 375)  # the draft really decoded at 1/8 scale
    assert full_info == draft_info == {"width": 4000, "height": 3000, "format": "JPEG"}
    diff = (ch.transform_image(full) - ch.transform_image(drafted)).abs()
    # 0.05 in normalised units is about 3 grey levels of 255 (0.05 * 0.226 * 255): far below anything a
    # classifier reacts to, and 5-10x above what DCT-domain scaling costs on photo-like content (~0.006).
    assert diff.mean().item() < 0.05
    assert torch.quantile(diff.flatten()[::7], 0.99).item() < 0.25


# ---------------------------------------------------------------------------------------------- refusals


def test_header_over_limit_refused_before_any_pixel_is_decoded() -> None:
    # 81 MP: under Pillow's own limit (89 MP) but over ours (64 MP). The file has no pixel data, so had
    # it been decoded the answer would be 415 "truncated", not 422.
    assert rejected(ch.decode_image, png_header_only(9000, 9000)) == (422, "image_too_large")
    assert rejected(ch.decode_image, png_header_only(900, 900)) == (415, "unsupported_image")


def test_configured_small_limit_is_enforced() -> None:
    data = encode(Image.new("RGB", (200, 200), (5, 5, 5)), "PNG")
    assert rejected(ch.decode_image, data, max_pixels=10_000) == (422, "image_too_large")
    assert ch.decode_image(data, max_pixels=40_000)[0].size == (200, 200)


@pytest.mark.parametrize("size", [(12000, 10000), (20000, 10000)])
def test_pillow_bomb_warning_and_error_map_to_422(size: tuple[int, int]) -> None:
    # 120 MP triggers Pillow's DecompressionBombWarning, 200 MP its DecompressionBombError.
    data = png_header_only(*size)
    assert rejected(ch.decode_image, data, max_pixels=10**12) == (422, "image_too_large")


def test_truncated_images_are_refused() -> None:
    img = _natural_looking(400, 300)
    for fmt in ("JPEG", "PNG", "WEBP"):
        data = encode(img, fmt)
        assert rejected(ch.decode_image, data[: len(data) // 2]) == (415, "unsupported_image"), fmt


def test_non_image_bytes_are_refused() -> None:
    assert rejected(ch.decode_image, b"\x00\x01\x02 definitely not an image \xff" * 10) == (
        415,
        "unsupported_image",
    )
    assert rejected(ch.decode_image, b"GIF89a") == (415, "unsupported_image")


# ------------------------------------------------------------------------------------------------ inputs


def test_extract_raw_multipart_and_base64_inputs() -> None:
    png = encode(Image.new("RGB", (4, 4)), "PNG")
    b64 = base64.b64encode(png)
    assert ch.extract_image_bytes({"body": png}) == png
    assert ch.extract_image_bytes({"data": bytearray(png)}) == png
    assert ch.extract_image_bytes({"file": png, "top_k": b"3"}) == png
    assert ch.extract_image_bytes({"body": b64}) == png  # base64 sent as bytes
    assert ch.extract_image_bytes({"data": b64.decode()}) == png  # base64 as text/plain (str)
    assert ch.extract_image_bytes({"body": b"data:image/png;base64," + b64}) == png
    wrapped = b"\n".join(b64[i : i + 16] for i in range(0, len(b64), 16)) + b"\n"
    assert ch.extract_image_bytes({"body": wrapped}) == png  # MIME line breaks
    assert ch.extract_image_bytes({"body": {"data": b64.decode()}}) == png  # JSON body
    urlsafe = base64.urlsafe_b64encode(png).rstrip(b"=")
    assert ch.extract_image_bytes({"body": urlsafe}) == png


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({}, (400, "empty_input")),
        ({"body": b""}, (400, "empty_input")),
        ({"data": "   "}, (400, "empty_input")),
        ({"body": b"=="}, (400, "invalid_input")),
        ({"data": "not base64 !!"}, (400, "invalid_input")),
        ({"body": b"abcde"}, (400, "invalid_input")),
        ({"body": [1, 2, 3]}, (400, "invalid_input")),
    ],
)
def test_bad_inputs(row: dict[str, Any], expected: tuple[int, str]) -> None:
    assert rejected(ch.extract_image_bytes, row) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 5), (b"3", 3), (" 7 ", 7), (10, 10), ("100", 100), (b"1", 1)],
)
def test_top_k_accepted(value: Any, expected: int) -> None:
    row = {} if value is None else {"top_k": value}
    assert ch.parse_top_k(row, default=5, max_k=100) == expected


@pytest.mark.parametrize("value", [b"0", "101", "-1", "abc", b"", 2.5, True, "3.0"])
def test_top_k_refused(value: Any) -> None:
    assert rejected(ch.parse_top_k, {"top_k": value}, 5, 100) == (422, "invalid_top_k")


def test_top_k_from_json_body() -> None:
    assert ch.parse_top_k({"body": {"data": "x", "top_k": 2}}) == 2


def test_top_k_header_applies_when_the_row_has_none() -> None:
    assert ch.parse_top_k({"body": b"jpeg"}, 5, 100, header="3") == 3
    assert ch.parse_top_k({"top_k": b"2"}, 5, 100, header="3") == 2  # a form field wins
    assert rejected(ch.parse_top_k, {"body": b"jpeg"}, 5, 100, "0") == (422, "invalid_top_k")


def test_header_lookup_ignores_case_and_per_part_entries() -> None:
    headers = {"body": {"content-type": "image/jpeg"}, "X-Top-K": "4", "x-request-id": "r"}
    assert ch.header_value(headers, "x-top-k") == "4"
    assert ch.header_value({"x-top-k": {"content-type": "text/plain"}}, "x-top-k") is None
    assert ch.header_value(None, "x-top-k") is None


# --------------------------------------------------------------------------------------------- transform


def test_transform_shape_and_constant_image_normalisation() -> None:
    colour = (124, 116, 104)
    tensor = ch.transform_image(Image.new("RGB", (640, 480), colour), 256, 224, MEAN, STD)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    for channel in range(3):
        expected = (colour[channel] / 255 - MEAN[channel]) / STD[channel]
        assert torch.allclose(tensor[channel], torch.full((224, 224), expected), atol=1e-5)


@pytest.mark.parametrize("size", [(2000, 10), (10, 2000), (1, 1), (224, 224), (300, 200)])
def test_transform_any_aspect_ratio(size: tuple[int, int]) -> None:
    assert ch.transform_image(Image.new("RGB", size, (1, 2, 3))).shape == (3, 224, 224)


def test_transform_matches_torchvision_resize_centercrop() -> None:
    from torchvision import transforms as T

    img = _natural_looking(640, 452)
    reference = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])(img)
    ours = ch.transform_image(img, 256, 224, MEAN, STD)
    one_level = 1 / 255 / min(STD)
    assert (ours - reference).abs().max().item() <= one_level + 1e-4  # at most a 1-level rounding step
    assert (ours - reference).abs().mean().item() < 1e-3


def test_normalize_keeps_channels_last() -> None:
    batch = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    out = ch.normalize(batch, MEAN, STD)
    assert out.shape == (2, 3, 8, 8)
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected = (batch.permute(0, 3, 1, 2).float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
        STD
    ).view(1, 3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("channels_last", [True, False])
def test_served_model_normalises_uint8_batches_like_normalize(channels_last: bool) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten()).eval()
    seen: list[torch.Tensor] = []
    net.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
    batch = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    served = ch.ImageClassifierHandler.ServedModel(net, MEAN, STD, channels_last).eval()
    with torch.inference_mode():
        out = served(batch)
        expected = net(ch.normalize(batch, MEAN, STD))
    assert torch.allclose(out, expected, atol=1e-5)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert seen[0].is_contiguous(memory_format=layout)
    # The constants are not weights: the archive's state_dict loads into the network as before.
    assert set(served.state_dict()) == {f"net.{key}" for key in net.state_dict()}
