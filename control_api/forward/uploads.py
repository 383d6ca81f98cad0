"""Reading /forward's uploads: into memory, once, and only after the request passed its checks.

``UploadRequest`` keeps uploaded files in memory and reads a body of known length in one call;
``refuse_oversized_body`` refuses a too-large declared body before any of it is read; ``read_uploads``
turns the parsed form into ``Upload``s. The size limits themselves are body_limits.py's.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, BinaryIO, TypeVar, cast

from flask import Request, current_app, request
from werkzeug.exceptions import ClientDisconnected

from ..body_limits import STREAMED_ENDPOINTS, refuse_long_url, refuse_oversized_upload
from ..errors import APIError
from .history_entry import current_entry
from .multipart_form import InMemoryFormDataParser

F = TypeVar("F", bound=Callable[..., Any])


class UploadRequest(Request):
    """Uploaded files stay in memory (``io.BytesIO``) instead of werkzeug's temporary file past 500 KB.

    A 12 MP photo then costs no file creation, disk write and read back, and goes upstream as the same
    buffer (``Upload.of``). Memory is bounded: a request body is at most MAX_CONTENT_LENGTH, so a
    process holds at most that times its threads. The body, read in one piece, is parsed in one piece
    (``multipart_form``).
    """

    form_data_parser_class = InMemoryFormDataParser

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> BinaryIO:
        if self.endpoint in STREAMED_ENDPOINTS:  # model archives: to disk as they arrive
            spooled = super()._get_file_stream(total_content_length, content_type, filename, content_length)
            return cast(BinaryIO, spooled)
        return io.BytesIO()

    def _get_stream_for_parsing(self) -> BinaryIO:
        """A body of known length, read in one call before parsing.

        werkzeug's parser pulls 64 KiB at a time; under gunicorn each pull re-buffered the rest of a 1 MiB
        recv(), which made reading a 12 MP upload cost more CPU than parsing it. Reached only once the
        view parses the form: after authentication and the size check (``refuse_oversized_body``), so an
        anonymous or oversized upload is never read. Bodies werkzeug must cut off (no length, or over
        the limit) take its own path.
        """
        length = self.content_length
        limit = self.max_content_length
        streamed = self.endpoint in STREAMED_ENDPOINTS
        if not length or (limit is not None and length > limit) or hasattr(self, "_cached_data") or streamed:
            return super()._get_stream_for_parsing()  # type: ignore[return-value]
        source = self.environ["wsgi.input"]
        pieces, missing = [], length
        while missing > 0:
            piece = source.read(missing)
            if not piece:
                raise ClientDisconnected()  # 400: the client sent less than its Content-Length
            pieces.append(piece)
            missing -= len(piece)
        return io.BytesIO(pieces[0] if len(pieces) == 1 else b"".join(pieces))


@dataclass(frozen=True)
class Upload:
    """One uploaded file's bytes."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @classmethod
    def of(cls, stream: BinaryIO) -> Upload:
        # UploadRequest's BytesIO hands its buffer over without a copy.
        return cls(stream.getvalue() if isinstance(stream, io.BytesIO) else stream.read())


def refuse_oversized_body(f: F) -> F:
    """414 for a URL over the limit; 413 from the declared Content-Length, before a byte of the body is
    read."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        refuse_long_url()
        length = request.content_length
        if length is not None:
            try:
                refuse_oversized_upload(length, whole_body=True)
            except APIError:
                current_entry().input_size = length  # the history row shows what was refused
                raise
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def read_uploads(form: dict[str, Any]) -> list[Upload]:
    """The form's files, in upload order: 400 without any, 413 for too many or too much."""
    files = form.get("file") or []
    if not files:
        raise APIError(400, "no_file", "Send one or more images as multipart/form-data parts named 'file'.")
    most = current_app.config["MAX_FILES_PER_REQUEST"]
    if len(files) > most:
        raise APIError(413, "too_many_files", f"At most {most} files per request.")
    uploads = [Upload.of(storage.stream) for storage in files]
    entry = current_entry()
    entry.input_size = sum(upload.size for upload in uploads)
    refuse_oversized_upload(entry.input_size, whole_body=False)
    entry.file_count = len(uploads)
    return uploads
