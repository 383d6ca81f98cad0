"""launcher.supervise: a killed command comes back, with what it spawned cleared away first; a stop
signal stops the command's whole group and the supervisor."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from launcher.process_group import group_alive

ROOT = Path(__file__).resolve().parents[2]
# The supervised command: a shell that starts a grandchild (as TorchServe starts its workers), records
# both pids, then waits.
SCRIPT = 'sleep 300 & echo "$$ $!" >> "$1"; wait'
DEADLINE_S = 60.0


def pids_written(path: Path, count: int) -> list[list[int]]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        lines = path.read_text().split("\n")[:-1] if path.exists() else []
        if len(lines) >= count:
            return [[int(pid) for pid in line.split()] for line in lines]
        assert time.monotonic() < deadline, f"only {len(lines)} starts seen"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_killed_command_is_restarted_and_stop_stops_everything(tmp_path: Path) -> None:
    record, pidfile = tmp_path / "starts.txt", tmp_path / "supervisor.pid"
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "launcher.supervise",
            "--name",
            "shell",
            "--delay",
            "0.2",
            "--pidfile",
            str(pidfile),
            "--",
            "bash",
            "-c",
            SCRIPT,
            "bash",
            str(record),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        [[first, first_child]] = pids_written(record, 1)
        psutil.Process(first).kill()  # the supervised process dies; its child lives on for now

        starts = pids_written(record, 2)
        second, second_child = starts[1]
        supervisor.send_signal(signal.SIGTERM)
        output, _ = supervisor.communicate(timeout=DEADLINE_S)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()

    assert second != first
    assert gone(first_child)  # cleared before the restart
    assert gone(second) and gone(second_child) and not group_alive(second)  # the stop took them
    assert supervisor.returncode == 0
    assert "shell exited with status -9; restarting in 0.2 s" in output
    assert not pidfile.exists()
