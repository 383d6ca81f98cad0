"""The bench's (e) step, ``mlsvc classify`` on a folder: its measurement against the live stack (a small
folder, not the bench's 200 images), its failure, and the ratio to (d) that the report holds it to."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cli_client, report
from bench.checks import CLI_RATIO_BOUND, checks
from bench.images import BenchImage
from tests.bench.test_report import results
from tests.client.conftest import Api, User, api, token_for, user  # noqa: F401 (fixtures)


def cli_check(run: dict[str, object]) -> tuple[float | None, str]:
    found = next(c for c in checks(run) if c.name.startswith("(e) mlsvc/(d)"))
    return found.value, found.verdict


def test_the_cli_is_held_to_90_percent_of_d_at_the_same_concurrency() -> None:
    fast, slow, absent = results(), results(), results()  # (d) small at 8 clients: 40 images/s
    fast["cli"] = {"images": 200, "images_per_s": 38.0, "concurrency": 8, "seconds": 5.3}
    slow["cli"] = {"images": 200, "images_per_s": 30.0, "concurrency": 8, "seconds": 6.7}

    assert cli_check(fast) == (pytest.approx(0.95), "PASS")
    assert cli_check(slow) == (pytest.approx(0.75), "MISS")
    assert cli_check(absent) == (None, "n/a")
    assert CLI_RATIO_BOUND == 0.9
    assert "- (e) `mlsvc classify -j 8` on a 200-image folder: 38.00 images/s" in report.summary(fast)


def test_measure_times_mlsvc_on_a_folder(api: Api, user: User, small_jpeg: bytes, tmp_path: Path) -> None:  # noqa: F811
    image = BenchImage("small", "small", small_jpeg, 320, 240)

    res = cli_client.measure(api.url, token_for(api, user), image, tmp_path, concurrency=2, count=6)

    assert res["images"] == res["ok"] == 6 and res["concurrency"] == 2
    assert res["images_per_s"] == pytest.approx(6 / res["seconds"], rel=1e-2)  # both are rounded to 1 ms
    assert res["summary"].startswith("ok 6, failed 0, 6 images in ")
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == [f"img{i:04d}.jpg" for i in range(6)]


def test_a_failed_cli_run_fails_the_step(api: Api, tmp_path: Path, small_jpeg: bytes) -> None:  # noqa: F811
    image = BenchImage("small", "small", small_jpeg, 320, 240)

    with pytest.raises(RuntimeError, match="exited 3"):
        cli_client.measure(api.url, "not-a-token", image, tmp_path, concurrency=2, count=2)
