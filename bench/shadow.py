"""Shadow traffic's cost to the client: the full stack (scripts/boot.sh in front of a TorchServe serving two
versions) with a rollout policy that shadows 0 % and then 100 % of stable traffic to the second version.

The claim it checks (README, "Rolling out a new model version"): shadowing never changes the client's
answer, nor its latency by more than 10 %. The answers of one request in each mode are compared; the
latency is the p50 at one client in alternating short runs (shadow off, on, off, on...), whose per-round
differences cancel TorchServe's own drift, as the API-added latency is measured. The policy is written
straight into the API's SQLite database (the bench has no admin account); the API reads it within
``ROLLOUT_CACHE_SECONDS``.

``python -m bench.shadow [--rounds 5] [--seconds 10]``; writes ``bench/results/shadow.json``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench import machine
from bench.api import api_target, multipart_body, start_api
from bench.images import small_jpeg
from bench.runner import CellPlan, QuietGate, run_loadgen, write_spec
from bench.torchserve import REPO, build_our_archive, post_bytes, serve

RESULTS = REPO / "bench" / "results" / "shadow.json"
MAX_SLOWDOWN = 0.10
WARMUP_REQUESTS = 8


def set_shadow(database: Path, stable: str, shadow: str, percent: float) -> None:
    """The policy: all traffic to ``stable``, ``percent`` of it shadowed to ``shadow``."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(database) as conn:
        conn.execute("DELETE FROM model_rollouts WHERE model_name = 'resnet50'")
        conn.execute(
            "INSERT INTO model_rollouts (model_name, stable, canary, canary_percent, shadow_version, "
            "shadow_percent, guard, state, reason, failed_checks, last_check_at, revision, updated_at, "
            "updated_by) VALUES ('resnet50', ?, ?, 0, ?, ?, NULL, 'canary', NULL, 0, NULL, 1, ?, 'bench')",
            (stable, shadow, shadow, percent, now),
        )
    time.sleep(1.5)  # past ROLLOUT_CACHE_SECONDS


def shadow_rows(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        count: int = conn.execute("SELECT count(*) FROM shadow_results").fetchone()[0]
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating off/on pairs (default 5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per run (default 10)")
    args = parser.parse_args(argv)
    image = small_jpeg()
    with tempfile.TemporaryDirectory(prefix="bench_shadow_") as tmp:
        root = Path(tmp)
        store = root / "store"
        first = build_our_archive(store)
        build_our_archive(
            store, extra_args=["--seed", "2", "--version", "2.0", "--archive-name", "resnet50-2"]
        )
        with serve(root / "ts", store, first) as ts, start_api(ts, root / "api") as server:
            mgmt = ts.headers("management")
            params = {"url": "resnet50-2.mar", "initial_workers": "1", "synchronous": "true"}
            registered = requests.post(
                f"{ts.management_url}/models", params=params, headers=mgmt, timeout=600
            )
            registered.raise_for_status()
            every = requests.get(f"{ts.management_url}/models/resnet50/all", headers=mgmt, timeout=60).json()
            default = ts.describe("resnet50")[0]["modelVersion"]
            other = next(v["modelVersion"] for v in every if v["modelVersion"] != default)
            database = root / "api" / "control_api.db"
            target = api_target(server, "fp32")
            body, extra = multipart_body(image)
            answers = {}
            plan = CellPlan(
                duration_s={1: args.seconds}, warmup_s=1.0, gate=QuietGate(max_wait_s=0.0, budget_s=0.0)
            )
            spec = write_spec(target, image, 1, plan, root / "work")
            # Untimed: both versions' first inferences (a compiled archive compiles on its first batches).
            set_shadow(database, default, other, 100.0)
            for _ in range(WARMUP_REQUESTS):
                post_bytes(target.url, body, {**server.headers(), **extra})
            rounds: list[dict[str, Any]] = []
            for _ in range(args.rounds):
                row: dict[str, Any] = {}
                for label, percent in (("off", 0.0), ("on", 100.0)):
                    set_shadow(database, default, other, percent)
                    status, raw = post_bytes(target.url, body, {**server.headers(), **extra})
                    answer = json.loads(raw)
                    answers[label] = (status, answer.get("model"), answer.get("predictions"))
                    row[label] = run_loadgen(spec)["latency_ms"]["p50"]
                row["diff"] = row["on"] - row["off"]
                rounds.append(row)
            deadline = time.monotonic() + 120  # the last shadow copies are still on their way
            while not shadow_rows(database) and time.monotonic() < deadline:
                time.sleep(1)
            shadowed = shadow_rows(database)
    off_p50 = statistics.median(r["off"] for r in rounds)
    slowdown = statistics.median(r["diff"] for r in rounds) / off_p50
    host = machine.describe()
    result = {
        "command": machine.command_line("bench.shadow", argv),
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_kind": machine.cpu_kind(host["cpu"], host["isa_flags"]),
        "machine": host,
        "image": image.key,
        "rounds": rounds,
        "seconds_per_run": args.seconds,
        "p50_off_ms": off_p50,
        "median_slowdown": round(slowdown, 4),
        "within_10_percent": slowdown <= MAX_SLOWDOWN,
        "same_answer": answers["off"] == answers["on"],
        "shadow_rows": shadowed,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["within_10_percent"] and result["same_answer"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
