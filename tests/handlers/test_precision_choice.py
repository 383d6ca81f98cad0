"""Which precision an archive is built for and served in: CPU flags, --precision auto, the int8 fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import build_archive
import classifier_handler as ch
from archive_compile import depthwise_convs, resolve_precision
from classifier_config import load_handler_config
from classifier_cpu import best_precision, cpu_flags, isa_flags, missing_flags
from tests.handlers.test_handler_unit import TINY_MODEL, class_names, make_context, make_model_dir, photo
from tests.handlers.test_image_pipeline import encode

ZEN4 = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
CASCADE_LAKE = {"avx2", "fma", "avx512f", "avx512_vnni"}
HASWELL = {"avx2", "fma"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(SAPPHIRE_RAPIDS, "bf16"), (ZEN4, "bf16"), (CASCADE_LAKE, "int8"), (HASWELL, "fp32"), (set(), "fp32")],
)
def test_best_precision_follows_the_cpu_flags(flags: set[str], expected: str) -> None:
    precision, why = best_precision(flags)
    assert precision == expected and why


def test_auto_resolves_to_the_cpus_best_and_other_choices_stay() -> None:
    assert resolve_precision("auto", CASCADE_LAKE) == ("int8", best_precision(CASCADE_LAKE)[1])
    assert resolve_precision("fp32", SAPPHIRE_RAPIDS) == ("fp32", "asked for")


def test_builder_records_the_resolved_precision() -> None:
    args = build_archive.parse_args(["--precision", "auto"])
    config = build_archive.model_config(args, build_archive.ARCHS["resnet50"])

    expected = best_precision(cpu_flags())[0]
    assert args.precision == config["handler"]["precision"] == expected
    assert args.aot is (expected == "int8")  # int8 exists only compiled
    assert build_archive.parse_args(["--precision", "int8"]).aot is True


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nflags\t\t: fpu avx2 amx_int8 avx512f\n\nprocessor\t: 1\nflags\t: fpu\n"
    )

    flags = cpu_flags(cpuinfo)

    assert flags == {"fpu", "avx2", "amx_int8", "avx512f"}
    assert isa_flags(flags) == ["avx2", "avx512f", "amx_int8"]
    assert missing_flags(["avx2", "amx_bf16"], flags) == ["amx_bf16"]
    assert cpu_flags(tmp_path / "absent") == set()


def test_int8_needs_its_compiled_package_in_the_config() -> None:
    with pytest.raises(ValueError, match="aot_package"):
        load_handler_config({"precision": "int8"})
    with pytest.raises(ValueError, match="aot_isa"):
        load_handler_config({"aot_package": "m.pt2", "aot_isa": "avx2"})
    config = load_handler_config({"precision": "int8", "aot_package": "m.pt2", "aot_isa": ("avx2",)})
    assert config["aot_isa"] == ["avx2"]


def test_depthwise_convolutions_are_found_by_shape() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3, groups=8), torch.nn.Conv2d(8, 8, 1, groups=2)
    )
    assert depthwise_convs(model) == ["1"]


def test_int8_archive_on_a_cpu_without_its_flags_serves_fp32_and_says_so(tmp_path: Path) -> None:
    model_file = tmp_path / "src" / "tiny.py"
    model_file.parent.mkdir()
    model_file.write_text(TINY_MODEL)
    state = {
        "conv.weight": torch.zeros(4, 3, 3, 3),
        "conv.bias": torch.zeros(4),
        "fc.weight": torch.zeros(1000, 4),
        "fc.bias": torch.arange(1000, dtype=torch.float32) / 100,
    }
    labels = {str(i): name for i, name in enumerate(class_names())}
    settings = {"precision": "int8", "aot_package": "tiny-int8.pt2", "aot_isa": ["avx2", "no_such_flag"]}
    model_dir = make_model_dir(tmp_path / "model", model_file, state, labels, settings)
    handler = ch.ImageClassifierHandler()

    handler.initialize(make_context(model_dir, 1))
    out = handler.handle([{"body": encode(photo(), "PNG")}], make_context(model_dir, 1))[0]

    assert (handler.precision, handler.aot) == ("fp32", False)
    assert out["model"]["precision"] == "fp32"
    assert out["predictions"][0]["class_id"] == 999
