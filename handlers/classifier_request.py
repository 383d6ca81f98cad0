"""Request parsing: the image bytes and ``top_k`` of one request row, as TorchServe hands it to the handler.

- image: raw bytes in ``data``, ``body``, ``file`` or ``image`` (a raw body, a multipart part), or base64
  text there (standard or URL-safe, padded or not, line-wrapped, optionally a ``data:...;base64,`` URL);
  a JSON body ``{"data": "<base64>", "top_k": 3}`` works too.
- ``top_k``: a form field or JSON key (bytes, str or int), else the ``X-Top-K`` request header. A raw body
  has no fields: the control API sends the image raw, which spares TorchServe's frontend a multipart
  decode, so the header is how it passes ``top_k``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from classifier_errors import InputError

IMAGE_KEYS = ("data", "body", "file", "image")
TOP_K_HEADER = "x-top-k"
# Signatures of the accepted image formats: bytes starting with one of these are never treated as base64.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=_\-\s]+")
_DATA_URL = re.compile(rb"^data:[^,]{0,200};base64,", re.IGNORECASE)


def extract_image_bytes(row: Any) -> bytes:
    """Return the raw image bytes of one request row, decoding base64 text when needed."""
    if not isinstance(row, Mapping):
        row = {"data": row}
    value = next((row[key] for key in IMAGE_KEYS if row.get(key) is not None), None)
    if isinstance(value, Mapping):  # JSON body parsed by TorchServe
        value = next((value[key] for key in ("data", "image", "b64") if value.get(key) is not None), None)
    if value is None:
        raise InputError(400, "empty_input", "no image in the request (send the bytes as the body)")
    data = _as_bytes(value)
    if data is None:
        raise InputError(400, "invalid_input", f"unsupported input type {type(value).__name__}")
    if not data.strip():
        raise InputError(400, "empty_input", "the request body is empty")
    if isinstance(value, str) or _looks_like_base64(data):
        return decode_base64(data)
    return data


def _as_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return None


def _looks_like_base64(data: bytes) -> bool:
    if data.startswith(_MAGIC):
        return False
    return _DATA_URL.match(data) is not None or _BASE64_TEXT.fullmatch(data) is not None


def decode_base64(text: bytes) -> bytes:
    """Decode standard or URL-safe base64, with or without padding/whitespace/data-URL prefix."""
    text = _DATA_URL.sub(b"", text.strip(), count=1)
    compact = re.sub(rb"\s+", b"", text).translate(bytes.maketrans(b"-_", b"+/"))
    compact += b"=" * (-len(compact) % 4)
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(400, "invalid_input", "the body is neither an image nor valid base64") from exc
    if not decoded:
        raise InputError(400, "empty_input", "the base64 text decodes to no bytes")
    return decoded


def parse_top_k(row: Any, default: int = 5, max_k: int = 100, header: str | None = None) -> int:
    """Read ``top_k`` from the row (form field), a JSON body, or else ``header`` (X-Top-K); validate
    1..max_k."""
    value = None
    if isinstance(row, Mapping):
        value = row.get("top_k")
        body = row.get("body")
        if value is None and isinstance(body, Mapping):
            value = body.get("top_k")
    if value is None:
        value = header
    if value is None:
        return default
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        value = value.strip()
    try:
        if isinstance(value, bool | float):
            raise ValueError
        k = int(value)
    except (TypeError, ValueError):
        raise InputError(
            422, "invalid_top_k", f"top_k must be an integer between 1 and {max_k}, got {value!r}"
        ) from None
    if not 1 <= k <= max_k:
        raise InputError(422, "invalid_top_k", f"top_k must be between 1 and {max_k}, got {k}")
    return k


def header_value(headers: Any, name: str) -> str | None:
    """A request header by case-insensitive name from TorchServe's per-row header dict (which also holds
    per-part entries whose values are dicts: those are skipped)."""
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name and isinstance(value, str):
            return value
    return None
