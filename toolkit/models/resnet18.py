"""torchvision's ResNet-18 with the usual CIFAR stem: a 3x3 stride-1 first conv and no max-pool.

The ImageNet stem (7x7 stride 2 + max-pool) would shrink a 32x32 image to 8x8 before the first block.
"""

from torch import nn


def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
