"""Packaging a staged build into a TorchServe .mar with model_archiver.

The archive holds the model definition, its serialized weights, OUR handler (``HANDLER_FILE``) with its
sibling modules (``HANDLER_FILES``), and the extra files the builder staged (labels, build_info.json, an
ahead-of-time compiled package).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

HANDLERS_DIR = Path(__file__).resolve().parent
HANDLER_FILE = HANDLERS_DIR / "classifier_handler.py"
# The handler and the sibling modules it imports; TorchServe finds them next to it in the model directory.
HANDLER_FILES = tuple(sorted(HANDLERS_DIR.glob("classifier_*.py")))


@contextlib.contextmanager
def private_tempdir(path: Path) -> Iterator[None]:
    """model_archiver stages files in <tempdir>/<model name> and deletes it first: give it our own tempdir
    so two builds of the same model (make archive during a test run) cannot clobber each other."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = previous


def package(
    work: Path, args: argparse.Namespace, model_file: Path, version: str, serialized: Path, extra: list[Path]
) -> Path:
    """Run model_archiver on the staged files; returns the .mar inside ``work``."""
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import package_model
    from model_archiver.model_packaging_utils import ModelExportUtils

    out_dir = work / "out"
    out_dir.mkdir()
    config = ModelArchiverConfig(
        model_name=args.model_name,
        handler=str(HANDLER_FILE),
        version=version,
        serialized_file=str(serialized),
        model_file=str(model_file),
        extra_files=",".join(
            [str(work / n) for n in ("index_to_name.json", "build_info.json")]
            + [str(path) for path in HANDLER_FILES if path != HANDLER_FILE]
            + [str(path) for path in extra]
        ),
        export_path=str(out_dir),
        # Stored, not deflated: weights barely compress, and deflating them costs seconds per build.
        archive_format="zip-store",
        config_file=str(work / "model-config.yaml"),
    )
    staging = work / "staging"
    staging.mkdir()
    with private_tempdir(staging):
        package_model(config, manifest=ModelExportUtils.generate_manifest_json(config))
    return out_dir / f"{args.model_name}.mar"
