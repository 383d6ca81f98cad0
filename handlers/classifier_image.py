"""The image pipeline: encoded bytes -> RGB image -> the model's HWC uint8 crop (Pillow, no torch).

- open: JPEG (and MPO), PNG, WebP, GIF (first frame), BMP, TIFF (first page). The pixel count from the
  header is checked against ``max_pixels`` before any pixel is decoded.
- decode: a JPEG is decoded with ``Image.draft`` at the smallest DCT scale that keeps the short side
  >= the resize size, so a phone photo is never decoded at full size. EXIF orientation is applied.
- colour: every mode becomes RGB. Alpha is composited onto WHITE (transparent pixels often hold arbitrary
  colour, so dropping alpha would feed that to the model; white is what viewers show). 16-bit and 32-bit
  grayscale (I;16, I, F) are scaled to 8 bits by value range, not clipped (see ``high_depth_to_l``).
- resize/crop: short side to ``resize_size`` with antialiased bilinear resampling (PIL, the same filter
  torchvision uses for PIL images), center crop ``crop_size``. Only the crop window is resampled
  (``resize(box=...)``), which gives the pixels of resize-then-crop without resampling the rest.

Normalisation is not done here: it runs on the whole batch inside the served model (``classifier_model``).
Every failure a client's bytes can cause raises ``InputError`` (415 or 422).
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from classifier_config import CROP_SIZE, MAX_IMAGE_PIXELS, RESIZE_SIZE
from classifier_errors import InputError

logger = logging.getLogger(__name__)

# Multi-picture JPEGs from cameras (MPO) open through the JPEG entry and are reported as JPEG.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def decode_image(
    data: bytes, max_pixels: int = MAX_IMAGE_PIXELS, draft_size: int | None = None
) -> tuple[Image.Image, dict[str, Any]]:
    """Decode to an RGB image, EXIF-oriented. Returns it and {"width", "height", "format"} as displayed.

    With ``draft_size`` a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose result is
    still >= draft_size in both dimensions, so the short side stays >= draft_size (rotation by EXIF
    swaps the sides, it does not change the short one). Width/height in the info are the full-size ones.
    """
    img = open_image(data, max_pixels)
    fmt = "JPEG" if img.format == "MPO" else str(img.format)
    width, height = img.size
    try:
        if draft_size and fmt == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()  # raises on truncated data (ImageFile.LOAD_TRUNCATED_IMAGES stays False)
        loaded_size = img.size
        _apply_exif_orientation(img)
        if img.size != loaded_size:  # rotated by 90 degrees
            width, height = height, width
        rgb = to_rgb(img)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(415, "unsupported_image", f"cannot decode the {fmt} image: {exc}") from exc
    return rgb, {"width": width, "height": height, "format": fmt}


def open_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Parse the header only, and refuse images over ``max_pixels`` before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check (global Image.MAX_IMAGE_PIXELS) warns at 1x and raises at 2x its
            # limit; both are refusals here, never a crash or a silently accepted bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(422, "image_too_large", f"image too large: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InputError(
            415, "unsupported_image", "not a decodable JPEG, PNG, WebP, GIF, BMP or TIFF image"
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # malformed headers make plugins raise all sorts of errors
        raise InputError(415, "unsupported_image", f"cannot parse the image: {exc}") from exc
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise InputError(
            422,
            "image_too_large",
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
        )
    return img


def _apply_exif_orientation(img: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as exc:  # a broken EXIF block must not reject an otherwise good image
        logger.info("ignoring unreadable EXIF orientation: %s", exc)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; alpha (and palette/colour-key transparency) goes onto white."""
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return high_depth_to_l(img).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if mode == "RGB" else img.convert("RGB")


def high_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale an I;16*, I or F image to 8-bit L by its value range instead of clipping at 255.

    I;16 is full-range 16-bit (/257). For I and F the range is not fixed, so: F within [0, 1] -> x255;
    values within [0, 255] are kept; within [0, 65535] -> /257 (16-bit data stored as I); anything else
    is stretched min..max.
    """
    arr = np.asarray(img).astype(np.float32)
    if img.mode.startswith("I;16"):
        scaled = arr / 257.0
    else:
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            scaled = arr
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = arr / 257.0
        else:
            scaled = (arr - lo) * (255.0 / (hi - lo))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def resize_crop(img: Image.Image, resize_size: int = RESIZE_SIZE, crop_size: int = CROP_SIZE) -> np.ndarray:
    """torchvision ``Resize(resize_size)`` + ``CenterCrop(crop_size)`` on an RGB image -> HWC uint8.

    Only the crop window is resampled (``resize(box=...)``), with the scale factors of the full resize,
    which gives the same pixels as resizing everything and cropping afterwards.
    """
    if crop_size > resize_size:
        raise ValueError("crop_size must not exceed resize_size")
    width, height = img.size
    if width <= height:  # same rounding as torchvision: the long side is truncated
        new_w, new_h = resize_size, int(resize_size * height / width)
    else:
        new_w, new_h = int(resize_size * width / height), resize_size
    left = round((new_w - crop_size) / 2.0)
    top = round((new_h - crop_size) / 2.0)
    sx, sy = width / new_w, height / new_h
    box = (left * sx, top * sy, (left + crop_size) * sx, (top + crop_size) * sy)
    out = img.resize((crop_size, crop_size), Image.Resampling.BILINEAR, box=box)
    return np.asarray(out)
