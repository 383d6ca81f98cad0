"""The client's tests run against the live stack: the API as deployed (scripts/boot.sh, gunicorn, SQLite)
in front of the session's real TorchServe, over HTTP; the CLI as the installed ``mlsvc`` process.

``api`` is one server for the module; each test registers its own user (``user``), so histories never mix.
``image_folder`` writes good images of several formats and bad files beside them.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.control_api.conftest import PASSWORD
from tests.control_api.test_server import boot_server

MLSVC = Path(sys.executable).parent / "mlsvc"
SECRET_KEY = secrets.token_urlsafe(48)
# What a good file's suffix is, and how it is saved.
GOOD_FORMATS = (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("gif", "GIF"), ("bmp", "BMP"))
BAD_KINDS = ("garbage", "empty", "text", "dangling")
# The error each bad kind gets: the API's slug, or the client's when the file cannot be read.
BAD_SLUGS = {
    "garbage": "unsupported_image",
    "empty": "empty_input",
    "text": "unsupported_image",
    "dangling": "unreadable_file",
}


@dataclass
class Api:
    url: str
    database_url: str


@pytest.fixture(scope="module")
def api(torchserve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API booted by scripts/boot.sh on a fresh SQLite database, with a known SECRET_KEY (so a test
    can mint a short-lived token) and no rate limits."""
    home = tmp_path_factory.mktemp("client_api")
    database_url = f"sqlite:///{home / 'api.db'}"
    env = {"SECRET_KEY": SECRET_KEY, "RATE_LIMIT_ENABLED": "false"}
    with boot_server(database_url, torchserve, home, **env) as server:
        yield Api(server.url, database_url)


@dataclass
class User:
    username: str
    password: str


@pytest.fixture
def user(api: Api) -> User:
    """A freshly registered account."""
    account = User(f"user_{secrets.token_hex(4)}", PASSWORD)
    response = requests.post(f"{api.url}/register", json=vars(account), timeout=60)
    assert response.status_code == 201, response.text
    return account


def token_for(api: Api, account: User) -> str:
    response = requests.post(f"{api.url}/token", data=vars(account), timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def mint_token(api: Api, username: str, lifetime: timedelta, tmp_path: Path) -> str:
    """A real token for ``username``, signed with the server's key, that expires after ``lifetime``
    (negative: already expired), made by the app's own issuing code."""
    from flask_jwt_extended import create_access_token

    from control_api.extensions import db
    from control_api.tables import User as UserRow
    from tests.control_api.conftest import make_app

    app = make_app(api.database_url, tmp_path / "mint_instance", SECRET_KEY=SECRET_KEY)
    with app.app_context():
        row = db.session.query(UserRow).filter_by(username=username).one()
        token = create_access_token(
            identity=str(row.id),
            additional_claims={"username": row.username, "ver": row.token_version},
            expires_delta=lifetime,
        )
        db.session.remove()
        db.engine.dispose()
    return token


def own_history_total(api: Api, token: str) -> int:
    response = requests.get(
        f"{api.url}/me/history?per_page=1", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def _image(index: int, fmt: str) -> bytes:
    img = Image.linear_gradient("L").resize((96 + index % 7, 64 + index % 5)).convert("RGB")
    if fmt == "GIF":
        img = img.convert("P")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_images(folder: Path, good: int, bad_per_kind: int = 0) -> tuple[list[Path], dict[Path, str]]:
    """``good`` images cycling through GOOD_FORMATS, in two levels of folders, and ``bad_per_kind`` of
    each BAD_KINDS; returns the good paths and each bad path's expected error slug."""
    good_paths: list[Path] = []
    for i in range(good):
        suffix, fmt = GOOD_FORMATS[i % len(GOOD_FORMATS)]
        path = folder / f"set{i % 3}" / f"img{i:04d}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_image(i, fmt))
        good_paths.append(path)
    bad: dict[Path, str] = {}
    for i in range(bad_per_kind):
        for kind in BAD_KINDS:
            path = folder / "bad" / f"{kind}{i:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "garbage":
                path.write_bytes(secrets.token_bytes(2048))
            elif kind == "empty":
                path.write_bytes(b"")
            elif kind == "text":
                path.write_text("this is not an image\n" * 20)
            else:
                path.symlink_to(folder / "bad" / f"missing{i:03d}.jpg")
            bad[path] = BAD_SLUGS[kind]
    (folder / "notes.txt").write_text("not an image suffix: a directory walk skips me\n")
    return good_paths, bad


def mlsvc(
    *args: str, config_dir: Path, env: dict[str, str] | None = None, timeout: float = 600, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``mlsvc`` with its own config directory."""
    return subprocess.run(
        [str(MLSVC), *args],
        env=mlsvc_env(config_dir, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def mlsvc_env(config_dir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without MLSVC_ variables, plus ``env`` and the config directory."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLSVC_")}
    full_env.update(MLSVC_CONFIG_DIR=str(config_dir), **(env or {}))
    return full_env
