"""/forward's in-memory multipart parsing answers what werkzeug's own parser answers, within its limits.

Bodies are encoded as HTTP clients encode them (urllib3's encoder, under requests and the SDK), and as
werkzeug's test client does (a line break before the first boundary).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from urllib3 import encode_multipart_formdata
from werkzeug import formparser
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from control_api.forward.uploads import UploadRequest

PHOTO = bytes(range(256)) * 4096  # 1 MiB, every byte value, "\r\n--" included
FIELDS: list[tuple[str, Any]] = [
    ("file", ("a.jpg", PHOTO, "image/jpeg")),
    ("file", ("b.png", b"second", "image/png")),
    ("file", ("empty.jpg", b"", "image/jpeg")),
    ("top_k", "3"),
    ("model", "résnet"),
]


def environ(fields: list[tuple[str, Any]]) -> dict[str, Any]:
    body, content_type = encode_multipart_formdata(fields)
    builder = EnvironBuilder(method="POST", input_stream=io.BytesIO(body), content_type=content_type)
    env = builder.get_environ()
    env["CONTENT_LENGTH"] = str(len(body))
    return env


@pytest.fixture
def werkzeug_parser_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls to werkzeug's own multipart parser."""
    calls: list[int] = []
    original = formparser.MultiPartParser.parse

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(formparser.MultiPartParser, "parse", counted)
    return calls


def test_a_clients_body_is_parsed_whole_into_what_werkzeug_parses(werkzeug_parser_calls: list[int]) -> None:
    theirs = Request(environ(FIELDS))
    expected = (
        theirs.form.to_dict(flat=False),
        [(f.filename, f.mimetype, f.read()) for f in theirs.files.getlist("file")],
    )
    werkzeug_parser_calls.clear()

    ours = UploadRequest(environ(FIELDS))

    assert (
        ours.form.to_dict(flat=False),
        [(f.filename, f.mimetype, f.read()) for f in ours.files.getlist("file")],
    ) == expected
    assert werkzeug_parser_calls == []


def test_an_uploaded_file_keeps_its_bytes_in_memory() -> None:
    request = UploadRequest(environ(FIELDS))

    stream = request.files["file"].stream

    assert isinstance(stream, io.BytesIO)
    assert stream.getvalue() == PHOTO


def test_a_body_with_a_preamble_is_parsed_too(werkzeug_parser_calls: list[int]) -> None:
    builder = EnvironBuilder(method="POST", data={"file": (io.BytesIO(b"abc"), "x.png"), "top_k": "2"})

    request = UploadRequest(builder.get_environ())

    assert request.files["file"].read() == b"abc" and request.form["top_k"] == "2"
    assert werkzeug_parser_calls == []


def test_a_body_without_its_closing_boundary_goes_to_werkzeugs_parser(
    werkzeug_parser_calls: list[int],
) -> None:
    body, content_type = encode_multipart_formdata([("file", ("a.jpg", b"abc", "image/jpeg"))])
    cut = body[: body.rindex(b"--")]
    builder = EnvironBuilder(method="POST", input_stream=io.BytesIO(cut), content_type=content_type)
    env = builder.get_environ()
    env["CONTENT_LENGTH"] = str(len(cut))

    request = UploadRequest(env)

    assert not request.files
    assert werkzeug_parser_calls == [1]


def test_more_parts_than_allowed_is_too_large() -> None:
    request = UploadRequest(environ([("field", str(n)) for n in range(20)]))
    request.max_form_parts = 10

    with pytest.raises(RequestEntityTooLarge):
        _ = request.form


def test_a_text_field_over_the_memory_limit_is_too_large() -> None:
    request = UploadRequest(environ([("note", "x" * 2000)]))
    request.max_form_memory_size = 1000

    with pytest.raises(RequestEntityTooLarge):
        _ = request.form


@pytest.mark.parametrize(
    "body",
    [
        b"not multipart at all",
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\ncut off',
        b"--b\r\nno headers end",
    ],
)
def test_a_malformed_body_parses_as_an_empty_form(body: bytes) -> None:
    builder = EnvironBuilder(
        method="POST", input_stream=io.BytesIO(body), content_type="multipart/form-data; boundary=b"
    )
    env = builder.get_environ()
    env["CONTENT_LENGTH"] = str(len(body))

    request = UploadRequest(env)

    assert not request.files and not request.form


def test_a_body_not_held_in_memory_goes_to_werkzeugs_parser(werkzeug_parser_calls: list[int]) -> None:
    parser = UploadRequest.form_data_parser_class(lambda *args, **kwargs: io.BytesIO())
    stream = io.BufferedReader(
        io.BytesIO(b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\n')
    )

    _, fields, _ = parser.parse(stream, "multipart/form-data", None, {"boundary": "b"})

    assert fields.to_dict() == {"a": "1"}
    assert werkzeug_parser_calls == [1]
