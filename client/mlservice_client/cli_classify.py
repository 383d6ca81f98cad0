"""``mlsvc classify``: the command's options; the run itself is ``mlservice_client.batch``."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from . import batch, exit_codes
from .cli_session import Session, api_command
from .inputs import expand
from .output import FORMATS, Writer, done_sources, open_for_append


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-j", "--jobs", type=click.IntRange(1, 256), default=4, show_default=True, help="images in flight"
)
@click.option("-k", "--top-k", type=click.IntRange(1, 100), help="classes per image (the API's default: 5)")
@click.option("--model", help="model name (default: the API's default model)")
@click.option("--version", "model_version", help="model version (default: the model's default)")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="output format [default: table on a terminal, else jsonl]",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write lines to this file (default: stdout)",
)
@click.option(
    "--resume", is_flag=True, help="skip inputs that already have a line in --output (jsonl or csv)"
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="progress bar on stderr [default: when stderr is a terminal]",
)
@click.pass_obj
@api_command
def classify(
    session: Session, paths: tuple[str, ...], jobs: int, top_k: int | None, model: str | None,
    model_version: str | None, fmt: str | None, output: Path | None, resume: bool, progress: bool | None,
) -> None:  # fmt: skip
    """Classify images: files, directories (recursively, image suffixes only), glob patterns, `-` (stdin).

    One line per input, in the order they finish, then a summary on stderr: ok, failed by reason,
    images/s. Files the API refuses get an error line and the run goes on."""
    fmt = fmt or ("table" if output is None and sys.stdout.isatty() else "jsonl")
    if resume and (output is None or fmt == "table"):
        raise click.UsageError("--resume needs --output FILE in jsonl or csv format")
    sources = expand(paths)
    if not sources:
        raise click.UsageError("no input files found")
    client = session.client()
    skip = done_sources(output, fmt) if resume and output else set()
    if output is not None:
        stream, had_lines = open_for_append(output) if resume else (output.open("w", encoding="utf-8"), False)
    else:
        stream, had_lines = sys.stdout, False
    opts = batch.Options(
        jobs, top_k, model, model_version, sys.stderr.isatty() if progress is None else progress
    )
    try:
        with stop_on_signals() as stop:
            summary = batch.run(client, sources, skip, Writer(stream, fmt, header=not had_lines), opts, stop)
    except KeyboardInterrupt:
        click.echo("mlsvc: aborted; `classify --resume` with the same --output finishes the run", err=True)
        sys.exit(exit_codes.INTERRUPTED)
    finally:
        if output is not None:
            stream.close()
    batch.report(summary)
    sys.exit(summary.exit_code())


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that the first SIGINT (Ctrl-C) or SIGTERM sets: the run sends nothing more and writes
    the answers still coming. A second signal aborts at once (KeyboardInterrupt)."""
    stop = threading.Event()

    def first(signum: int, _frame: object) -> None:
        stop.set()
        click.echo("\nmlsvc: stopping after the images in flight (Ctrl-C again to abort)", err=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.default_int_handler)

    previous = {sig: signal.signal(sig, first) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
