"""The SDK (``mlservice_client.Client``) against the live stack, and the example script that uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlservice_client import Client, InvalidRequestError, NotFoundError, PermissionDeniedError
from tests.client.conftest import Api, User, make_images, mlsvc_env
from tests.control_api.conftest import PASSWORD

EXAMPLE = Path(__file__).resolve().parents[2] / "client" / "examples" / "classify_folder.py"


def test_classify_a_path_or_bytes(api: Api, user: User, tmp_path: Path) -> None:
    photo = make_images(tmp_path, good=1)[0][0]
    client = Client(api.url, username=user.username, password=user.password)

    from_path = client.classify(photo, top_k=3)
    from_bytes = client.classify(photo.read_bytes(), model="resnet50", version="1.0-untrained")

    assert len(from_path.predictions) == 3 and from_path.model == "resnet50"
    assert from_path.width == 96 and from_path.height == 64 and from_path.format == "JPEG"
    assert from_path.top1 == max(from_path.predictions, key=lambda p: p.probability)
    assert len(from_bytes.predictions) == 5 and from_bytes.version == "1.0-untrained"
    assert from_path.request_id and from_path.request_id != from_bytes.request_id
    assert client.renewals == 0  # the first token is a login, not a renewal


def test_errors_are_typed_and_carry_the_api_slug(api: Api, user: User, tmp_path: Path) -> None:
    photo = make_images(tmp_path, good=1)[0][0]
    client = Client(api.url, username=user.username, password=user.password)

    with pytest.raises(InvalidRequestError) as not_an_image:
        client.classify(b"definitely not an image")
    with pytest.raises(NotFoundError) as no_model:
        client.classify(photo, model="nosuchmodel")
    with pytest.raises(PermissionDeniedError) as not_admin:
        client.stats()

    assert (not_an_image.value.status, not_an_image.value.slug) == (415, "unsupported_image")
    assert no_model.value.status == 404 and no_model.value.slug.endswith("not_found")
    assert (not_admin.value.status, not_admin.value.slug) == (403, "admin_required")


def test_classify_many_yields_every_input_once(api: Api, user: User, tmp_path: Path) -> None:
    good, bad = make_images(tmp_path, good=10, bad_per_kind=1)
    client = Client(api.url, username=user.username, password=user.password)

    results = list(client.classify_many([*good, *bad], concurrency=4, top_k=1))

    by_source = {item.source: item for item in results}
    assert len(results) == len(by_source) == 14
    assert all(by_source[str(p)].ok and len(by_source[str(p)].classification.predictions) == 1 for p in good)  # type: ignore[union-attr]
    assert {str(p): by_source[str(p)].error.slug for p in bad} == {str(p): s for p, s in bad.items()}  # type: ignore[union-attr]


def test_history_usage_models_and_stats(api: Api, user: User, tmp_path: Path) -> None:
    photo = make_images(tmp_path, good=1)[0][0]
    client = Client(api.url, username=user.username, password=user.password)
    admin = Client(api.url, username="root", password=PASSWORD)
    client.classify(photo)

    history = client.history(per_page=10)
    usage = client.usage()
    models = admin.models()
    stats = admin.stats()

    assert history["total"] == 1 and history["items"][0]["username"] == user.username
    assert usage["total"]["images"] == 1
    assert models[0]["name"] == "resnet50" and models[0]["versions"][0]["is_default"] is True
    assert stats["total_requests"] >= 1
    assert client.me()["username"] == user.username


def test_the_example_script(api: Api, user: User, tmp_path: Path) -> None:
    good, bad = make_images(tmp_path / "photos", good=4, bad_per_kind=1)

    done = subprocess.run(
        [sys.executable, str(EXAMPLE), api.url, str(tmp_path / "photos"), "--username", user.username],
        env=mlsvc_env(tmp_path, {"MLSVC_PASSWORD": user.password}),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr  # the bad files failed
    rows = dict(line.split("\t", 1) for line in done.stdout.splitlines())
    assert set(rows) == {str(p) for p in [*good, *bad]}
    assert all(not rows[str(p)].startswith("ERROR") for p in good)
    assert all(rows[str(p)] == f"ERROR\t{slug}" for p, slug in bad.items())
    assert "4 of the files failed" in done.stderr
