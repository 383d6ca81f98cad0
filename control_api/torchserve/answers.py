"""What TorchServe's answers mean to our API: one mapping, ``api_error``, from its answers (status and
body) and from transport failures to our errors, for /forward's predictions and for model management.

TorchServe's raw body is never passed on: our messages carry at most its own ``message`` text, bounded.
The two callers differ only where the same answer means something else to them (``Context``):

- ``"prediction"``: our handler's per-image answers (400/413/415/422 with ``error`` and ``message``)
  pass through as that image's error; a 413 without them is TorchServe's own body limit; any other
  unexpected answer is 502 ``upstream_error``.
- ``"management"``: a 400 is 422 ``rejected_by_torchserve`` (TorchServe refused what we asked), 409 is
  ``conflict``, 403 (InvalidModelVersionException, e.g. removing the default version) is 409
  ``default_version``, 504 a timeout; any other unexpected answer is 502 ``torchserve_error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import APIError

Context = Literal["prediction", "management"]
# Per-image answers of our handler: TorchServe found the model version, the image was the problem.
HANDLER_ERRORS = frozenset({400, 413, 415, 422})
# OpenAPI: what any endpoint that calls TorchServe may answer because of it.
UPSTREAM_ERRORS = {
    502: "TorchServe failed, or answered something unexpected",
    503: "TorchServe unavailable or out of resources (see Retry-After)",
    504: "TorchServe timed out",
}
MAX_EXPLANATION = 300
# Our statuses that carry Retry-After: TorchServe failed, is unavailable or was too slow, and may not
# be next time.
RETRY = frozenset({502, 503, 504})
# TorchServe's answer to the requests a worker held when it died; 413 when the worker was SIGKILLed
# (exit 137, which it takes for the kernel's OOM killer), 500 otherwise. It restarts the worker.
WORKER_DIED = "Worker died"

# TorchServe's status -> (our status, slug, what we say before TorchServe's own explanation).
_Mapped = tuple[int, str, str]
_SHARED: dict[int, _Mapped] = {
    503: (503, "torchserve_unavailable", "TorchServe cannot answer now"),
    507: (503, "torchserve_unavailable", "TorchServe cannot answer now"),
    408: (504, "torchserve_timeout", "TorchServe timed out"),
}
_BY_CONTEXT: dict[Context, dict[int, _Mapped]] = {
    "prediction": {413: (413, "payload_too_large", "The image is larger than TorchServe accepts")},
    "management": {
        400: (422, "rejected_by_torchserve", "TorchServe refused the request"),
        403: (409, "default_version", "TorchServe refused"),
        409: (409, "conflict", "TorchServe refused"),
        504: (504, "torchserve_timeout", "TorchServe timed out"),
    },
}
_FALLBACK_SLUG: dict[Context, str] = {"prediction": "upstream_error", "management": "torchserve_error"}


class UpstreamError(Exception):
    """TorchServe could not give an answer; ``status`` is what our API answers."""

    status = 502
    slug = "upstream_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset, or no worker: worth retrying later."""

    status = 503
    slug = "torchserve_unavailable"


class UpstreamTimeout(UpstreamError):
    """TorchServe accepted the request but did not answer in time."""

    status = 504
    slug = "torchserve_timeout"


@dataclass(frozen=True)
class UpstreamResponse:
    """TorchServe's answer to one call."""

    status: int
    body: Any
    elapsed_ms: float

    @property
    def is_invalid_key(self) -> bool:
        """TorchServe's answer to a missing, wrong or expired token."""
        return (
            self.status in (400, 401)
            and isinstance(self.body, dict)
            and (
                self.body.get("type") == "InvalidKeyException"
                or "Token Authorization failed" in str(self.body.get("message", ""))
            )
        )


def explanation(answer: UpstreamResponse) -> str:
    """TorchServe's explanation, bounded, for our messages: the message of its JSON answer, never its
    body as such (an HTML error page, a proxy's text)."""
    body = answer.body
    text = (body.get("message") or body.get("status")) if isinstance(body, dict) else None
    return " ".join(str(text or f"HTTP {answer.status}").split())[:MAX_EXPLANATION]


def api_error(
    answer: UpstreamResponse | UpstreamError, *, context: Context, subject: str, retry_after: int
) -> APIError:
    """Our error for a failed call: TorchServe's non-200 ``answer``, or the transport failure raised
    instead. ``subject`` names the model (version) asked for, e.g. "Model 'resnet50' version '2.0'"."""
    # A failing or unavailable TorchServe (a worker died, the frontend restarts) is worth retrying.
    retry = {"Retry-After": str(retry_after)}
    if isinstance(answer, UpstreamError):
        return APIError(
            answer.status, answer.slug, answer.message, headers=retry if answer.status in RETRY else None
        )
    if context == "prediction":
        handler_error = _handler_error(answer)
        if handler_error is not None:
            return handler_error
    if answer.status == 404:
        return APIError(404, "model_not_found", f"{subject} is not registered.")
    said = explanation(answer)
    if said.startswith(WORKER_DIED):
        message = f"TorchServe's worker died while serving this request (it restarts): {said}"
        return APIError(503, "torchserve_unavailable", message, headers=retry)
    mapped = _BY_CONTEXT[context].get(answer.status) or _SHARED.get(answer.status)
    if mapped is None:
        return APIError(
            502, _FALLBACK_SLUG[context], f"TorchServe failed (HTTP {answer.status}): {said}", headers=retry
        )
    status, slug, text = mapped
    return APIError(status, slug, f"{text}: {said}", headers=retry if status in RETRY else None)


def _handler_error(answer: UpstreamResponse) -> APIError | None:
    """Our handler's own error for one image, when that is what TorchServe passed on."""
    body = answer.body if isinstance(answer.body, dict) else {}
    if not ("error" in body and "message" in body and answer.status in HANDLER_ERRORS):
        return None
    slug, message = str(body["error"]), str(body["message"])
    if slug == "invalid_input":
        # The handler also accepts base64 text and says 400 when bytes are neither an image nor valid
        # base64; for an uploaded file that simply means "not a supported image".
        return APIError(415, "unsupported_image", f"Not a supported image ({message}).")
    return APIError(answer.status, slug, message)


def not_understood(what: str) -> APIError:
    """A 200 whose body is not what the call returns (a proxy's page, another service on the port)."""
    return APIError(502, "upstream_error", f"TorchServe's {what} was not understood.")
