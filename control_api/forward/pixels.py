"""The pixels a /forward request asks TorchServe to decode, counted from each image's header before
any pixel is decoded (Pillow reads the size lazily), against a cap per request
(``MAX_REQUEST_MEGAPIXELS``) and a budget per user (``RATE_LIMIT_FORWARD_MEGAPIXELS``).

A file is small on the wire and large in memory: a blank 8000x8000 RGBA PNG is about 250 KB and
decodes to 256 MB. Counting bytes or requests cannot see that; counting declared pixels can. A file
Pillow cannot identify counts nothing here: TorchServe's handler refuses it (415) without decoding it.
"""

from __future__ import annotations

import io
import math
import warnings

from flask import current_app
from PIL import Image, UnidentifiedImageError

from ..errors import APIError
from ..rate_limits import enforce
from .uploads import Upload

MEGAPIXEL = 1_000_000


def declared_pixels(upload: Upload) -> int:
    """Width x height as the image's header says; 0 when Pillow does not know the format."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(upload.data)) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:
        raise APIError(
            422, "image_too_large", f"An image declares more pixels than this service decodes ({exc})."
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return 0
    return int(width) * int(height)


def charge_pixels(uploads: list[Upload]) -> int:
    """The request's declared megapixels (rounded up): 422 ``too_many_pixels`` over the per-request cap,
    else charged to the user's megapixel budget (429 past it)."""
    pixels = sum(declared_pixels(upload) for upload in uploads)
    cap = int(current_app.config["MAX_REQUEST_MEGAPIXELS"])
    if pixels > cap * MEGAPIXEL:
        raise APIError(
            422,
            "too_many_pixels",
            f"The images declare {pixels / MEGAPIXEL:.1f} megapixels together; at most {cap} per request.",
        )
    megapixels = math.ceil(pixels / MEGAPIXEL)
    enforce("forward_megapixels", megapixels)
    return megapixels
