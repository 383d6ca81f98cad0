"""One-shot fill of the model store from the torchserve image: ``model_store_init.py``, run by the
``model-store-init`` service of docker-compose.yml before TorchServe starts. Exit status 0 when done.

TorchServe mounts the store read-only and the api writes admins' uploads into it; this script is the only
other writer. For each archive baked into the image (``BAKED_MODEL_STORE/*.mar``), by what the store holds
under that name:

- nothing: the image's archive is installed;
- the same bytes: nothing to do;
- the bytes this script installed on an earlier run (the record, ``.image-archives.json`` in the store):
  the image's own archive, replaced with this image's, so that an upgraded image serves its archives;
- anything else (an admin's upload, a file ops copied in): kept, with a warning saying how to take the
  image's archive instead.

Every write is atomic: a hidden temporary file in the store, fsynced, then linked under its name (which
fails if an upload took the name meanwhile) or renamed over the image's earlier archive; the record is
written the same way. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

STORE = Path(os.environ.get("MODEL_STORE_DIR", "/home/model-server/model-store"))
BAKED = Path(os.environ.get("BAKED_MODEL_STORE", "/opt/torchserve/baked-model-store"))
RECORD_NAME = ".image-archives.json"
TEMP_PREFIX = ".image-"
CHUNK = 1024 * 1024


def log(message: str) -> None:
    print(f"[model-store-init] {message}", flush=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(store: Path, name: str, data: bytes | Path) -> Path:
    """A durable hidden copy of ``data`` (bytes, or a file to copy) in the store, for a link or a rename."""
    temp = store / f"{TEMP_PREFIX}{name}.{os.getpid()}.tmp"
    with temp.open("wb") as out:
        if isinstance(data, bytes):
            out.write(data)
        else:
            with data.open("rb") as source:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(temp, 0o644)
    return temp


def read_record(store: Path) -> dict[str, str]:
    """Archive name -> SHA-256 of what this script installed; empty when missing or unreadable."""
    try:
        data = json.loads((store / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def write_record(store: Path, record: dict[str, str]) -> None:
    temp = write_temp(store, RECORD_NAME, json.dumps(record, indent=1, sort_keys=True).encode() + b"\n")
    os.replace(temp, store / RECORD_NAME)


def install(source: Path, store: Path, record: dict[str, str]) -> str:
    """Bring one baked archive into the store; returns what happened (a word for the log and the tests)."""
    name, target = source.name, store / source.name
    wanted = sha256(source)
    if not target.exists():
        temp = write_temp(store, name, source)
        try:
            os.link(temp, target)
        except FileExistsError:
            log(f"kept {name}: an upload took the name while it was being installed")
            return "kept"
        finally:
            temp.unlink(missing_ok=True)
        record[name] = wanted
        log(f"installed {name} from the image")
        return "installed"
    current = sha256(target)
    if current == wanted:
        record[name] = wanted
        return "unchanged"
    if record.get(name) == current:
        os.replace(write_temp(store, name, source), target)
        record[name] = wanted
        log(f"replaced {name} with this image's archive (the store held an earlier image's)")
        return "replaced"
    log(
        f"warning: kept {name}: it differs from this image's archive and was not installed by an image "
        "(an admin's upload, or a file copied in). To serve the image's instead, delete it "
        f"(DELETE /models/archives/{name}) and run `docker compose run --rm model-store-init`."
    )
    return "kept"


def main() -> int:
    store, baked = STORE, BAKED
    if not store.is_dir() or not os.access(store, os.W_OK | os.X_OK):
        log(f"error: the model store {store} is missing or not writable by uid {os.getuid()}")
        return 1
    for leftover in store.glob(f"{TEMP_PREFIX}*.tmp"):  # a run killed half-way; only this script makes them
        leftover.unlink(missing_ok=True)
    sources = sorted(p for p in baked.glob("*.mar") if p.is_file())
    if not sources:
        log(f"warning: no archive baked into the image ({baked}); the store is left as it is")
        return 0
    record = read_record(store)
    try:
        for source in sources:
            install(source, store, record)
        write_record(store, record)
        fsync_dir(store)
    except OSError as exc:
        log(f"error: {exc}")
        return 1
    archives = ", ".join(sorted(p.name for p in store.glob("*.mar"))) or "none"
    log(f"done; the store holds: {archives}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
