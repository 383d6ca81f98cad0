"""``/models/archives``: the model store's archives, uploaded, listed and deleted by admins, every change
audited.

An archive reaches the store only as an authenticated multipart upload, checked before it gets its name
(``archive_files.py``): never from a URL, so TorchServe's register-from-URL path stays closed. An archive
that a registered version still uses cannot be deleted (409).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import current_app

from ..audit.trail import audited, note, set_target
from ..auth.guards import ADMIN_ERRORS, admin_required
from ..auth.identity import current_user
from ..errors import APIError
from ..extensions import db
from ..names import is_archive_name
from . import archive_files
from .catalog import describe, model_names
from .schemas import ArchiveList, ArchiveOut, ArchiveUploadIn
from .tables import ModelArchive, ModelVersionState

bp = APIBlueprint("archives", __name__, tag="Models")


def _uses(file_name: str) -> list[str]:
    """The versions, registered in TorchServe or desired by the database, that use ``file_name``."""
    users = {
        f"{row.model_name}/{row.model_version}"
        for row in db.session.scalars(
            sa.select(ModelVersionState).where(ModelVersionState.archive == file_name)
        )
    }
    for name in model_names():
        try:
            model = describe(name)
        except APIError as exc:
            if exc.status_code != 404:
                raise
            continue
        users |= {f"{name}/{v['version']}" for v in model["versions"] if v["archive"] == file_name}
    return sorted(users)


def _out(file_name: str, size: int, row: ModelArchive | None) -> dict[str, Any]:
    return {
        "file_name": file_name,
        "size_bytes": size,
        "model_name": row.model_name if row else None,
        "model_version": row.model_version if row else None,
        "sha256": row.sha256 if row else None,
        "uploaded_at": row.uploaded_at if row else None,
        "uploaded_by": row.uploaded_by if row else None,
    }


@bp.get("/models/archives")
@bp.doc(summary="List the archives in the model store", security="BearerAuth", responses=ADMIN_ERRORS)
@admin_required
@bp.output(ArchiveList)
def list_archives() -> dict[str, Any]:
    """Every `.mar` file in the store; those uploaded through the API carry their SHA-256 and uploader."""
    rows = {row.file_name: row for row in db.session.scalars(sa.select(ModelArchive))}
    return {"archives": [_out(name, size, rows.get(name)) for name, size in archive_files.listed()]}


@bp.post("/models/archives")
@bp.doc(
    summary="Upload a model archive (.mar) into the model store",
    security="BearerAuth",
    responses={
        **ADMIN_ERRORS,
        409: "An archive of that name is already in the store",
        413: "Over MAX_ARCHIVE_MB",
        503: "The model store is missing or not writable",
        422: "Not a plain .mar name, or not a valid zip with MAR-INF/MANIFEST.json",
    },
)
@admin_required
@audited("model.archive_upload")
@bp.input(ArchiveUploadIn, location="form_and_files")
@bp.output(ArchiveOut, status_code=201)
def upload_archive(form_and_files_data: dict[str, Any]) -> dict[str, Any]:
    """multipart/form-data with one part named `file`; its file name (a plain `*.mar` name) is the
    archive's name in the store. Answers the archive's SHA-256."""
    upload = form_and_files_data["file"]
    file_name = upload.filename or ""
    set_target(file_name[:255])
    if not is_archive_name(file_name):
        raise APIError(
            422, "invalid_archive_name", "The file's name must be a plain .mar name: no path or leading dot."
        )
    limit = int(current_app.config["MAX_ARCHIVE_MB"]) * 1024 * 1024
    stored = archive_files.save(upload.stream, file_name, limit)
    user = current_user()
    row = ModelArchive(
        file_name=stored.file_name,
        model_name=stored.model_name,
        model_version=stored.model_version,
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
        uploaded_by=user.username if user else None,
    )
    db.session.execute(sa.delete(ModelArchive).where(ModelArchive.file_name == file_name))
    db.session.add(row)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        archive_files.remove(file_name)  # no archive without its recorded hash
        raise
    note(sha256=stored.sha256, size_bytes=stored.size_bytes, model=f"{row.model_name}/{row.model_version}")
    return _out(file_name, stored.size_bytes, row)


@bp.delete("/models/archives/<file_name>")
@bp.doc(
    summary="Delete an archive from the model store",
    security="BearerAuth",
    responses={**ADMIN_ERRORS, 404: "No such archive", 409: "A registered version uses it"},
)
@admin_required
@audited("model.archive_delete", target=lambda kwargs: kwargs.get("file_name"))
@bp.output(ArchiveOut)
def delete_archive(file_name: str) -> dict[str, Any]:
    sizes = dict(archive_files.listed()) if is_archive_name(file_name) else {}
    if file_name not in sizes:
        raise APIError(404, "archive_not_found", f"No archive {file_name!r} in the model store.")
    users = _uses(file_name)
    if users:
        raise APIError(
            409,
            "archive_in_use",
            f"{file_name} is used by {', '.join(users)}: unregister those versions first.",
        )
    row = db.session.scalar(sa.select(ModelArchive).where(ModelArchive.file_name == file_name))
    out = _out(file_name, sizes[file_name], row)
    archive_files.remove(file_name)
    db.session.execute(sa.delete(ModelArchive).where(ModelArchive.file_name == file_name))
    db.session.commit()
    return out
