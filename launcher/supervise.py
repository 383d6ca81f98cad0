"""Keep a command running, as compose's ``restart: unless-stopped`` does: start it in a process group of
its own, and whenever it exits, stop what is left of that group and start it again after a pause.
SIGTERM or SIGINT stop the command (its whole group, gracefully first) and then the supervisor.

``make run`` runs TorchServe under it (scripts/run.sh), so a killed frontend comes back on its own while
the control API keeps answering 503 in between::

    python -m launcher.supervise --name TorchServe --cwd instance/torchserve \\
        --pidfile instance/torchserve.supervisor.pid -- torchserve --start --foreground ...
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from launcher.process_group import stop_group

RESTART_DELAY_S = 2.0


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervise: {message}", flush=True)


def supervise(
    command: Sequence[str], name: str, delay_s: float = RESTART_DELAY_S, cwd: Path | None = None
) -> int:
    """Run ``command`` until a stop signal; the number of restarts."""
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restarts = 0
    while True:
        child = subprocess.Popen(list(command), cwd=cwd, start_new_session=True)
        log(f"{name} started (pid {child.pid})")
        while child.poll() is None and not stopping.is_set():
            stopping.wait(0.5)
        if stopping.is_set():
            log(f"stopping {name}")
            stop_group(child, graceful=True)
            return restarts
        # What it spawned may outlive it (TorchServe's Python workers): clear the group before a restart.
        stop_group(child, graceful=False)
        log(f"{name} exited with status {child.returncode}; restarting in {delay_s:g} s")
        if stopping.wait(delay_s):
            return restarts
        restarts += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", default="the command", help="what to call it in the log")
    parser.add_argument(
        "--delay", type=float, default=RESTART_DELAY_S, help="seconds between exit and restart"
    )
    parser.add_argument("--cwd", type=Path, help="run the command in this directory")
    parser.add_argument("--pidfile", type=Path, help="write the supervisor's pid here (removed at exit)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    if args.pidfile:
        args.pidfile.write_text(f"{os.getpid()}\n")
    try:
        supervise(command, args.name, args.delay, args.cwd)
    finally:
        if args.pidfile:
            args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
