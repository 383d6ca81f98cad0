"""Which precision an archive is built for and served in: CPU flags, --precision auto (by flags and by
timing), the int8 recipe's parts, the int8 fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archive_precision
import build_archive
import classifier_handler as ch
from archive_compile import resolve_precision
from archive_quantize import (
    bias_corrected,
    depthwise_convs,
    float_layers,
    functional_relus,
    has_int8_dot_products,
    quantize_int8,
    quantized_layers,
    weight_rounding_error,
)
from classifier_config import load_handler_config
from classifier_cpu import best_precision, cpu_flags, isa_flags, missing_flags
from classifier_model import ServedModel
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
    assert resolve_precision("auto", CASCADE_LAKE, "timing") == ("auto", "timed at build")
    assert resolve_precision("fp32", SAPPHIRE_RAPIDS, "timing") == ("fp32", "asked for")


def test_builder_records_the_resolved_precision() -> None:
    args = build_archive.parse_args(["--precision", "auto", "--auto-by", "flags"])
    config = build_archive.model_config(args, build_archive.ARCHS["resnet50"])

    expected = best_precision(cpu_flags())[0]
    assert args.precision == config["handler"]["precision"] == expected
    assert args.aot is (expected == "int8")  # int8 exists only compiled
    assert build_archive.parse_args(["--precision", "int8"]).aot is True
    timed = build_archive.parse_args(["--precision", "auto"])
    assert (timed.precision, timed.aot) == ("auto", True)  # decided by timing the compiled candidates


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (SAPPHIRE_RAPIDS, ["fp32", "bf16", "int8"]),
        (ZEN4, ["fp32", "bf16", "int8"]),
        (HASWELL, ["fp32", "int8"]),
    ],
)
def test_auto_times_bf16_only_where_the_cpu_computes_it(flags: set[str], expected: list[str]) -> None:
    names, left_out = archive_precision.candidates(flags)

    assert names == expected
    assert ("bf16" in left_out) is ("bf16" not in expected)


def test_auto_picks_the_fastest_candidate_that_passed_its_check() -> None:
    timings = {"fp32": 120.0, "bf16": 70.0, "int8": 50.0}
    checks = {
        "fp32": {"views": 20, "agreeing": 20, "passed": True},
        "bf16": {"views": 20, "agreeing": 20, "passed": True},
        "int8": {"views": 20, "agreeing": 17, "passed": False},
    }

    best, why = archive_precision.choose(timings, checks)

    assert best == "bf16"
    assert "int8 50.0 ms" in why and "int8 failed the accuracy check" in why
    assert archive_precision.choose(timings, {**checks, "int8": checks["bf16"]})[0] == "int8"


def test_the_accuracy_check_counts_the_views_fp32_recognises() -> None:
    reference = torch.zeros(4, 10)  # rows 0, 2, 3 recognised (top-1 over 0.3); row 1 spread over 10 classes
    reference[0, 0], reference[1, 1], reference[2, 1], reference[3, 2] = 5.0, 0.2, 4.0, 4.0
    unsure_changed, recognised_changed = reference.clone(), reference.clone()
    unsure_changed[1, 5] = 0.3
    recognised_changed[3, 7] = 4.5

    unsure = archive_precision.agreement(reference, unsure_changed)
    changed = archive_precision.agreement(reference, recognised_changed)
    untrained = archive_precision.agreement(torch.zeros(4, 10), recognised_changed)

    assert unsure == {"views": 3, "agreeing": 3, "passed": True}
    assert changed == {"views": 3, "agreeing": 2, "passed": False}
    assert untrained == {"views": 0, "agreeing": 0, "passed": True}


def test_timing_interleaves_the_candidates() -> None:
    calls: list[str] = []
    models = {name: (lambda batch, name=name: calls.append(name)) for name in ("a", "b")}

    timings = archive_precision.time_models(models, torch.zeros(1), rounds=3)

    assert set(timings) == {"a", "b"} and all(ms >= 0 for ms in timings.values())
    warmup = archive_precision.WARMUP_CALLS * 2
    assert calls[warmup:] == ["a", "b"] * 3


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


def test_int8_keeps_depthwise_and_image_convolutions_in_float() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.Conv2d(8, 8, 3, groups=8),
        torch.nn.Conv2d(8, 8, 1, groups=2),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 2),
    )

    assert depthwise_convs(model) == ["1"]
    assert float_layers(model) == ["1", "0"]
    assert quantized_layers(model, float_layers(model)) == ["2", "4"]


def test_int8_quantizes_a_model_that_calls_one_relu_module_several_times() -> None:
    class SharedReLU(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv2d(3, 8, 1), torch.nn.Conv2d(8, 8, 1)
            self.relu = torch.nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.relu(self.conv1(x))
            return self.relu(self.conv2(y) + y)  # conv + add + the same ReLU: torchvision's Bottleneck

    net = SharedReLU().eval()
    model = ServedModel(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), channels_last=True).eval()
    calibration = torch.randint(
        0, 256, (4, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )

    quantized = quantize_int8(model, calibration, max_batch=8)

    with torch.no_grad():
        torch.testing.assert_close(quantized(calibration), model(calibration), atol=0.1, rtol=0.05)
    copy = SharedReLU()
    functional_relus(copy)
    assert not any(isinstance(m, torch.nn.ReLU) for m in copy.modules())
    assert isinstance(net.relu, torch.nn.ReLU)  # quantization works on a copy


def test_int8_calibrates_in_batches_no_larger_than_the_served_one() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    model = ServedModel(net, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), channels_last=True).eval()
    calibration = torch.randint(
        0, 256, (11, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )

    quantized = quantize_int8(model, calibration, max_batch=4)  # TorchServe's batchSize below the chunk

    with torch.no_grad():
        torch.testing.assert_close(quantized(calibration[:4]), model(calibration[:4]), atol=0.1, rtol=0.05)


def test_int8_activations_keep_7_bits_without_int8_dot_products() -> None:
    assert has_int8_dot_products(CASCADE_LAKE) and has_int8_dot_products(SAPPHIRE_RAPIDS)
    assert not has_int8_dot_products(HASWELL)


def test_weight_rounding_error_is_the_quantizers_own() -> None:
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq

    weight = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    weight[2] *= 40  # channels of very different ranges
    spec = xiq.get_default_x86_inductor_quantization_config().weight
    assert spec is not None
    observer = spec.observer_or_fake_quant_ctr.with_args(  # as prepare_pt2e builds it from the spec
        dtype=spec.dtype, quant_min=spec.quant_min, quant_max=spec.quant_max, qscheme=spec.qscheme, ch_axis=0
    )()
    observer(weight)
    scale, zero_point = observer.calculate_qparams()

    from torch.ao.quantization.fx import _decomposed  # noqa: F401  (registers the ops convert_pt2e uses)

    ops = torch.ops.quantized_decomposed
    quantized = ops.quantize_per_channel(weight, scale, zero_point, 0, -128, 127, torch.int8)
    expected = ops.dequantize_per_channel(quantized, scale, zero_point, 0, -128, 127, torch.int8)

    torch.testing.assert_close(weight + weight_rounding_error(weight), expected)


def test_bias_correction_cancels_the_mean_shift_of_int8_weights() -> None:
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(16, 8, 1, bias=False)
    model = torch.nn.Sequential(conv).eval()
    calibration = torch.rand(32, 16, 6, 6, generator=generator) * 6  # ReLU6 outputs: far from zero-mean
    weight = conv.weight.detach()
    rounded = weight + weight_rounding_error(weight)

    corrected = bias_corrected(model, ["0"], calibration)[0]
    assert isinstance(corrected, torch.nn.Conv2d)

    with torch.no_grad():
        exact = model(calibration)
        plain = torch.nn.functional.conv2d(calibration, rounded)
        fixed = torch.nn.functional.conv2d(calibration, rounded, corrected.bias)
    shift, remaining = (plain - exact).mean(dim=(0, 2, 3)), (fixed - exact).mean(dim=(0, 2, 3))
    assert shift.abs().max() > 1e-3
    assert remaining.abs().max() < shift.abs().max() / 100
    assert conv.bias is None  # the caller's model is left as it was


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
