"""Where ``mlsvc login`` keeps the API's URL, the username and the token: ``config.json`` in the user's
config directory (``click.get_app_dir``: ``~/.config/mlsvc`` on Linux, or ``$MLSVC_CONFIG_DIR``), readable
by its owner only (mode 0600, in a 0700 directory). The password is never stored."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import click

APP_NAME = "mlsvc"
DEFAULT_URL = "http://127.0.0.1:8000"


def config_dir() -> Path:
    override = os.environ.get("MLSVC_CONFIG_DIR")
    return Path(override) if override else Path(click.get_app_dir(APP_NAME))


def config_path() -> Path:
    return config_dir() / "config.json"


@dataclass
class Stored:
    """What ``login`` stored (empty strings when nothing is)."""

    url: str = ""
    username: str = ""
    token: str = ""


def load() -> Stored:
    """The stored login; an absent or unreadable file is an empty one."""
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return Stored()
    if not isinstance(data, dict):
        return Stored()
    return Stored(**{key: str(data.get(key) or "") for key in ("url", "username", "token")})


def save(stored: Stored) -> Path:
    """Write ``stored`` atomically, created with mode 0600 (the token is a credential)."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(stored), out, indent=1)
    os.chmod(tmp, 0o600)  # in case the file existed with wider permissions
    os.replace(tmp, path)
    return path


def forget() -> bool:
    """Delete the stored login; whether there was one."""
    with contextlib.suppress(FileNotFoundError):
        config_path().unlink()
        return True
    return False
