"""The warm `make run` step: its check's verdict, the summary line, and the parts of bench.warm_start that
need no server (the Makefile's build command, the workers' load lines, the record)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench import report, warm_start
from bench.checks import WARM_START_BOUND_S, checks, warm_start_check
from bench.torchserve import REPO

SCRIPTS = REPO / "scripts"
# Two workers' load lines as the handler logs them, among TorchServe's own lines.
MODEL_LOG = """\
2030-01-02T03:04:05,678 [INFO ] W-9000-resnet50_1.0-stdout MODEL_LOG - Torch worker started.
2030-01-02T03:04:09,001 [INFO ] W-9000-resnet50_1.0-stdout MODEL_LOG - loaded resnet50 1.0-untrained on \
cpu: fp32 AOT, threads 1, preprocess threads 1, {'channels_last': True, 'fuse': True, 'compile': False}
2030-01-02T03:04:09,101 [INFO ] W-9001-resnet50_1.0-stdout MODEL_LOG - loaded resnet50 1.0-untrained on \
cpu: fp32, threads 1, preprocess threads 1, {'channels_last': True, 'fuse': True, 'compile': False}
2030-01-02T03:04:09,201 [INFO ] W-9002-other_1.0-stdout MODEL_LOG - loaded other 1.0 on cpu: bf16 AOT, x
"""


def warm(**changes: Any) -> dict[str, Any]:
    """A warm-start record as bench.warm_start writes it: compiled, 40 s, first call like the next ones."""
    record = {
        "seconds_to_first_answer": 40.0,
        "first_ms": 110.0,
        "next_median_ms": 100.0,
        "next_ms": [100.0] * 10,
        "served_as": "fp32 AOT",
        "workers": 1,
        "archive_build_s": 95.0,
    }
    return {**record, **changes}


def verdict(record: dict[str, Any] | None) -> str:
    return warm_start_check({} if record is None else {"warm_start": record}).verdict


def test_compiled_first_answer_within_the_bound_passes() -> None:
    assert verdict(warm()) == "PASS"
    assert verdict(warm(seconds_to_first_answer=WARM_START_BOUND_S)) == "PASS"


def test_first_answer_after_the_bound_misses() -> None:
    assert verdict(warm(seconds_to_first_answer=WARM_START_BOUND_S + 0.1)) == "MISS"


@pytest.mark.parametrize("served", ["fp32", "fp32, fp32 AOT", "unknown"])
def test_an_answer_not_from_the_compiled_package_alone_misses_however_fast(served: str) -> None:
    check = warm_start_check({"warm_start": warm(served_as=served, seconds_to_first_answer=5.0)})

    assert check.verdict == "MISS"
    assert check.unmet == f"served as {served}, not the compiled package alone"


def test_a_first_call_slower_than_the_next_ones_misses() -> None:
    check = warm_start_check({"warm_start": warm(first_ms=151.0, next_median_ms=100.0)})

    assert check.verdict == "MISS"
    assert check.unmet == "first answer 151 ms, 1.5x the median of the next ones"
    assert verdict(warm(first_ms=150.0, next_median_ms=100.0)) == "PASS"


def test_a_run_without_the_step_has_no_verdict() -> None:
    assert verdict(None) == "n/a"
    assert warm_start_check({}).unmet is None


def test_the_summary_shows_the_check_its_reason_and_the_figures() -> None:
    results = {"meta": {}, "warm_start": warm(first_ms=400.0)}

    text = report.summary(results)

    row = (
        "| warm make run: first /forward (compiled) within 60 s | <= 60 s | 40.00 s "
        "| MISS: first answer 400 ms, 4.0x the median of the next ones |"
    )
    assert row in text
    assert "- Warm `make run` (archive built in 95 s first, not counted; " in text
    assert "answered 40.0 s after the start, by 1 worker(s) serving fp32 AOT;" in text
    assert warm_start_check(results) in checks(results)


def test_the_build_command_is_the_makefiles_for_make_run_into_the_given_store(tmp_path: Path) -> None:
    args = warm_start.make_run_build_args(tmp_path)

    assert args[args.index("--export-path") + 1] == str(tmp_path)
    assert "model_store" not in args
    assert "--aot" in args
    assert args[args.index("--workers") + 1] == "auto"
    assert args[args.index("--archive-name") + 1] == "resnet50"


def test_the_build_command_is_found_across_continued_recipe_lines(tmp_path: Path) -> None:
    recipe = (
        "python3 -m venv .venv\n"
        ".venv/bin/python -m handlers.build_archive --export-path model_store --force --version 1.0 \\\n"
        "\t--archive-name resnet50 --workers auto --aot \\\n\t\n"
    )

    args = warm_start.build_args_from_dry_run(recipe, tmp_path)

    expected = ["--export-path", str(tmp_path), "--force", "--version", "1.0", "--archive-name", "resnet50"]
    assert args == [*expected, "--workers", "auto", "--aot"]
    with pytest.raises(ValueError, match=r"no handlers\.build_archive"):
        warm_start.build_args_from_dry_run("python3 -m venv .venv\n", tmp_path)


def test_served_as_reads_each_workers_load_line_of_the_model() -> None:
    assert warm_start.served_as(MODEL_LOG) == ["fp32 AOT", "fp32"]
    assert warm_start.served_as(MODEL_LOG, "other") == ["bf16 AOT"]
    assert warm_start.served_as("no load line yet") == []


def test_summarize_keeps_the_first_answer_apart_from_the_median_of_the_next() -> None:
    record = warm_start.summarize(41.234, 250.04, [120.0, 100.0, 110.0, 130.0], ["fp32 AOT", "fp32 AOT"])

    assert record["seconds_to_first_answer"] == 41.23
    assert record["first_ms"] == 250.0
    assert record["next_median_ms"] == 115.0
    assert record["served_as"] == "fp32 AOT"
    assert record["workers"] == 2
    assert warm_start.summarize(1.0, 1.0, [1.0], [])["served_as"] == "unknown"


def test_the_environment_moves_the_copy_under_its_home_whatever_the_shell_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "TS_CONFIG_FILE", "TORCHSERVE_KEY_FILE", "API_PIDFILE", "FAST"):
        monkeypatch.setenv(name, "from-the-shell")

    env = warm_start.run_env(tmp_path, tmp_path / "store", "resnet50.mar", tmp_path / "ts.properties", 9399)

    assert env["INSTANCE_PATH"] == str(tmp_path / "instance")
    assert env["RUN_LOGS"] == str(tmp_path / "logs")
    assert env["RUN_MODEL_STORE"] == str(tmp_path / "store")
    assert env["RUN_TS_CONFIG"] == str(tmp_path / "ts.properties")
    assert env["API_BIND"] == "127.0.0.1:9399"
    assert not {"DATABASE_URL", "TS_CONFIG_FILE", "TORCHSERVE_KEY_FILE", "API_PIDFILE", "FAST"} & set(env)


def test_the_run_scripts_keep_a_moved_instance_out_of_the_repositorys(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {**os.environ, "INSTANCE_PATH": str(instance)}
    env.pop("SECRET_KEY", None)
    env.pop("ADMIN_TOKEN", None)
    repo_secrets = REPO / "instance" / "secrets.env"
    before = repo_secrets.read_bytes() if repo_secrets.is_file() else None

    subprocess.run([str(SCRIPTS / "init_secrets.sh")], env=env, check=True, capture_output=True)
    subprocess.run([str(SCRIPTS / "stop.sh")], env=env, check=True, capture_output=True)

    secrets = (instance / "secrets.env").read_text()
    assert "SECRET_KEY=" in secrets and "ADMIN_TOKEN=" in secrets
    assert (instance / "secrets.env").stat().st_mode & 0o777 == 0o600
    assert (instance / ".stop.lock").is_file()
    assert (repo_secrets.read_bytes() if repo_secrets.is_file() else None) == before
