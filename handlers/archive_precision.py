"""``--precision auto`` decided by measurement at archive build.

The candidates are the precisions this CPU runs in its own instructions (``candidates``): fp32 always;
bf16 where the CPU computes bf16 natively (AMX or AVX512-BF16; elsewhere it is emulated through fp32 and
slower than fp32); int8 always (its kernels use VNNI or AMX where the CPU has them, 16-bit pair sums
elsewhere). Each one is compiled ahead of time as it would be served, then:

- checked (``agreement``): its top-1 against the eager fp32 model's on the check views, other crops of
  the calibration photos, counting the views fp32 recognises (top-1 probability at least ``RECOGNISED``,
  the precision tests' rule: elsewhere fp32's probability is spread so thin that any rounding re-ranks
  its classes); it passes with at least ``MIN_AGREEMENT`` of them agreeing (with untrained weights no view
  is recognised, and every candidate passes);
- timed (``time_models``): the model alone on one batch of TorchServe's batch size, every candidate once
  per round, rounds interleaved so that a busy neighbour slows them all alike; the median counts.

The fastest that passed wins; fp32 is the reference and always passes. ``build_info.json`` records every
candidate's timing and check, and why the others were left out. The CPU-flag rule (``best_precision``)
remains for ``--auto-by flags``, which times nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from classifier_cpu import BF16_FLAGS

RECOGNISED = 0.3
MIN_AGREEMENT = 0.98
CHECK_VIEWS = 16  # crops per calibration photo for the accuracy check (another seed than calibration's)
TIMING_ROUNDS = 7
WARMUP_CALLS = 2  # oneDNN sets up its kernels for a new shape on the first calls


def candidates(flags: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The precisions worth timing on this CPU, and why the others are not."""
    present = set(flags)
    if any(flag in present for flag in BF16_FLAGS):
        return ["fp32", "bf16", "int8"], {}
    return ["fp32", "int8"], {
        "bf16": "the CPU has no native bf16 (AMX, AVX512-BF16): emulated, slower than fp32"
    }


def logits(model: Callable[..., torch.Tensor], batch: torch.Tensor, chunk: int) -> torch.Tensor:
    """``model`` over ``batch`` in chunks, as float logits."""
    with torch.inference_mode():
        return torch.cat([model(batch[s : s + chunk]).float() for s in range(0, len(batch), chunk)])


def recognised(reference: torch.Tensor) -> torch.Tensor:
    """The rows whose top-1 probability is at least ``RECOGNISED``."""
    return reference.softmax(dim=1).amax(dim=1) >= RECOGNISED


def agreement(reference: torch.Tensor, candidate: torch.Tensor) -> dict[str, Any]:
    """Top-1 agreement of ``candidate`` with ``reference`` logits on the views the reference recognises."""
    rows = recognised(reference)
    agreeing = int((reference.argmax(1) == candidate.argmax(1))[rows].sum())
    views = int(rows.sum())
    share = agreeing / views if views else 1.0
    return {"views": views, "agreeing": agreeing, "passed": share >= MIN_AGREEMENT}


def time_models(
    models: Mapping[str, Callable[..., Any]], batch: torch.Tensor, rounds: int = TIMING_ROUNDS
) -> dict[str, float]:
    """Median ms per call of each model on ``batch``, the models interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():
            for _ in range(WARMUP_CALLS):
                model(batch)
        for _ in range(rounds):
            for name, model in models.items():
                start = time.perf_counter()
                model(batch)
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(values) for name, values in times.items()}


def choose(timings: dict[str, float], checks: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The fastest precision whose check passed, and why."""
    passed = {name: ms for name, ms in timings.items() if checks[name]["passed"]}
    best = min(passed, key=passed.__getitem__)
    others = ", ".join(f"{name} {ms:.1f} ms" for name, ms in sorted(timings.items(), key=lambda kv: kv[1]))
    failed = [name for name in timings if name not in passed]
    why = f"fastest that matches fp32 at build ({others} per batch)"
    return best, why + (f"; {', '.join(failed)} failed the accuracy check" if failed else "")
