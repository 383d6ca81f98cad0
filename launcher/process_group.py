"""Stop a process started in its own session, together with everything it spawned.

A child started with ``start_new_session=True`` leads a new process group; its own children (TorchServe's
java and Python workers, gunicorn's workers) inherit that group, so signalling the group reaches them all,
even after the leader itself has exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import psutil

STOP_TIMEOUT_S = 20.0


def stop_group(
    process: subprocess.Popen[bytes], graceful: bool = True, timeout: float = STOP_TIMEOUT_S
) -> None:
    """Stop the process group ``process`` leads and wait until no member is alive.

    Graceful sends SIGTERM first and gives the group ``timeout`` seconds to exit on its own (gunicorn
    drains its workers; java's shutdown hook stops netty). Whatever is left, or everything when not
    graceful, gets SIGKILL."""
    pgid = process.pid  # the session leader's pid is its group's id
    if graceful:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        _wait_group(process, pgid, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    _wait_group(process, pgid, timeout)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1.0)  # reap the leader, so no zombie of ours is left behind


def _wait_group(process: subprocess.Popen[bytes], pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and group_alive(pgid):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)  # reaps the leader, our direct child


def group_alive(pgid: int) -> bool:
    """Whether a live member remains; zombies don't count (a sandbox's PID 1 may never reap them)."""
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False
