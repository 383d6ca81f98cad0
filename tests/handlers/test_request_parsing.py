"""classifier_request: the image bytes (raw, multipart, base64, JSON) and top_k (field, JSON, header)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from PIL import Image

from classifier_request import extract_image_bytes, header_value, parse_top_k
from tests.handlers.test_image_pipeline import encode, rejected


def test_extract_raw_multipart_and_base64_inputs() -> None:
    png = encode(Image.new("RGB", (4, 4)), "PNG")
    b64 = base64.b64encode(png)
    assert extract_image_bytes({"body": png}) == png
    assert extract_image_bytes({"data": bytearray(png)}) == png
    assert extract_image_bytes({"file": png, "top_k": b"3"}) == png
    assert extract_image_bytes({"body": b64}) == png  # base64 sent as bytes
    assert extract_image_bytes({"data": b64.decode()}) == png  # base64 as text/plain (str)
    assert extract_image_bytes({"body": b"data:image/png;base64," + b64}) == png
    wrapped = b"\n".join(b64[i : i + 16] for i in range(0, len(b64), 16)) + b"\n"
    assert extract_image_bytes({"body": wrapped}) == png  # MIME line breaks
    assert extract_image_bytes({"body": {"data": b64.decode()}}) == png  # JSON body
    urlsafe = base64.urlsafe_b64encode(png).rstrip(b"=")
    assert extract_image_bytes({"body": urlsafe}) == png


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
    assert rejected(extract_image_bytes, row) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 5), (b"3", 3), (" 7 ", 7), (10, 10), ("100", 100), (b"1", 1)],
)
def test_top_k_accepted(value: Any, expected: int) -> None:
    row = {} if value is None else {"top_k": value}
    assert parse_top_k(row, default=5, max_k=100) == expected


@pytest.mark.parametrize("value", [b"0", "101", "-1", "abc", b"", 2.5, True, "3.0"])
def test_top_k_refused(value: Any) -> None:
    assert rejected(parse_top_k, {"top_k": value}, 5, 100) == (422, "invalid_top_k")


def test_top_k_from_json_body() -> None:
    assert parse_top_k({"body": {"data": "x", "top_k": 2}}) == 2


def test_top_k_header_applies_when_the_row_has_none() -> None:
    assert parse_top_k({"body": b"jpeg"}, 5, 100, header="3") == 3
    assert parse_top_k({"top_k": b"2"}, 5, 100, header="3") == 2  # a form field wins
    assert rejected(parse_top_k, {"body": b"jpeg"}, 5, 100, "0") == (422, "invalid_top_k")


def test_header_lookup_ignores_case_and_per_part_entries() -> None:
    headers = {"body": {"content-type": "image/jpeg"}, "X-Top-K": "4", "x-request-id": "r"}
    assert header_value(headers, "x-top-k") == "4"
    assert header_value({"x-top-k": {"content-type": "text/plain"}}, "x-top-k") is None
    assert header_value(None, "x-top-k") is None
