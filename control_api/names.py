"""What a username, a model or version name, an archive name and a request ID may look like.

The schemas validate input with these patterns, and code that receives a name some other way (a URL
segment, a CLI argument, a header, a manifest) checks it with the same ``is_*`` functions, so the two
can never disagree.
"""

from __future__ import annotations

import re

USERNAME_RE = r"\A[A-Za-z0-9_.-]{3,64}\Z"
# Model and version names go into TorchServe's URL path: no slashes, and no leading dot ("..").
NAME_RE = r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"
# A plain file name in the model store: no path, no scheme, no leading dot.
ARCHIVE_RE = r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,250}\.mar\Z"
# Request IDs end up in logs, a database column and TorchServe's request headers.
REQUEST_ID_RE = r"\A[A-Za-z0-9._:-]{1,64}\Z"

_USERNAME = re.compile(USERNAME_RE)
_NAME = re.compile(NAME_RE)
_ARCHIVE = re.compile(ARCHIVE_RE)
_REQUEST_ID = re.compile(REQUEST_ID_RE)


def is_username(value: str) -> bool:
    """3-64 characters of letters, digits, '_', '.' and '-'."""
    return bool(_USERNAME.match(value))


def is_name(value: str) -> bool:
    """A usable model or version name."""
    return bool(_NAME.match(value))


def is_archive_name(value: str) -> bool:
    """A plain ``*.mar`` file name."""
    return bool(_ARCHIVE.match(value))


def is_request_id(value: str) -> bool:
    return bool(_REQUEST_ID.match(value))
