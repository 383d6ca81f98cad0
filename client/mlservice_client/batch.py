"""One ``mlsvc classify`` run: the inputs, the progress bar, the output lines, the summary, the exit code.

A file the API refuses (not an image, too large, empty) or that cannot be read gets its error line and
the run goes on. An error that would fail every file alike (no valid token, admins only, an unknown
model, the service still down after the retry deadline) stops the run: what finished is written, the
rest is not, and ``--resume`` picks it up later.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import click
from tqdm import tqdm

from . import exit_codes
from .client import Client
from .errors import (
    AuthenticationError,
    ClientError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    TransportError,
)
from .inputs import STDIN
from .output import Writer
from .results import ItemResult

# Errors that concern the whole run, not one file.
FATAL = (
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    TransportError,
)


@dataclass
class Summary:
    """What a run did: counts by outcome, and why it stopped early, if it did."""

    total: int
    skipped: int = 0
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    stopped_by: ClientError | None = None
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.ok + sum(self.failed.values())

    def line(self) -> str:
        reasons = ", ".join(f"{slug} {n}" for slug, n in self.failed.most_common())
        failed = f"failed {sum(self.failed.values())}" + (f" ({reasons})" if reasons else "")
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        parts = [f"ok {self.ok}", failed]
        if self.skipped:
            parts.append(f"skipped {self.skipped} (already in the output)")
        if self.stopped_by is not None or self.interrupted or self.done < self.total - self.skipped:
            parts.append(f"not done {self.total - self.skipped - self.done}")
        parts.append(f"{self.done} images in {self.seconds:.1f} s, {rate:.1f} images/s")
        return ", ".join(parts)

    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return exit_codes.for_error(self.stopped_by)
        if self.interrupted:
            return exit_codes.INTERRUPTED
        return exit_codes.SOME_FAILED if self.failed else exit_codes.OK


@dataclass
class Options:
    concurrency: int = 4
    top_k: int | None = None
    model: str | None = None
    version: str | None = None
    progress: bool = True


def run(
    client: Client,
    sources: list[str],
    skip: set[str],
    writer: Writer,
    opts: Options,
    stop: threading.Event | None = None,
) -> Summary:
    """Classify ``sources`` less ``skip``, writing a line per input to ``writer``. Once ``stop`` is set,
    nothing more is sent, and the images already sent still get their lines."""
    todo = [source for source in sources if source not in skip]
    summary = Summary(total=len(sources), skipped=len(sources) - len(todo))
    bar = tqdm(total=len(todo), unit="img", disable=not opts.progress, file=sys.stderr, dynamic_ncols=True)
    started = time.perf_counter()
    try:
        for item in _results(client, todo, opts, stop or threading.Event()):
            if item.error is not None and isinstance(item.error, FATAL):
                summary.stopped_by = item.error
                break
            writer.write(item)
            if item.ok:
                summary.ok += 1
            else:
                assert item.error is not None
                summary.failed[item.error.slug] += 1
            bar.update(1)
    finally:
        summary.interrupted = stop is not None and stop.is_set()
        summary.seconds = time.perf_counter() - started
        bar.close()
    return summary


def _results(client: Client, todo: list[str], opts: Options, stop: threading.Event) -> Iterator[ItemResult]:
    files = [source for source in todo if source != STDIN]
    if STDIN in todo:
        yield _from_stdin(client, opts)
    yield from client.classify_many(
        files,
        concurrency=opts.concurrency,
        top_k=opts.top_k,
        model=opts.model,
        version=opts.version,
        stop=stop,
    )


def _from_stdin(client: Client, opts: Options) -> ItemResult:
    data = sys.stdin.buffer.read()
    try:
        result = client.classify(
            data, top_k=opts.top_k, model=opts.model, version=opts.version, filename="stdin"
        )
    except ClientError as exc:
        return ItemResult(STDIN, error=exc)
    return ItemResult(STDIN, classification=result)


def report(summary: Summary) -> None:
    """The summary (and why the run stopped) on standard error."""
    if summary.stopped_by is not None:
        click.echo(f"mlsvc: stopped: {summary.stopped_by}", err=True)
    elif summary.interrupted:
        click.echo(
            "mlsvc: interrupted; `classify --resume` with the same --output finishes the run", err=True
        )
    click.echo(summary.line(), err=True)
