"""The served model: the archive's model file and weights, prepared for inference.

``load_model`` imports the model definition file, builds its only ``nn.Module`` class and loads the
state_dict (checked by ``check_fits``, which the archive builder runs too, before packaging). The handler
then folds BatchNorm into the convs (``fuse_conv_bn``), puts the weights in channels_last layout, wraps the
network in ``ServedModel`` (normalisation of the uint8 batch inside the module) and optionally compiles it
(``compile_model``). ``autocast`` gives the precision's context for the forward pass.

An archive may also hold an AOTInductor package compiled at build time (fp32, bf16 or int8, see the builder's
``archive_compile``); ``load_aot_package`` loads it, on a CPU with the instruction set it was built for.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from ts.utils.util import list_classes_from_module

from classifier_cpu import cpu_flags, missing_flags

logger = logging.getLogger(__name__)


class ServedModel(torch.nn.Module):
    """The network behind its input transform: NHWC uint8 batch in, logits out.

    The transform is ``(x / 255 - mean) / std``, computed as ``x * scale + shift``. Inside the module,
    ``torch.compile`` fuses it with the layout change and autocast's bf16 cast into one pass over the batch
    instead of three eager ones. ``scale`` and ``shift`` are non-persistent buffers: the state_dict is the
    network's, with a ``net.`` prefix.
    """

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(
        self, net: torch.nn.Module, mean: Sequence[float], std: Sequence[float], channels_last: bool
    ) -> None:
        super().__init__()
        self.net = net
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.permute(0, 3, 1, 2).float()  # a permuted NHWC tensor is NCHW with channels_last strides
        x = x.mul_(self.scale).add_(self.shift)
        return self.net(x.contiguous(memory_format=self.layout))


def select_device(gpu_id: Any) -> torch.device:
    """The GPU TorchServe assigned to this worker, else CPU."""
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{int(gpu_id)}")
    return torch.device("cpu")


def load_model(model_dir: str, model_file: str, weights_file: str, device: torch.device) -> torch.nn.Module:
    """Build the model file's only nn.Module class and load the archive's state_dict into it (eval mode)."""
    model = model_class(Path(model_dir) / model_file)()
    state_dict = torch.load(Path(model_dir) / weights_file, map_location=device, weights_only=True)
    check_fits(model, state_dict, weights_file)
    model.load_state_dict(state_dict)
    return model.to(device).eval()


def model_class(path: Path) -> type[torch.nn.Module]:
    """The single nn.Module subclass defined in the model file ``path`` (TorchServe refuses files with more
    or fewer). The file is imported as the top-level module named after it, as TorchServe imports it."""
    if not path.is_file():
        raise ValueError(f"model definition file not found: {path}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import the model file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # like a normal import; torch.compile and pickling expect it
    spec.loader.exec_module(module)
    classes = list_classes_from_module(module, torch.nn.Module)
    if len(classes) != 1:
        raise ValueError(f"{path.name} must define exactly one nn.Module class, found {len(classes)}")
    return classes[0]


def check_fits(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str) -> None:
    """Raise ValueError saying what differs (first five) when ``state_dict`` does not fit ``model``.

    Compares names and shapes only, so ``model`` may live on the meta device.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = [f"missing {k}" for k in expected if k not in state_dict]
    problems += [f"unexpected {k}" for k in state_dict if k not in expected]
    problems += [
        f"{k}: shape {tuple(v.shape)}, model wants {expected[k]}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        name = type(model).__name__
        raise ValueError(f"weights from {origin} do not fit {name}: {'; '.join(problems[:5])}{more}")


def fuse_conv_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm into the conv before it (torch.fx); the model as-is if not traceable.

    Inference only (the folded weights ignore BN's running-stat updates). The forward pass then skips a
    pass over every BatchNorm's activations; outputs match to float rounding.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model)
    except Exception:  # a model fx cannot trace (data-dependent control flow) is served unfused
        logger.warning("conv+bn folding failed; serving the unfused model", exc_info=True)
        return model


def compile_model(model: torch.nn.Module) -> Any:
    """torch.compile (inductor) with weight freezing, one static graph per batch size.

    Static shapes, because inductor's CPU kernels for fixed shapes are the fast ones; the handler's
    warm-up compiles every batch size up to TorchServe's batchSize at load time, not on first requests.
    """
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold weights (conv+bn folding, prepacked oneDNN weights)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(model, dynamic=False)


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """The forward pass's precision: bf16 autocast on ``device`` for "bf16", plain fp32 otherwise."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def load_aot_package(path: Path, required_isa: Sequence[str], device: torch.device) -> Any | None:
    """The AOTInductor package at ``path``, callable like ``ServedModel``; None (with a warning saying why)
    where it cannot serve here: another device than the CPU, a CPU without the flags it was built with, or a
    package this torch cannot load."""
    if device.type != "cpu":
        logger.warning("the AOT package %s is compiled for the CPU; serving eager on %s", path.name, device)
        return None
    missing = missing_flags(required_isa, cpu_flags())
    if missing:
        logger.warning("the AOT package %s needs CPU flags %s that this CPU lacks", path.name, missing)
        return None
    try:
        return torch._inductor.aoti_load_package(str(path))
    except Exception:
        logger.warning("cannot load the AOT package %s", path.name, exc_info=True)
        return None
