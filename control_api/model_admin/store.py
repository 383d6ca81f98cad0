"""The model store: the ``*.mar`` archives TorchServe serves, as the API sees them.

``archive`` must be a plain ``*.mar`` file name present in ``MODEL_STORE`` (the same directory TorchServe
serves): no URL (TorchServe would download it), no path, nothing outside the store. The archive's
manifest is read first, so the audit row names the model and version even when TorchServe then
refuses it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from flask import current_app

from ..errors import APIError
from ..names import is_archive_name, is_name

MAX_LISTED_ARCHIVES = 20


def model_store() -> Path:
    """The model store's directory; 503 when the API cannot see it."""
    store = Path(current_app.config["MODEL_STORE"]).resolve()
    if not store.is_dir():
        raise APIError(
            503,
            "model_store_unavailable",
            "The model store is not available to the API (MODEL_STORE must be the directory TorchServe "
            "serves its archives from).",
        )
    return store


def archive_path(archive: str) -> Path:
    """The archive's path in the store; 422 when there is no such plain file directly in it."""
    if not is_archive_name(archive):  # the schema checked it already; this keeps the guard local
        raise APIError(422, "invalid_archive_name", "A .mar file name in the model store, nothing else.")
    store = model_store()
    path = (store / archive).resolve()
    if path.parent != store or not path.is_file():
        available = sorted(p.name for p in store.glob("*.mar") if p.is_file())[:MAX_LISTED_ARCHIVES]
        raise APIError(
            422,
            "archive_not_found",
            f"No archive {archive!r} in the model store. Available: {', '.join(available) or 'none'}.",
        )
    return path


def manifest(path: Path, shown_as: str | None = None) -> tuple[str, str]:
    """(model name, version) from the archive's MAR-INF/MANIFEST.json; ``shown_as`` names it in errors."""
    shown = shown_as or path.name
    try:
        with zipfile.ZipFile(path) as mar:
            data = json.loads(mar.read("MAR-INF/MANIFEST.json"))
        model = data["model"]
        name, version = str(model["modelName"]), str(model["modelVersion"])
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError, OSError) as exc:
        raise APIError(
            422, "invalid_archive", f"{shown} is not a model archive with a readable MAR-INF/MANIFEST.json."
        ) from exc
    if not is_name(name) or not is_name(version):
        raise APIError(422, "invalid_archive", f"{shown} names its model or version unusably.")
    return name, version
