"""GET /history as CSV: the same rows and filters as the JSON listing, a row cap, and flat memory."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.control_api.conftest import AuthActions, assert_error

REPO = Path(__file__).resolve().parents[3]


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_csv_holds_every_matching_row_newest_first(client, auth: AuthActions, seeded) -> None:
    admin = auth.admin_headers()
    failed = sorted(
        (r for r in seeded if r["status_code"] == 415), key=lambda r: r["created_at"], reverse=True
    )

    rows = _csv(client.get("/history?format=csv&status_code=415&per_page=1", headers=admin))

    assert len(rows) == len(failed) > 1  # per_page does not page the export
    assert [float(r["processing_time"]) for r in rows] == [r["processing_time"] for r in failed]
    assert {r["status_code"] for r in rows} == {"415"} and rows[0]["error_message"] == "failed"


def test_accept_header_selects_csv_and_results_are_json(client, auth: AuthActions, seeded) -> None:
    headers = {**auth.admin_headers(), "Accept": "text/csv"}

    rows = _csv(client.get("/history?status_code=200", headers=headers))

    assert len(rows) == sum(1 for r in seeded if r["status_code"] == 200)
    assert json.loads(rows[0]["result"])["label"] == "goldfish"
    assert rows[0]["created_at"].endswith("Z")


def test_json_stays_the_default(client, auth: AuthActions, seeded) -> None:
    response = client.get("/history", headers={**auth.admin_headers(), "Accept": "*/*"})

    assert response.mimetype == "application/json" and response.get_json()["total"] == len(seeded)


def test_export_over_the_cap_is_refused(app, client, auth: AuthActions, seeded) -> None:
    app.config["HISTORY_EXPORT_MAX_ROWS"] = 10

    response = client.get("/history?format=csv", headers=auth.admin_headers())

    assert_error(response, 422, "export_too_large")


def test_unknown_format_is_422(client, auth: AuthActions) -> None:
    assert_error(client.get("/history?format=xml", headers=auth.admin_headers()), 422)


def test_non_admin_cannot_export(client, auth: AuthActions) -> None:
    assert_error(client.get("/history?format=csv", headers=auth.headers("alice")), 403)


EXPORT_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from bench import stats_seed
    from bench.history_seed import _SQLITE, insert_sql
    import sqlalchemy as sa
    from control_api.extensions import db
    from control_api.tables import utcnow

    rows, work = int(sys.argv[1]), Path(sys.argv[2])
    app = stats_seed.make_app(f"sqlite:///{work / 'export.db'}", work)
    app.config["HISTORY_EXPORT_MAX_ROWS"] = rows
    stats_seed.create_schema(app)
    with app.app_context():
        start = utcnow().replace(year=2020)
        params = {"rows": rows, "start": start.isoformat(sep=" "), "step": 1.0}
        db.session.execute(sa.text(insert_sql(_SQLITE)), params)
        db.session.commit()
    headers = stats_seed.admin_headers(app)
    response = app.test_client().get("/history?format=csv", headers=headers, buffered=False)
    lines, first = 0, True
    for chunk in response.iter_encoded():
        lines += chunk.count(b"\\n")
        if first and lines > 10_000:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            first = False
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(response.status_code, lines, base, peak)
    """
)


@pytest.mark.timeout(900)
def test_a_million_row_export_streams_in_flat_memory(tmp_path: Path) -> None:
    """Peak RSS grows by less than 64 MiB between the first 10,000 lines and the last of 1,000,001 (the
    whole file is over 150 MB)."""
    rows = 1_000_000
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_SCRIPT, str(rows), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    status, lines, base_kib, peak_kib = (int(v) for v in done.stdout.split()[-4:])
    assert (status, lines) == (200, rows + 1)
    assert peak_kib - base_kib < 64 * 1024, (base_kib, peak_kib)


def test_openapi_documents_the_csv_answer(client) -> None:
    history = client.get("/openapi.json").get_json()["paths"]["/history"]["get"]

    assert {"application/json", "text/csv"} <= set(history["responses"]["200"]["content"])
    assert "422" in history["responses"] and "format" in {p["name"] for p in history["parameters"]}
