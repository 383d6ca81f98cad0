"""Archives in the model store, written by the API: an upload becomes a ``*.mar`` file only once it is
whole, durable and a real model archive.

The upload is copied to a hidden temporary file in the store (a leading dot: no archive name can match
it), hashed as it goes, fsynced, then checked: a zip whose every member reads back with its CRC, holding
MAR-INF/MANIFEST.json with a usable model name and version. Only then is it linked under its final name
(``os.link`` fails if the name exists, so two uploads cannot overwrite each other) and the directory
fsynced. A half-written, truncated or hostile file is never visible under a ``.mar`` name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import APIError
from .store import manifest, model_store

CHUNK = 1024 * 1024
MAX_MEMBERS = 10_000


@dataclass(frozen=True)
class StoredArchive:
    file_name: str
    model_name: str
    model_version: str
    sha256: str
    size_bytes: int


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: BinaryIO, target: BinaryIO, limit: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise APIError(413, "payload_too_large", f"The archive exceeds {limit // (1024 * 1024)} MB.")
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest(), size


def _check_zip(path: Path, file_name: str) -> None:
    """Every member readable with a matching CRC; no absurd member count (a zip bomb's first sign)."""
    try:
        with zipfile.ZipFile(path) as mar:
            if len(mar.infolist()) > MAX_MEMBERS:
                raise APIError(422, "invalid_archive", f"{file_name} has too many members.")
            bad = mar.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise APIError(422, "invalid_archive", f"{file_name} is not a valid zip archive.") from exc
    if bad is not None:
        raise APIError(422, "invalid_archive", f"{file_name} is corrupt: member {bad!r} fails its CRC.")


def save(source: BinaryIO, file_name: str, limit: int) -> StoredArchive:
    """Write ``source`` into the store as ``file_name`` (a checked archive name); 409 when it exists."""
    store = model_store()
    if (store / file_name).exists():
        raise APIError(409, "archive_exists", f"{file_name} is already in the model store; delete it first.")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=store)
    except OSError as exc:
        raise APIError(
            503, "model_store_read_only", "The API cannot write to the model store (MODEL_STORE)."
        ) from exc
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            sha256, size = _copy(source, out, limit)
            out.flush()
            os.fsync(out.fileno())
        if not size:
            raise APIError(422, "invalid_archive", "The archive is empty.")
        _check_zip(temp, file_name)
        model_name, model_version = manifest(temp, file_name)
        try:
            os.link(temp, store / file_name)
        except FileExistsError as exc:
            raise APIError(409, "archive_exists", f"{file_name} is already in the model store.") from exc
        _fsync_dir(store)
    finally:
        temp.unlink(missing_ok=True)
    return StoredArchive(file_name, model_name, model_version, sha256, size)


def remove(file_name: str) -> None:
    store = model_store()
    (store / file_name).unlink(missing_ok=True)
    _fsync_dir(store)


def listed() -> list[tuple[str, int]]:
    """Every ``*.mar`` file directly in the store (name, bytes), by name."""
    store = model_store()
    return sorted(
        (p.name, p.stat().st_size) for p in store.glob("*.mar") if p.is_file() and not p.is_symlink()
    )
