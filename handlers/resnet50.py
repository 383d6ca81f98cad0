"""ResNet-50 model definition for torch-model-archiver (``--model-file``).

TorchServe imports this file and instantiates the only class defined in it with no arguments,
then loads the archive's serialized ``state_dict`` into it. Keep exactly one class here: the
loader refuses modules that define more than one.
"""

from torchvision.models.resnet import Bottleneck, ResNet


class ResNet50(ResNet):
    """torchvision's ResNet-50 (Bottleneck blocks, layers [3, 4, 6, 3], 1000 ImageNet classes)."""

    def __init__(self) -> None:
        super().__init__(Bottleneck, [3, 4, 6, 3])
