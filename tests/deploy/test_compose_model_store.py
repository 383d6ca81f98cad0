"""The model store in docker-compose.yml: the api is its only long-running writer, TorchServe mounts it
read-only, and the one-shot model-store-init service (the torchserve image, as its user, no network, no
capabilities) fills it before TorchServe starts. Read without a Docker engine, like test_compose.py."""

from __future__ import annotations

import re

from tests.deploy.test_compose import (
    DOCKER,
    ONE_SHOT_SERVICES,
    TS_DOCKERFILE,
    environment,
    final_user,
    mounts,
    named_volumes,
    services,
)

INIT = "model-store-init"
TS_STORE = "/home/model-server/model-store"


def store_source() -> str:
    """What TorchServe serves its archives from: the volume (or host directory) behind its store."""
    sources = [src for src, target, _ in mounts(services()["torchserve"]) if target == TS_STORE]
    assert len(sources) == 1
    return sources[0]


def store_mounts() -> dict[str, tuple[str, bool]]:
    """Each service mounting the store: (target, read_only)."""
    found = {}
    for name, service in services().items():
        for source, target, read_only in mounts(service):
            if source == store_source():
                found[name] = (target, read_only)
    return found


def test_the_store_is_the_model_store_volume_by_default() -> None:
    assert store_source() == "model-store" and "model-store" in named_volumes()


def test_only_the_api_and_the_init_service_mount_the_store_writable() -> None:
    found = store_mounts()

    assert found == {
        "torchserve": (TS_STORE, True),
        "api": (environment(services()["api"])["MODEL_STORE"], False),
        INIT: (TS_STORE, False),
    }
    long_running_writers = {
        name for name, (_, read_only) in found.items() if not read_only and name not in ONE_SHOT_SERVICES
    }
    assert long_running_writers == {"api"}


def test_torchserve_starts_after_the_init_service_finished() -> None:
    deps = services()["torchserve"]["depends_on"]

    assert deps == {INIT: {"condition": "service_completed_successfully"}}
    # The api waits for a healthy TorchServe, hence for the init too.
    assert services()["api"]["depends_on"]["torchserve"]["condition"] == "service_healthy"


def test_the_init_service_runs_once_from_the_torchserve_image_as_its_user() -> None:
    init = services()[INIT]

    assert init["image"] == services()["torchserve"]["image"]
    assert "build" not in init, "the torchserve service builds the image"
    assert init["restart"] == "no"
    assert init["entrypoint"] == ["python", "/opt/deploy/model_store_init.py"]
    # No `user:` override: the image's USER, APP_UID, the owner of the store (and the api's UID).
    assert "user" not in init
    assert final_user(TS_DOCKERFILE) == "${APP_UID}:${APP_UID}"
    assert re.search(r"^COPY .*docker/model_store_init\.py.* /opt/deploy/$", TS_DOCKERFILE.read_text(), re.M)
    assert (DOCKER / "model_store_init.py").is_file()


def test_the_init_service_has_no_network_no_capabilities_and_a_read_only_root() -> None:
    init = services()[INIT]

    assert init["network_mode"] == "none" and "networks" not in init
    assert init["cap_drop"] == ["ALL"] and "cap_add" not in init
    assert "no-new-privileges:true" in init["security_opt"]
    assert init["read_only"] is True
    assert not init.get("ports") and not init.get("expose")
    assert [target for _, target, _ in mounts(init)] == [TS_STORE]
    limits = init["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]
    assert init["logging"]["options"]["max-size"]


def test_torchserve_no_longer_writes_the_store_itself() -> None:
    entrypoint = (DOCKER / "torchserve-entrypoint.sh").read_text()
    code = "\n".join(line for line in entrypoint.splitlines() if not line.lstrip().startswith("#"))

    assert "baked-model-store" not in code
    assert not re.search(r"\b(cp|mv|install|ln)\b[^\n]*MODEL_STORE", code)
