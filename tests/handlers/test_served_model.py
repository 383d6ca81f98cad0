"""classifier_model: the served module's input transform, model-file loading, weight fitting, BN folding.

The model input is checked along the handler's real path: ``resize_crop`` (HWC uint8), stacked into a batch,
then ``ServedModel``'s normalisation (here in front of an identity network).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classifier_config import IMAGENET_MEAN as MEAN
from classifier_config import IMAGENET_STD as STD
from classifier_image import resize_crop
from classifier_model import ServedModel, fuse_conv_bn, load_model, model_class
from tests.handlers.test_image_pipeline import _natural_looking


def model_input(img: Image.Image, resize_size: int = 256, crop_size: int = 224) -> torch.Tensor:
    """What the network receives for ``img``: (3, crop, crop) float, normalised with ImageNet's mean/std."""
    batch = torch.from_numpy(np.stack([resize_crop(img, resize_size, crop_size)]))
    with torch.inference_mode():
        return ServedModel(torch.nn.Identity(), MEAN, STD, channels_last=False)(batch)[0]


def formula(batch: torch.Tensor) -> torch.Tensor:
    """NHWC uint8 -> NCHW ``(x / 255 - mean) / std``, written out as the reference."""
    x = batch.permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


# ------------------------------------------------------------------------------------------ the model input


def test_model_input_shape_and_constant_image_normalisation() -> None:
    colour = (124, 116, 104)
    tensor = model_input(Image.new("RGB", (640, 480), colour), 256, 224)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    for channel in range(3):
        expected = (colour[channel] / 255 - MEAN[channel]) / STD[channel]
        assert torch.allclose(tensor[channel], torch.full((224, 224), expected), atol=1e-5)


@pytest.mark.parametrize("size", [(2000, 10), (10, 2000), (1, 1), (224, 224), (300, 200)])
def test_model_input_any_aspect_ratio(size: tuple[int, int]) -> None:
    assert model_input(Image.new("RGB", size, (1, 2, 3))).shape == (3, 224, 224)


def test_model_input_matches_torchvision_resize_centercrop() -> None:
    from torchvision import transforms as T

    img = _natural_looking(640, 452)
    reference = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])(img)
    ours = model_input(img, 256, 224)
    one_level = 1 / 255 / min(STD)
    assert (ours - reference).abs().max().item() <= one_level + 1e-4  # at most a 1-level rounding step
    assert (ours - reference).abs().mean().item() < 1e-3


@pytest.mark.parametrize("channels_last", [True, False])
def test_served_model_normalises_uint8_batches(channels_last: bool) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten()).eval()
    seen: list[torch.Tensor] = []
    net.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
    batch = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    served = ServedModel(net, MEAN, STD, channels_last).eval()
    with torch.inference_mode():
        out = served(batch)
        expected = net(formula(batch))
    assert torch.allclose(out, expected, atol=1e-5)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert seen[0].shape == (2, 3, 8, 8)
    assert seen[0].is_contiguous(memory_format=layout)
    assert torch.allclose(seen[0], formula(batch), atol=1e-5)
    # The constants are not weights: the archive's state_dict loads into the network as before.
    assert set(served.state_dict()) == {f"net.{key}" for key in net.state_dict()}


# ------------------------------------------------------------------------------------ model file, weights


ONE_CLASS = """from torch import nn


class A(nn.Linear):
    def __init__(self) -> None:
        super().__init__(2, 2)
"""
TWO_CLASSES = (
    ONE_CLASS
    + """

class B(nn.Linear):
    def __init__(self) -> None:
        super().__init__(2, 3)
"""
)


def test_model_file_must_define_exactly_one_module_class(tmp_path: Path) -> None:
    path = tmp_path / "two_classes.py"
    path.write_text(TWO_CLASSES)
    with pytest.raises(ValueError, match=r"exactly one nn\.Module class, found 2"):
        model_class(path)
    with pytest.raises(ValueError, match="not found"):
        model_class(tmp_path / "missing.py")


def test_weights_that_do_not_fit_fail_loading_with_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "one_linear.py"
    path.write_text(ONE_CLASS)
    torch.save({"weight": torch.zeros(3, 2), "extra": torch.zeros(1)}, tmp_path / "w.pth")
    with pytest.raises(ValueError) as info:
        load_model(str(tmp_path), path.name, "w.pth", torch.device("cpu"))
    message = str(info.value)
    assert "weights from w.pth do not fit A" in message
    assert "missing bias" in message and "unexpected extra" in message
    assert "weight: shape (3, 2), model wants (2, 2)" in message


def test_fuse_falls_back_to_the_model_when_not_traceable() -> None:
    class Branchy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x  # data-dependent control flow: fx cannot trace it

    model = Branchy()
    assert fuse_conv_bn(model) is model
