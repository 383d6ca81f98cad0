"""bf16, int8, ahead-of-time compiled and auto archives answer like fp32, through OUR handler in a real
TorchServe.

The reference set is the pretrained EfficientNet-Lite0 on views of scikit-image's photos (other photos than
the ones that calibrate int8): several crops of each, every other one mirrored. Each archive of the same
weights - eager fp32 (the reference), bf16 eager and compiled at build, int8 (quantized and compiled at
build), fp32 compiled at build, ``--precision auto`` - classifies every view, and:

- top-1 agrees with fp32 on at least 98 % of the views the fp32 model recognises (top-1 probability at
  least ``RECOGNISED``). Over all 132 views no precision but fp32 reaches 98 % (130 views): bf16 (eager)
  agrees on 127, int8 on 127 with the 7-bit activations of CPUs without VNNI and 130 with 8 bits (q/dq
  simulated). The views they change are ones fp32 is unsure of: two within 0.02 (logit) of a tie, the
  others with their top-1 probability spread thin (0.03 to 0.2), where any rounding re-ranks the classes;
  only bf16 changes a recognised one (a clock at 0.33, 0.7 logit ahead). On the 83 recognised views int8
  agrees on all of them, bf16 on 82;
- the labelled photos (cat, coffee, rocket) keep their top-5 hits: no view whose fp32 top 5 holds one of
  the photo's classes loses it in the other precision;
- every answer names the precision that served it; auto serves the fastest candidate its build timed
  whose accuracy check passed.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

import archive_precision
import build_archive
from archive_quantize import random_view
from classifier_cpu import cpu_flags
from launcher.torchserve_process import TorchServe
from tests.handlers.conftest import registered

LABELLED = {
    "chelsea": {281, 282, 283, 284, 285},  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": {967, 968, 504},  # espresso, cup, coffee mug
    "rocket": {657, 744, 812},  # missile, projectile, space shuttle
}
OTHERS = ("immunohistochemistry", "retina", "camera", "page", "clock", "moon", "coins")
VIEWS = 12
RECOGNISED = 0.3
MIN_AGREEMENT = 0.98


def photos() -> dict[str, Image.Image]:
    from skimage import data

    images = {name: getattr(data, name)() for name in (*LABELLED, *OTHERS)}
    left, _, _ = data.stereo_motorcycle()
    images["motorcycle"] = left
    return {name: Image.fromarray(pixels).convert("RGB") for name, pixels in images.items()}


@pytest.fixture(scope="module")
def reference_set() -> list[tuple[str, bytes]]:
    """(photo name, JPEG bytes) for ``VIEWS`` seeded crops of every photo."""
    rng = np.random.default_rng(0)
    views = []
    for name, image in photos().items():
        for index in range(VIEWS):
            buffer = io.BytesIO()
            random_view(image, rng, mirrored=index % 2 == 1).save(buffer, format="JPEG", quality=92)
            views.append((name, buffer.getvalue()))
    return views


def build_and_register(torchserve: TorchServe, name: str, *options: str) -> Iterator[str]:
    store = str(torchserve.model_store)
    argv = ["--arch", "efficientnet_lite0", "--model-name", name, "--export-path", store, "--no-download"]
    result = build_archive.build(build_archive.parse_args([*argv, "--force", *options]))
    assert result.trained, result.weights_source
    with registered(torchserve, name):
        yield name


@pytest.fixture(scope="module")
def fp32(torchserve: TorchServe) -> Iterator[str]:
    yield from build_and_register(torchserve, "lite0_fp32")


@pytest.fixture(scope="module")
def bf16(torchserve: TorchServe) -> Iterator[str]:
    yield from build_and_register(torchserve, "lite0_bf16", "--precision", "bf16")


@pytest.fixture(scope="module")
def bf16_aot(torchserve: TorchServe) -> Iterator[str]:
    yield from build_and_register(torchserve, "lite0_bf16_aot", "--precision", "bf16", "--aot")


@pytest.fixture(scope="module")
def int8(torchserve: TorchServe) -> Iterator[str]:
    yield from build_and_register(torchserve, "lite0_int8", "--precision", "int8")


@pytest.fixture(scope="module")
def auto(torchserve: TorchServe) -> Iterator[str]:
    yield from build_and_register(torchserve, "lite0_auto", "--precision", "auto")


@pytest.fixture(scope="module")
def fp32_aot(torchserve: TorchServe) -> Iterator[str]:
    yield from build_and_register(torchserve, "lite0_fp32_aot", "--aot")


def classify(torchserve: TorchServe, model: str, views: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Every view's answer from ``model`` (several in flight, so TorchServe batches them)."""

    def one(view: tuple[str, bytes]) -> dict[str, Any]:
        headers = {**torchserve.headers(), "X-Top-K": "5"}
        r = requests.post(
            f"{torchserve.inference_url}/predictions/{model}", data=view[1], headers=headers, timeout=120
        )
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, views))


def served_as(torchserve: TorchServe, model: str) -> str:
    """What the worker's load line says it serves: "fp32", "bf16 AOT" (the archive's compiled package)..."""
    log = (torchserve.log_dir / "model_log.log").read_text(errors="replace")
    match = re.findall(rf"loaded {re.escape(model)} \S+ on cpu: ([a-z0-9]+(?: AOT)?),", log)
    assert match, f"no load line for {model}"
    return match[-1]


def top5(answer: dict[str, Any]) -> list[int]:
    return [p["class_id"] for p in answer["predictions"]]


def hits(name: str, answer: dict[str, Any]) -> bool:
    return bool(LABELLED[name] & set(top5(answer)))


@pytest.fixture(scope="module")
def fp32_answers(torchserve: TorchServe, fp32: str, reference_set: list[tuple[str, bytes]]) -> list[Any]:
    answers = classify(torchserve, fp32, reference_set)
    assert {a["model"]["precision"] for a in answers} == {"fp32"}
    return answers


@pytest.mark.parametrize(
    ("archive", "precision", "served"),
    [("bf16", "bf16", "bf16"), ("bf16_aot", "bf16", "bf16 AOT"), ("int8", "int8", "int8 AOT")],
)
def test_precision_agrees_with_fp32(
    request: pytest.FixtureRequest,
    torchserve: TorchServe,
    reference_set: list[tuple[str, bytes]],
    fp32_answers: list[dict[str, Any]],
    archive: str,
    precision: str,
    served: str,
) -> None:
    model = request.getfixturevalue(archive)

    answers = classify(torchserve, model, reference_set)

    assert served_as(torchserve, model) == served
    assert {a["model"]["precision"] for a in answers} == {precision}
    assert_agrees_with_fp32(reference_set, fp32_answers, answers)


def assert_agrees_with_fp32(
    reference_set: list[tuple[str, bytes]], fp32_answers: list[dict[str, Any]], answers: list[dict[str, Any]]
) -> None:
    pairs = [
        (ref, ans)
        for ref, ans in zip(fp32_answers, answers, strict=True)
        if ref["predictions"][0]["probability"] >= RECOGNISED
    ]
    assert len(pairs) >= len(reference_set) // 3, "too few recognised views to measure agreement"
    agreeing = sum(top5(ref)[0] == top5(ans)[0] for ref, ans in pairs)
    assert agreeing / len(pairs) >= MIN_AGREEMENT, f"{agreeing} of {len(pairs)} agree"
    for (name, _), ref, ans in zip(reference_set, fp32_answers, answers, strict=True):
        if name in LABELLED:
            assert hits(name, ans) or not hits(name, ref), (name, top5(ref), top5(ans))


def test_auto_serves_the_fastest_candidate_that_matches_fp32(
    torchserve: TorchServe,
    auto: str,
    reference_set: list[tuple[str, bytes]],
    fp32_answers: list[dict[str, Any]],
) -> None:
    with zipfile.ZipFile(torchserve.model_store / f"{auto}.mar") as archive:
        info = json.loads(archive.read("build_info.json"))

    answers = classify(torchserve, auto, reference_set)

    built, choice = info["precision"]["built"], info["aot"]["choice"]
    timed = choice["candidates"]
    assert sorted(timed) == sorted(archive_precision.candidates(cpu_flags())[0])
    assert all(c["ms_per_batch"] > 0 and c["check"]["views"] > 0 for c in timed.values())
    assert timed["fp32"]["check"]["passed"]
    passed = {name: c["ms_per_batch"] for name, c in timed.items() if c["check"]["passed"]}
    assert built == min(passed, key=passed.__getitem__)
    assert info["precision"]["why"] == choice["why"]
    assert served_as(torchserve, auto) == f"{built} AOT"
    assert {a["model"]["precision"] for a in answers} == {built}
    assert_agrees_with_fp32(reference_set, fp32_answers, answers)


def test_fp32_compiled_ahead_of_time_answers_like_eager(
    torchserve: TorchServe,
    fp32_aot: str,
    reference_set: list[tuple[str, bytes]],
    fp32_answers: list[dict[str, Any]],
) -> None:
    views = reference_set[::VIEWS]  # one view of each photo

    answers = classify(torchserve, fp32_aot, views)

    eager = fp32_answers[::VIEWS]
    assert served_as(torchserve, fp32_aot) == "fp32 AOT"
    assert served_as(torchserve, "lite0_fp32") == "fp32"
    assert {a["model"]["precision"] for a in answers} == {"fp32"}
    for ref, ans in zip(eager, answers, strict=True):
        assert top5(ans)[0] == top5(ref)[0]
        for p, q in zip(ref["predictions"], ans["predictions"], strict=True):
            if p["class_id"] == q["class_id"]:
                assert q["probability"] == pytest.approx(p["probability"], abs=2e-3)
