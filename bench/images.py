"""The two benchmark images, made deterministically from scikit-image's bundled photos.

- small: ``skimage.data.chelsea()`` (451x300) as JPEG q90;
- large: ``skimage.data.coffee()`` upscaled with LANCZOS to 4000x3000 (12 MP), with a little seeded
  sensor-like grain so its entropy (and so its size and decode cost) resembles a real camera JPEG rather
  than a smooth upscale, saved as JPEG q90.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

LARGE_SIZE = (4000, 3000)
JPEG_QUALITY = 90
GRAIN_SIGMA = 4.0


@dataclass(frozen=True)
class BenchImage:
    """One benchmark image: a short key, a human label and its JPEG bytes."""

    key: str
    label: str
    data: bytes
    width: int
    height: int


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _cover_resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to cover ``size`` keeping the aspect ratio, then center-crop, so nothing is stretched."""
    scale = max(size[0] / img.width, size[1] / img.height)
    resized = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    left = (resized.width - size[0]) // 2
    top = (resized.height - size[1]) // 2
    return resized.crop((left, top, left + size[0], top + size[1]))


@cache
def small_jpeg() -> BenchImage:
    """The ~450x300 photo (a cat)."""
    from skimage import data

    img = Image.fromarray(data.chelsea())
    return BenchImage(
        "small", f"small JPEG {img.width}x{img.height}", _jpeg_bytes(img), img.width, img.height
    )


@cache
def large_jpeg(seed: int = 0) -> BenchImage:
    """The 12 MP (4000x3000) photo JPEG."""
    from skimage import data

    img = _cover_resize(Image.fromarray(data.coffee()), LARGE_SIZE)
    rng = np.random.default_rng(seed)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, GRAIN_SIGMA, (LARGE_SIZE[1], LARGE_SIZE[0], 1))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return BenchImage("12mp", f"12 MP JPEG {LARGE_SIZE[0]}x{LARGE_SIZE[1]}", _jpeg_bytes(img), *LARGE_SIZE)


def bench_images() -> list[BenchImage]:
    """Both images, small first."""
    return [small_jpeg(), large_jpeg()]


def write_images(directory: Path) -> dict[str, Path]:
    """Write both images to ``directory`` (for the load generator and for curl); returns key -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for image in bench_images():
        path = directory / f"{image.key}.jpg"
        path.write_bytes(image.data)
        paths[image.key] = path
    return paths


if __name__ == "__main__":
    for im in bench_images():
        print(f"{im.key}: {im.label}, {len(im.data) / 1e6:.2f} MB")
