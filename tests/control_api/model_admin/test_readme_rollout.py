"""README's "Rolling out a new model version": its curl commands, run as written against the API booted by
scripts/boot.sh in front of a TorchServe of its own (the store holds 1.0 only; 2.0 arrives by upload).

The archive is the session's 2.0 archive rather than a fresh build (same builder, same flags), and the
versions are the untrained archives' names. Promote and rollback are alternatives: the commands run in the
README's order up to rollback, then the canary is set again and promoted."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.control_api.model_admin.conftest import V1, V2
from tests.control_api.test_server import _token, boot_server

ROOT = Path(__file__).resolve().parents[3]
SECTION = "### Rolling out a new model version"


def readme_commands() -> list[str]:
    """The section's bash block as commands (continuation lines joined, comments dropped)."""
    text = (ROOT / "README.md").read_text()
    block = text.split(SECTION, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands, current = [], ""
    for line in block.splitlines():
        if line.startswith("#") and not current:
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\") and not _open_quote(current):
            commands.append(current.strip())
            current = ""
        elif not line.endswith("\\"):
            current += "\n"
    return [c for c in commands if c]


def _open_quote(text: str) -> bool:
    return text.count("'") % 2 == 1


def test_the_readme_rollout_runs(
    torchserve_model_store_v2: Path, start_extra_torchserve: Callable[..., Any], tmp_path: Path
) -> None:
    store, built = tmp_path / "store", tmp_path / "mar"
    store.mkdir()
    built.mkdir()
    os.link(torchserve_model_store_v2 / "resnet50.mar", store / "resnet50.mar")
    shutil.copy(torchserve_model_store_v2 / "resnet50-2.0.mar", built / "resnet50-2.0.mar")
    ts = start_extra_torchserve(store)
    commands = readme_commands()
    assert [c.split()[0] for c in commands] == ['H="Authorization:', ".venv/bin/python"] + ["curl"] * 8
    with boot_server(f"sqlite:///{tmp_path / 'api.db'}", ts, tmp_path, MODEL_STORE=str(store)) as server:
        env = {**os.environ, "ADMIN_JWT": _token(server, "root")}

        def run(command: str) -> str:
            command = command.replace("http://127.0.0.1:8000", server.url).replace("/tmp/mar", str(built))
            command = re.sub(r'"1\.0"|a=1\.0', lambda m: m.group(0).replace("1.0", V1), command)
            command = re.sub(r'"2\.0"|b=2\.0', lambda m: m.group(0).replace("2.0", V2), command)
            done = subprocess.run(
                ["bash", "-c", f"{commands[0]}\n{command}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            return done.stdout

        upload, listing, register, canary, compare, policy, promote, rollback = commands[2:]
        outputs = [
            run(c) for c in (upload, listing, register, canary, compare, policy, rollback, canary, promote)
        ]
        admin = {"Authorization": f"Bearer {env['ADMIN_JWT']}"}
        model = requests.get(f"{server.url}/models/resnet50", headers=admin, timeout=60).json()

    assert '"sha256"' in outputs[0] and "resnet50-2.0.mar" in outputs[1]
    assert '"state":"rolled_back"' in outputs[6].replace(" ", "")
    assert model["default_version"] == V2 and model["rollout"] is None
