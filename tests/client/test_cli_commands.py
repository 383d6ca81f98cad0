"""``mlsvc`` besides classify: login's stored token, history, usage, models, stats, --help everywhere,
and the documented exit codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mlservice_client import exit_codes
from mlservice_client.cli import cli
from tests.client.conftest import Api, User, make_images, mlsvc
from tests.control_api.conftest import PASSWORD

COMMANDS = sorted(cli.commands)
# Every command line that has a --help: each command, and each subcommand of a group.
COMMAND_PATHS = [
    [name, *([sub] if sub else [])]
    for name in COMMANDS
    for sub in (sorted(getattr(cli.commands[name], "commands", {})) or [""])
]


def login(api: Api, username: str, password: str, config_dir: Path) -> int:
    done = mlsvc("--url", api.url, "login", "--username", username,
                 config_dir=config_dir, env={"MLSVC_PASSWORD": password})  # fmt: skip
    return done.returncode


def test_login_stores_the_token_for_its_owner_only(api: Api, user: User, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"

    code = login(api, user.username, user.password, config_dir)
    me = mlsvc("history", "--json", config_dir=config_dir)

    assert code == exit_codes.OK
    stored = config_dir / "config.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    data = json.loads(stored.read_text())
    assert data["url"] == api.url and data["username"] == user.username and data["token"]
    assert "password" not in stored.read_text() and user.password not in stored.read_text()
    assert me.returncode == 0 and json.loads(me.stdout)["total"] == 0


def test_history_and_usage_show_your_own_requests(api: Api, user: User, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    login(api, user.username, user.password, config_dir)
    good, _ = make_images(tmp_path / "photos", good=3)
    mlsvc("classify", *map(str, good), config_dir=config_dir)

    history = mlsvc("history", config_dir=config_dir)
    history_json = mlsvc("history", "--json", "--per-page", "2", config_dir=config_dir)
    usage = mlsvc("usage", "--json", config_dir=config_dir)
    usage_table = mlsvc("usage", config_dir=config_dir)

    assert history.returncode == 0, history.stderr
    assert history.stdout.splitlines()[-1] == "page 1 of 1, 3 in all"
    page = json.loads(history_json.stdout)
    assert page["total"] == 3 and len(page["items"]) == 2
    assert {item["username"] for item in page["items"]} == {user.username}
    assert json.loads(usage.stdout)["total"] == {"requests": 3, "images": 3, "errors": 0}
    assert usage_table.stdout.splitlines()[-1].split() == ["total", "3", "3", "0"]


def test_models_and_stats_for_an_admin(api: Api, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    login(api, "root", PASSWORD, config_dir)  # boot.sh created it from ADMIN_USERNAME

    models = mlsvc("models", config_dir=config_dir)
    models_json = mlsvc("models", "--json", config_dir=config_dir)
    stats = mlsvc("stats", config_dir=config_dir)

    assert models.returncode == 0, models.stderr
    assert models.stdout.splitlines()[1].split()[:2] == ["resnet50", "1.0-untrained*"]
    assert [m["name"] for m in json.loads(models_json.stdout)] == ["resnet50"]
    assert stats.returncode == 0, stats.stderr
    assert "total_requests" in json.loads(stats.stdout)


def test_exit_codes(api: Api, user: User, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    good, _ = make_images(tmp_path / "photos", good=1)

    not_logged_in = mlsvc("--url", api.url, "classify", str(good[0]), config_dir=config_dir)
    wrong_password = login(api, user.username, "not the password", config_dir)
    bad_option = mlsvc("classify", "--jobs", "0", str(good[0]), config_dir=config_dir)
    nothing_found = mlsvc("--token", "x", "classify", str(tmp_path / "none" / "*.jpg"), config_dir=config_dir)
    login(api, user.username, user.password, config_dir)
    ok = mlsvc("classify", str(good[0]), config_dir=config_dir)
    not_admin = mlsvc("stats", config_dir=config_dir)
    unknown_model = mlsvc("classify", "--model", "nosuchmodel", str(good[0]), config_dir=config_dir)
    unreachable = mlsvc(
        "--url", "http://127.0.0.1:9", "--token", "x", "--deadline", "1", "classify", str(good[0]),
        config_dir=config_dir,
    )  # fmt: skip

    assert not_logged_in.returncode == exit_codes.AUTH and "not logged in" in not_logged_in.stderr
    assert wrong_password == exit_codes.AUTH
    assert bad_option.returncode == exit_codes.USAGE
    assert nothing_found.returncode == exit_codes.USAGE, nothing_found.stderr
    assert ok.returncode == exit_codes.OK, ok.stderr
    assert not_admin.returncode == exit_codes.AUTH and "admin_required" in not_admin.stderr
    assert unknown_model.returncode == exit_codes.API_ERROR, unknown_model.stderr
    assert "model_not_found" in unknown_model.stderr or "not_found" in unknown_model.stderr
    assert unreachable.returncode == exit_codes.UNAVAILABLE, unreachable.stderr


@pytest.mark.parametrize("command", [[], *COMMAND_PATHS], ids=" ".join)
def test_help_on_every_command(command: list[str], tmp_path: Path) -> None:
    done = mlsvc(*command, "--help", config_dir=tmp_path)

    assert done.returncode == 0
    assert done.stdout.startswith(" ".join(["Usage: mlsvc", *command])) and "--help" in done.stdout
    if not command:
        assert "Exit codes:" in done.stdout and all(name in done.stdout for name in COMMANDS)
