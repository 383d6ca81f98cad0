"""Parsing a multipart body that is already in memory, with the ``multipart`` library.

werkzeug's parser is written for a stream: it pulls 64 KiB at a time and copies every piece into its
buffer, into an event and into the file object, which on a 12 MP photo is several copies of the image
and most of the request's CPU time. ``UploadRequest`` already holds /forward's body as one bytes
object, so ``multipart``'s push parser takes it in one call and hands each part's content back as one
slice: a single copy, then the same bytes go to TorchServe.

What werkzeug's parser guarantees holds here too: more than ``max_form_parts`` parts or a text field
over ``max_form_memory_size`` is a 413. Any body this parser does not take whole (a preamble before the
first boundary, a missing end, a malformed part) goes to werkzeug's parser after all, which accepts what
it accepts and parses the rest as an empty form ("silent" mode: /forward then answers 400). So do bodies
that are not held in memory (the streamed endpoints, bodies of unknown length).
"""

from __future__ import annotations

import io
from typing import IO, Any

import multipart
from werkzeug.datastructures import FileStorage, Headers, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

# A part's header block: Content-Disposition and Content-Type, and room for a few more.
MAX_PART_HEADERS = 16


class InMemoryFormDataParser(FormDataParser):
    """werkzeug's ``FormDataParser``, with multipart bodies held in a ``BytesIO`` parsed in one piece."""

    def _parse_multipart(
        self, stream: IO[bytes], mimetype: str, content_length: int | None, options: dict[str, str]
    ) -> tuple[IO[bytes], MultiDict[str, Any], MultiDict[str, FileStorage]]:
        if not isinstance(stream, io.BytesIO):
            return super()._parse_multipart(stream, mimetype, content_length, options)
        boundary = options.get("boundary", "")
        if not boundary:
            raise ValueError("Missing boundary")
        body = stream.getvalue()  # the BytesIO's own buffer: no copy
        parsed = self._parts(body, boundary)
        if parsed is None:  # not a body this parser takes whole: werkzeug's parser decides
            return super()._parse_multipart(io.BytesIO(body), mimetype, content_length, options)
        return (stream, *parsed)

    def _parts(
        self, body: bytes, boundary: str
    ) -> tuple[MultiDict[str, Any], MultiDict[str, FileStorage]] | None:
        """The body's fields and files; None for a body that is not complete, well-formed multipart
        (a preamble before the first boundary, a missing end, a malformed part header)."""
        parser = multipart.PushMultipartParser(
            boundary,
            content_length=len(body),
            max_header_count=MAX_PART_HEADERS,
            max_segment_count=self.max_form_parts if self.max_form_parts is not None else float("inf"),
        )
        try:
            events = list(parser.parse(body))
            parser.close()  # a ParserError unless the closing boundary was reached
        except multipart.ParserLimitReached as exc:
            raise RequestEntityTooLarge(
                "The multipart body has too many parts or too large a part header."
            ) from exc
        except multipart.MultipartError:
            return None
        form: list[tuple[str, str]] = []
        files: list[tuple[str, FileStorage]] = []
        segment: multipart.MultipartSegment | None = None
        chunks: list[bytes] = []
        for event in events:
            if isinstance(event, multipart.MultipartSegment):
                segment, chunks = event, []
            elif event is None and segment is not None:
                self._add(form, files, segment, chunks[0] if len(chunks) == 1 else b"".join(chunks))
                segment = None
            elif event:
                chunks.append(event)
        return self.cls(form), self.cls(files)

    def _add(
        self,
        form: list[tuple[str, str]],
        files: list[tuple[str, FileStorage]],
        segment: multipart.MultipartSegment,
        data: bytes,
    ) -> None:
        name = segment.name or ""
        if segment.filename is not None:
            headers = Headers(segment.headerlist)
            files.append((name, FileStorage(io.BytesIO(data), segment.filename, name, headers=headers)))
            return
        limit = self.max_form_memory_size
        if limit is not None and len(data) > limit:
            raise RequestEntityTooLarge("A form field is over the size limit.")
        form.append((name, data.decode(segment.charset or "utf-8", "replace")))
