"""docker/model_store_init.py, the model-store-init service's one-shot: run for real, as the container runs
it, on a store and a baked-archive directory in a temporary folder (MODEL_STORE_DIR, BAKED_MODEL_STORE)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "model_store_init.py"
RECORD = ".image-archives.json"


@dataclass
class Dirs:
    store: Path
    baked: Path

    def bake(self, name: str, data: bytes) -> None:
        (self.baked / name).write_bytes(data)

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT)],
            env={**os.environ, "MODEL_STORE_DIR": str(self.store), "BAKED_MODEL_STORE": str(self.baked)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def content(self) -> dict[str, bytes]:
        """Every file in the store except the record, by name."""
        return {p.name: p.read_bytes() for p in self.store.iterdir() if p.name != RECORD}


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    made = Dirs(tmp_path / "store", tmp_path / "baked")
    made.store.mkdir()
    made.baked.mkdir()
    return made


def test_an_empty_store_gets_every_baked_archive(dirs: Dirs) -> None:
    dirs.bake("resnet50.mar", b"v1 archive")
    dirs.bake("resnet50-2.0.mar", b"v2 archive")

    result = dirs.run()

    assert result.returncode == 0, result.stdout + result.stderr
    assert dirs.content() == {"resnet50.mar": b"v1 archive", "resnet50-2.0.mar": b"v2 archive"}
    assert "installed resnet50.mar" in result.stdout
    assert set(json.loads((dirs.store / RECORD).read_text())) == {"resnet50.mar", "resnet50-2.0.mar"}


def test_a_second_run_leaves_the_installed_archives_alone(dirs: Dirs) -> None:
    dirs.bake("resnet50.mar", b"v1 archive")
    assert dirs.run().returncode == 0
    before = (dirs.store / "resnet50.mar").stat()

    result = dirs.run()

    after = (dirs.store / "resnet50.mar").stat()
    assert result.returncode == 0
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "installed" not in result.stdout and "replaced" not in result.stdout


def test_an_upgraded_image_replaces_the_archives_an_earlier_image_installed(dirs: Dirs) -> None:
    dirs.bake("resnet50.mar", b"built by the old image")
    assert dirs.run().returncode == 0
    dirs.bake("resnet50.mar", b"built by the new image")

    result = dirs.run()

    assert result.returncode == 0
    assert dirs.content() == {"resnet50.mar": b"built by the new image"}
    assert "replaced resnet50.mar" in result.stdout
    # The record now names the new bytes: the next image replaces them in turn.
    dirs.bake("resnet50.mar", b"built by the next image")
    assert dirs.run().returncode == 0
    assert dirs.content() == {"resnet50.mar": b"built by the next image"}


def test_an_admins_archive_of_the_same_name_is_kept(dirs: Dirs) -> None:
    dirs.bake("resnet50.mar", b"the image's archive")
    assert dirs.run().returncode == 0
    # The admin deletes the image's archive and uploads their own under its name.
    (dirs.store / "resnet50.mar").unlink()
    (dirs.store / "resnet50.mar").write_bytes(b"the admin's archive")
    dirs.bake("resnet50.mar", b"an upgraded image's archive")

    result = dirs.run()

    assert result.returncode == 0
    assert dirs.content() == {"resnet50.mar": b"the admin's archive"}
    assert "warning: kept resnet50.mar" in result.stdout
    assert "DELETE /models/archives/resnet50.mar" in result.stdout


def test_a_file_that_no_image_installed_is_kept(dirs: Dirs) -> None:
    (dirs.store / "resnet50.mar").write_bytes(b"copied in by ops")
    dirs.bake("resnet50.mar", b"the image's archive")

    result = dirs.run()

    assert result.returncode == 0
    assert dirs.content() == {"resnet50.mar": b"copied in by ops"}
    assert "warning: kept resnet50.mar" in result.stdout


def test_an_identical_file_is_adopted_and_later_upgraded(dirs: Dirs) -> None:
    (dirs.store / "resnet50.mar").write_bytes(b"same bytes")
    dirs.bake("resnet50.mar", b"same bytes")
    first = dirs.run()
    dirs.bake("resnet50.mar", b"newer bytes")

    second = dirs.run()

    assert first.returncode == 0 and "kept" not in first.stdout
    assert second.returncode == 0
    assert dirs.content() == {"resnet50.mar": b"newer bytes"}


def test_other_archives_and_a_deleted_baked_one(dirs: Dirs) -> None:
    dirs.bake("resnet50.mar", b"the image's archive")
    assert dirs.run().returncode == 0
    (dirs.store / "resnet50.mar").unlink()
    (dirs.store / "custom.mar").write_bytes(b"an upload under its own name")

    result = dirs.run()

    assert result.returncode == 0
    assert dirs.content() == {
        "resnet50.mar": b"the image's archive",
        "custom.mar": b"an upload under its own name",
    }


def test_leftovers_of_a_killed_run_go_but_an_upload_in_progress_stays(dirs: Dirs) -> None:
    dirs.bake("resnet50.mar", b"the image's archive")
    (dirs.store / ".image-resnet50.mar.123.tmp").write_bytes(b"half")
    (dirs.store / ".upload-abc.tmp").write_bytes(b"the api's upload being written")

    result = dirs.run()

    assert result.returncode == 0
    assert dirs.content() == {
        "resnet50.mar": b"the image's archive",
        ".upload-abc.tmp": b"the api's upload being written",
    }


def test_an_unreadable_record_counts_as_none(dirs: Dirs) -> None:
    (dirs.store / RECORD).write_text("{not json")
    (dirs.store / "resnet50.mar").write_bytes(b"unknown origin")
    dirs.bake("resnet50.mar", b"the image's archive")

    result = dirs.run()

    assert result.returncode == 0
    assert dirs.content() == {"resnet50.mar": b"unknown origin"}
    assert json.loads((dirs.store / RECORD).read_text()) == {}


def test_a_missing_store_fails_the_run(dirs: Dirs) -> None:
    dirs.bake("resnet50.mar", b"the image's archive")
    dirs.store.rmdir()

    result = dirs.run()

    assert result.returncode == 1
    assert "error: the model store" in result.stdout


def test_an_image_without_archives_leaves_the_store_alone(dirs: Dirs) -> None:
    (dirs.store / "custom.mar").write_bytes(b"an upload")

    result = dirs.run()

    assert result.returncode == 0
    assert "no archive baked into the image" in result.stdout
    assert dirs.content() == {"custom.mar": b"an upload"}
