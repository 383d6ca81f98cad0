"""``mlsvc classify`` against the live stack: a folder of mixed images at -j 8, an interrupted run
resumed, the output formats, standard input and globs."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

from tests.client.conftest import (
    MLSVC,
    Api,
    User,
    make_images,
    mlsvc,
    mlsvc_env,
    own_history_total,
    token_for,
)


def login(api: Api, user: User, config_dir: Path) -> None:
    done = mlsvc(
        "--url", api.url, "login", "--username", user.username,
        config_dir=config_dir, env={"MLSVC_PASSWORD": user.password},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_folder_of_200_mixed_images_at_j8(api: Api, user: User, tmp_path: Path) -> None:
    good, bad = make_images(tmp_path / "photos", good=184, bad_per_kind=4)
    login(api, user, tmp_path / "config")
    out = tmp_path / "out.jsonl"

    done = mlsvc(
        "classify", str(tmp_path / "photos"), "-j", "8", "-o", str(out), config_dir=tmp_path / "config"
    )

    assert done.returncode == 1, done.stderr  # finished, some files failed
    lines = jsonl(out)
    by_source = {str(line["source"]): line for line in lines}
    assert len(lines) == len(by_source) == 200  # one line per input, none twice; notes.txt not sent
    for path in good:
        line = by_source[str(path)]
        assert line["ok"] is True and len(line["predictions"]) == 5, line  # type: ignore[arg-type]
    for path, slug in bad.items():
        assert by_source[str(path)]["ok"] is False and by_source[str(path)]["error"] == slug
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("ok 184, failed 16 (")
    assert "unsupported_image 8" in summary and "empty_input 4" in summary and "unreadable_file 4" in summary
    assert "200 images in" in summary and "images/s" in summary
    # Every file that could be read was sent exactly once.
    assert own_history_total(api, token_for(api, user)) == 196


def test_an_interrupted_run_resumes_without_doing_anything_twice(
    api: Api, user: User, tmp_path: Path
) -> None:
    good, _ = make_images(tmp_path / "photos", good=60)
    login(api, user, tmp_path / "config")
    out = tmp_path / "out.jsonl"
    first = subprocess.Popen(
        [str(MLSVC), "classify", str(tmp_path / "photos"), "-j", "4", "-o", str(out)],
        env=mlsvc_env(tmp_path / "config"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while (not out.exists() or len(out.read_text().splitlines()) < 10) and first.poll() is None:
        assert time.monotonic() < deadline, "the first run wrote no 10 lines"
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=300)
    written = jsonl(out)
    with out.open("a") as torn:  # as if killed while writing a line
        torn.write('{"source": "' + str(good[-1]))

    second = mlsvc("classify", str(tmp_path / "photos"), "-j", "4", "-o", str(out), "--resume",
                   config_dir=tmp_path / "config")  # fmt: skip

    assert first.returncode == 130, first_err
    assert "interrupted" in first_err
    assert 10 <= len(written) < 60  # stopped part-way
    assert second.returncode == 0, second.stderr
    assert f"skipped {len(written)} (already in the output)" in second.stderr
    lines = jsonl(out)
    assert sorted(str(line["source"]) for line in lines) == sorted(str(p) for p in good)  # all, once each
    assert all(line["ok"] for line in lines)
    # Nothing was sent twice: the images in flight at Ctrl-C were answered and written, not redone.
    assert own_history_total(api, token_for(api, user)) == 60


def test_csv_from_a_glob_and_a_table_from_stdin(api: Api, user: User, tmp_path: Path) -> None:
    good, _ = make_images(tmp_path / "photos", good=10)
    login(api, user, tmp_path / "config")
    pngs = sorted(str(p) for p in good if p.suffix == ".png")
    out = tmp_path / "out.csv"

    as_csv = mlsvc("classify", str(tmp_path / "photos" / "**" / "*.png"), "-f", "csv", "-o", str(out),
                   "-k", "2", config_dir=tmp_path / "config")  # fmt: skip
    as_table = mlsvc("classify", "-", "-f", "table", config_dir=tmp_path / "config",
                     stdin=good[0].open("rb"))  # fmt: skip

    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(out.open()))
    assert sorted(row["source"] for row in rows) == pngs
    assert all(row["ok"] == "true" and row["label"] and 0 <= float(row["probability"]) <= 1 for row in rows)
    assert as_table.returncode == 0, as_table.stderr
    header, row = as_table.stdout.splitlines()
    assert header.split()[:3] == ["STATUS", "PROB", "LABEL"]
    assert row.startswith("ok") and row.endswith(" -")
