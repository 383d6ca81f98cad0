"""README.md's "Where things are" map stays true: every path it names exists, and every package and
module directly under control_api/ is on it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## Where things are"


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(HEADING) + len(HEADING)
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else len(text)]


def named_paths() -> set[str]:
    """The backticked repository paths: a slash inside, or a file name; URL paths (/models) excluded."""
    quoted = re.findall(r"`([^`\s]+)`", section())
    return {q for q in quoted if not q.startswith("/") and ("/" in q or re.search(r"\.(py|yml|sh)$", q))}


def test_the_map_names_paths() -> None:
    assert {"control_api/", "tests/", "docker-compose.yml"} <= named_paths()


def test_every_named_path_exists() -> None:
    missing = sorted(path for path in named_paths() if not (ROOT / path).exists())
    assert not missing


def test_every_control_api_package_and_module_is_named() -> None:
    package = ROOT / "control_api"
    expected = {f"control_api/{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    expected |= {f"control_api/{p.name}" for p in package.glob("*.py")}
    assert len(expected) > 10
    unnamed = sorted(expected - named_paths())
    assert not unnamed


def test_every_top_level_package_is_named() -> None:
    packages = {f"{p.name}/" for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    assert {"control_api/", "handlers/", "bench/"} <= packages
    unnamed = sorted(packages - named_paths())
    assert not unnamed
