"""The client's parts that need no server: which inputs a command line names, reading back an earlier
run's output for --resume, the stored login's file mode, Retry-After and backoff, and the exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests

from mlservice_client import Client, RetryPolicy, config, exit_codes
from mlservice_client.errors import (
    AuthenticationError,
    FileReadError,
    NotFoundError,
    NotLoggedInError,
    PermissionDeniedError,
    ServiceUnavailableError,
    TransportError,
    error_class,
)
from mlservice_client.inputs import expand
from mlservice_client.output import done_sources, open_for_append
from mlservice_client.transport import retry_after_seconds


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return str(path)


def test_expand_walks_folders_globs_and_keeps_named_files(tmp_path: Path) -> None:
    a = touch(tmp_path / "d" / "a.JPG")
    b = touch(tmp_path / "d" / "sub" / "b.png")
    touch(tmp_path / "d" / "notes.txt")
    touch(tmp_path / "d" / ".hidden.jpg")
    touch(tmp_path / "d" / ".cache" / "c.jpg")
    named = touch(tmp_path / "e" / "photo.raw")
    missing = str(tmp_path / "nothing.jpg")

    found = expand(["-", str(tmp_path / "d"), str(tmp_path / "d" / "**" / "*.png"), named, missing, a])

    assert found == ["-", a, b, named, missing]  # each once, in order; walks skip hidden and non-images


def test_resume_reads_back_an_earlier_output_and_drops_a_torn_line(tmp_path: Path) -> None:
    jsonl, csv_file = tmp_path / "out.jsonl", tmp_path / "out.csv"
    jsonl.write_text('{"source": "a.jpg", "ok": true}\n{"source": "b.jpg", "ok": false}\n{"source": "c.j')
    csv_file.write_text("source,ok\na.jpg,true\nb.jpg,fal")

    jsonl_done, csv_done = done_sources(jsonl, "jsonl"), done_sources(csv_file, "csv")
    stream, had_lines = open_for_append(jsonl)
    stream.write('{"source": "c.jpg", "ok": true}\n')
    stream.close()

    assert jsonl_done == {"a.jpg", "b.jpg"} and csv_done == {"a.jpg"}
    assert had_lines
    assert [json.loads(line)["source"] for line in jsonl.read_text().splitlines()] == [
        "a.jpg",
        "b.jpg",
        "c.jpg",
    ]
    assert done_sources(tmp_path / "absent.jsonl", "jsonl") == set()


def test_the_stored_login_is_for_its_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSVC_CONFIG_DIR", str(tmp_path / "cfg"))
    (tmp_path / "cfg").mkdir()
    config.config_path().write_text("{}")
    os.chmod(config.config_path(), 0o644)

    path = config.save(config.Stored("http://api", "alice", "t0ken"))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load() == config.Stored("http://api", "alice", "t0ken")
    path.write_text("not json")
    assert config.load() == config.Stored()
    assert config.forget() and not path.exists() and not config.forget()


def answer(retry_after: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = 503
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def test_retry_after_in_seconds_or_as_a_date() -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    assert retry_after_seconds(answer("3")) == 3.0
    assert retry_after_seconds(answer("1.5")) == 1.5
    assert 50 <= (retry_after_seconds(answer(in_a_minute)) or 0) <= 61
    assert retry_after_seconds(answer("soon")) is None
    assert retry_after_seconds(answer(None)) is None


def test_backoff_honours_retry_after_up_to_a_cap_else_jitters() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=10.0)

    assert policy.delay(0, 3.0) == 3.0
    assert policy.delay(0, 600.0) == 10.0
    assert all(0 <= policy.delay(3, None) <= 4.0 for _ in range(50))
    assert all(0 <= policy.delay(30, None) <= 10.0 for _ in range(50))


def test_each_error_has_its_exit_code() -> None:
    cases = {
        NotLoggedInError("x"): exit_codes.AUTH,
        error_class(401)(401, "token_expired", "x"): exit_codes.AUTH,
        error_class(403)(403, "admin_required", "x"): exit_codes.AUTH,
        error_class(503)(503, "service_unavailable", "x"): exit_codes.UNAVAILABLE,
        error_class(429)(429, "too_many_requests", "x"): exit_codes.UNAVAILABLE,
        TransportError("x"): exit_codes.UNAVAILABLE,
        error_class(404)(404, "model_not_found", "x"): exit_codes.API_ERROR,
        FileReadError("x"): exit_codes.SOME_FAILED,
    }

    assert [exit_codes.for_error(error) for error in cases] == list(cases.values())
    assert error_class(401) is AuthenticationError and error_class(403) is PermissionDeniedError
    assert error_class(404) is NotFoundError and error_class(502) is ServiceUnavailableError


def test_a_post_whose_connection_drops_is_not_sent_twice_a_get_is_retried() -> None:
    accepted: list[int] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)

        def serve() -> None:  # read each request, then close without an answer
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = listener.accept()
                    accepted.append(1)
                    conn.recv(65536)
                    conn.close()

        threading.Thread(target=serve, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = Client(url, token="t", retry=RetryPolicy(deadline_s=1.0, base_delay_s=0.05))

        with pytest.raises(TransportError):
            client.classify(b"image bytes")
        posts = len(accepted)
        with pytest.raises(TransportError) as gave_up:
            client.me()

    assert posts == 1
    assert len(accepted) > 2 and "gave up after" in str(gave_up.value)
