"""ImageNet ResNets (He et al. 2015, Table 1) in torchvision's layout.

Module and parameter names follow ``torchvision/models/resnet.py`` exactly (``conv1``, ``bn1``,
``layer1.0.downsample.0``, ``fc``) so torchvision and timm checkpoints load unchanged. The
convolutional block's projection shortcut is a strided 1x1 conv + BN (the paper's option B).
Plain twins (section 4.1, "Plain Networks") have the same stacks without any shortcut.
"""

from __future__ import annotations

from typing import Type

import torch
import torch.nn as nn

from .._registry import register_model

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "scale_residual_branches"]


def scale_residual_branches(model: nn.Module) -> None:
    """Set the last BatchNorm scale of every residual branch to 1/sqrt(number of blocks).

    With the paper's init every block adds a branch as large as its input, so in eval mode the
    activations' variance doubles per block: an untrained ResNet-1202 overflows to NaN. Scaling
    the branches as SkipInit/Fixup do (De & Smith 2020; Zhang et al. 2019) bounds the growth by
    e. Trained weights overwrite this; it only keeps randomly initialised models usable.
    """
    blocks = [m for m in model.modules() if getattr(m, "shortcut", False) is True and hasattr(m, "bn2")]
    for block in blocks:
        last_bn = getattr(block, "bn3", None) or block.bn2
        nn.init.constant_(last_bn.weight, len(blocks) ** -0.5)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs; used by ResNet-18/34."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            identity = x if self.downsample is None else self.downsample(x)
            out = out + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4); used by ResNet-50/101/152.

    The stride sits on the 3x3 conv, as in torchvision ("ResNet v1.5"), so its checkpoints load.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut:
            identity = x if self.downsample is None else self.downsample(x)
            out = out + identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(
        self,
        block: Type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        *,
        shortcut: bool = True,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.shortcut = shortcut
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # He et al. 2015 (section 3.4) initialise as in their PReLU paper: Kaiming normal, fan_out.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        scale_residual_branches(self)

    def _make_layer(
        self, block: Type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if self.shortcut and (stride != 1 or self.inplanes != planes * block.expansion):
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, self.shortcut)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, shortcut=self.shortcut) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def _resnet(
    block: Type[BasicBlock | Bottleneck], layers: list[int], num_classes: int, shortcut: bool
) -> ResNet:
    return ResNet(block, layers, num_classes, shortcut=shortcut)


@register_model(family="imagenet", depth=18)
def resnet18(*, num_classes: int = 1000) -> ResNet:
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, True)


@register_model(family="imagenet", depth=34)
def resnet34(*, num_classes: int = 1000) -> ResNet:
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes, True)


@register_model(family="imagenet", depth=50)
def resnet50(*, num_classes: int = 1000) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, True)


@register_model(family="imagenet", depth=101)
def resnet101(*, num_classes: int = 1000) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], num_classes, True)


@register_model(family="imagenet", depth=152)
def resnet152(*, num_classes: int = 1000) -> ResNet:
    return _resnet(Bottleneck, [3, 8, 36, 3], num_classes, True)


@register_model(family="imagenet", depth=18, plain=True)
def plain18(*, num_classes: int = 1000) -> ResNet:
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, False)


@register_model(family="imagenet", depth=34, plain=True)
def plain34(*, num_classes: int = 1000) -> ResNet:
    return _resnet(BasicBlock, [3, 4, 6, 3], num_classes, False)
