"""What ``mlsvc classify PATH...`` sends: files as named, directories walked recursively for image files,
glob patterns expanded (``**`` included), and ``-`` for one image read from standard input."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

# What a directory walk picks up (named files are always sent, whatever their suffix).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
STDIN = "-"
GLOB_CHARS = frozenset("*?[")


def expand(args: tuple[str, ...] | list[str]) -> list[str]:
    """The inputs ``args`` name, in order, each once: files, directory contents (sorted, hidden files and
    folders skipped), glob matches (sorted). A path that does not exist stays in the list: reading it fails
    later, and that file gets its error line."""
    seen: set[str] = set()
    out: list[str] = []
    for arg in args:
        for source in _one(arg):
            if source not in seen:
                seen.add(source)
                out.append(source)
    return out


def _one(arg: str) -> Iterator[str]:
    if arg == STDIN:
        yield STDIN
    elif Path(arg).is_dir():
        yield from _walk(Path(arg))
    elif not Path(arg).exists() and GLOB_CHARS & set(arg):
        for match in sorted(glob.glob(arg, recursive=True)):
            yield from _walk(Path(match)) if Path(match).is_dir() else [match]
    else:
        yield arg


def _walk(root: Path) -> Iterator[str]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield os.path.join(folder, name)
