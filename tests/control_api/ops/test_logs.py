"""Log lines cannot be forged: CR/LF and other control characters a client puts in a path (or anything
else that reaches a log line) are escaped in text logs; JSON logs escape them by themselves."""

from __future__ import annotations

import json
import logging

import pytest

from control_api.ops.logs import escape_controls, make_handler
from tests.control_api.ops.test_observability import captured

FORGED = "/x%0D%0A2026-01-01 00:00:00,000 INFO control_api.access [-] GET /admin 200 1.0ms%1B[2J%E2%80%A8"


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("\x00\x1b[31m\x7f\x85", "\\x00\\x1b[31m\\x7f\\x85"),
        ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
        ("plain é ü 漢字 /path?q=1", "plain é ü 漢字 /path?q=1"),
    ],
)
def test_control_characters_are_escaped(raw: str, escaped: str) -> None:
    assert escape_controls(raw) == escaped


def test_text_access_log_stays_one_line(client) -> None:
    with captured("text") as stream:
        assert client.get(FORGED).status_code == 404
    lines = [line for line in stream.getvalue().splitlines() if "control_api.access" in line]
    assert len(lines) == 1 and len(stream.getvalue().splitlines()) == 1, stream.getvalue()
    assert "/x\\r\\n2026-01-01 00:00:00,000 INFO" in lines[0] and "\\x1b[2J\\u2028 404" in lines[0]


def test_json_access_log_keeps_the_path_inside_its_string(client) -> None:
    with captured("json") as stream:
        assert client.get(FORGED).status_code == 404
    [line] = stream.getvalue().splitlines()
    assert "\u2028" not in line and "\\u2028" in line  # a line break to JavaScript, escaped too
    record = json.loads(line)
    assert record["path"].startswith("/x\r\n2026-01-01") and record["path"].endswith("\x1b[2J\u2028")
    assert record["status"] == 404


def test_text_tracebacks_keep_their_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Only the record's own line is escaped: a traceback below it stays readable."""
    logger = logging.getLogger("control_api.test_logs")
    handler = make_handler("text")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.error("failed for %s", "evil\nname", exc_info=True)
    finally:
        logger.removeHandler(handler)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("failed for evil\\nname") and lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
