"""What TorchServe's answers mean to the API: one mapping, for predictions and management."""

from __future__ import annotations

from typing import Any

import pytest

from control_api.torchserve.answers import UpstreamResponse, api_error


def test_invalid_key_detection() -> None:
    torchserve_400 = {
        "code": 400,
        "type": "InvalidKeyException",
        "message": "Token Authorization failed. Token either incorrect, expired, or not provided correctly",
    }
    assert UpstreamResponse(400, torchserve_400, 1.0).is_invalid_key
    assert not UpstreamResponse(400, {"error": "empty_input", "message": "x"}, 1.0).is_invalid_key
    assert not UpstreamResponse(200, torchserve_400, 1.0).is_invalid_key


@pytest.mark.parametrize(
    ("status", "body", "expected", "slug"),
    [
        (
            404,
            {"code": 404, "type": "ModelNotFoundException", "message": "Model not found: x"},
            404,
            "model_not_found",
        ),
        (409, {"code": 409, "message": "already registered"}, 409, "conflict"),
        (
            403,
            {"type": "InvalidModelVersionException", "message": "Cannot remove default"},
            409,
            "default_version",
        ),
        (400, {"type": "BadRequestException", "message": "bad"}, 422, "rejected_by_torchserve"),
        (503, {"message": "busy"}, 503, "torchserve_unavailable"),
        (507, {"message": "no memory"}, 503, "torchserve_unavailable"),
        (408, {"message": "slow"}, 504, "torchserve_timeout"),
        (500, {"message": "Failed to start workers"}, 502, "torchserve_error"),
        (500, "<html>oops</html>", 502, "torchserve_error"),
    ],
)
def test_torchserve_management_errors_are_mapped(status: int, body: Any, expected: int, slug: str) -> None:
    answer = UpstreamResponse(status, body, 1.0)
    error = api_error(answer, context="management", subject="Model 'x'", retry_after=5)
    assert (error.status_code, error.slug) == (expected, slug)
    message = str(error.message)
    assert "<html>" not in message and len(message) < 400
    if expected == 503:
        assert "Retry-After" in str(error.headers)


@pytest.mark.parametrize(
    ("status", "body", "expected", "slug"),
    [
        (415, {"error": "unsupported_image", "message": "not an image"}, 415, "unsupported_image"),
        (400, {"error": "invalid_input", "message": "neither image nor base64"}, 415, "unsupported_image"),
        (422, {"error": "image_too_large", "message": "over 64 MP"}, 422, "image_too_large"),
        (404, {"code": 404, "message": "Model not found"}, 404, "model_not_found"),
        (503, {"message": "no worker"}, 503, "torchserve_unavailable"),
        (408, {"message": "slow"}, 504, "torchserve_timeout"),
        (413, {"message": "too large"}, 413, "payload_too_large"),
        (413, {"code": 413, "message": "Worker died."}, 503, "torchserve_unavailable"),  # SIGKILLed
        (500, {"code": 500, "message": "Worker died."}, 503, "torchserve_unavailable"),
        (400, {"type": "BadRequestException", "message": "bad"}, 502, "upstream_error"),
        (500, "<html>oops</html>", 502, "upstream_error"),
    ],
)
def test_torchserve_prediction_errors_are_mapped(status: int, body: Any, expected: int, slug: str) -> None:
    """/forward's context: the handler's per-image errors pass through, the rest is TorchServe's."""
    answer = UpstreamResponse(status, body, 1.0)
    error = api_error(answer, context="prediction", subject="Model 'x'", retry_after=5)
    assert (error.status_code, error.slug) == (expected, slug)
    assert "<html>" not in str(error.message)
    if expected >= 502:
        assert error.headers == {"Retry-After": "5"}
