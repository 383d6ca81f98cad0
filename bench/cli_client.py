"""(e) The command-line client: ``mlsvc classify`` on a folder of images against the running (d) stack.

The folder holds ``FOLDER_SIZE`` copies of the small benchmark JPEG; the CLI runs as a user would run it
(its own process, JSON lines to a file, no progress bar) at the concurrency of (d)'s 8-client cells, and
its throughput is the folder's images over the command's wall-clock time, process start included. The
report holds it against (d)'s small-JPEG throughput at 8 clients (``bench.checks``).

Run alone against a fresh stack: ``python -m bench.cli_client``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.images import BenchImage

FOLDER_SIZE = 200
CONCURRENCY = 8  # the (d) cells' closed-loop clients
MLSVC = Path(sys.executable).parent / "mlsvc"


def write_folder(directory: Path, image: BenchImage, count: int = FOLDER_SIZE) -> Path:
    """``count`` copies of ``image`` as ``directory``/imgNNNN.jpg; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"img{i:04d}.jpg").write_bytes(image.data)
    return directory


def command(url: str, token: str, folder: Path, output: Path, concurrency: int) -> list[str]:
    """The ``mlsvc`` command line that the step times."""
    return [
        str(MLSVC), "--url", url, "--token", token, "classify", str(folder),
        "-j", str(concurrency), "-f", "jsonl", "-o", str(output), "--no-progress",
    ]  # fmt: skip


def outcome(output: Path, returncode: int, stderr: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """The step's result from the run's output file, exit code, summary line and wall-clock seconds."""
    lines = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    ok = sum(1 for line in lines if line.get("ok"))
    summary = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if returncode != 0 or ok != len(lines) or not lines:
        raise RuntimeError(f"mlsvc classify exited {returncode}, {ok} of {len(lines)} ok: {stderr[-1500:]}")
    return {
        "images": len(lines),
        "ok": ok,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "images_per_s": round(len(lines) / seconds, 3),
        "summary": summary,
    }


def measure(
    url: str,
    token: str,
    image: BenchImage,
    work: Path,
    concurrency: int = CONCURRENCY,
    count: int = FOLDER_SIZE,
) -> dict[str, Any]:
    """Time one ``mlsvc classify`` of a ``count``-image folder of ``image`` against ``url``."""
    folder = write_folder(work / "folder", image, count)
    output = work / "out.jsonl"
    output.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(
        command(url, token, folder, output, concurrency),
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return outcome(output, proc.returncode, proc.stderr, seconds, concurrency)


def main() -> int:
    import tempfile

    from bench import api
    from bench.images import small_jpeg
    from bench.torchserve import build_our_archive, serve

    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        root = Path(tmp)
        archive = build_our_archive(root / "store", "fp32")
        with serve(root / "ts", root / "store", archive) as ts, api.start_api(ts, root / "api") as server:
            print(json.dumps(measure(server.url, server.token, small_jpeg(), root / "cli")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
