"""The paper's CIFAR-10 networks (He et al. 2015, section 4.2).

6n+2 weighted layers: a 3x3 conv with 16 filters, then three stages of 2n 3x3 convs with
16/32/64 filters on 32x32/16x16/8x8 maps, global average pooling and a 10-way fully connected
layer. Shortcuts are identity everywhere; where the shape changes they subsample by 2 and
zero-pad the new channels (option A), so they add no parameters (Table 6: 0.27M for n=3).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._registry import register_model
from .resnet import scale_residual_branches

__all__ = ["CifarBasicBlock", "CifarResNet"]


class CifarBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut
        self.stride = stride
        self.pad_channels = planes - inplanes

    def _option_a(self, x: torch.Tensor) -> torch.Tensor:
        """Parameter-free shortcut: subsample spatially, zero-pad channels equally on both sides."""
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_channels:
            half = self.pad_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.pad_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out = out + self._option_a(x)
        return self.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, *, shortcut: bool = True) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, received {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = 16
        self.layer1 = self._make_layer(16, n, 1, shortcut)
        self.layer2 = self._make_layer(32, n, 2, shortcut)
        self.layer3 = self._make_layer(64, n, 2, shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        scale_residual_branches(self)

    def _make_layer(self, planes: int, blocks: int, stride: int, shortcut: bool) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            layers.append(CifarBasicBlock(self.inplanes, planes, stride if i == 0 else 1, shortcut))
            self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _cifar(depth: int, num_classes: int, shortcut: bool) -> CifarResNet:
    return CifarResNet(depth, num_classes, shortcut=shortcut)


@register_model(family="cifar", depth=20)
def resnet20(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(20, num_classes, True)


@register_model(family="cifar", depth=32)
def resnet32(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(32, num_classes, True)


@register_model(family="cifar", depth=44)
def resnet44(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(44, num_classes, True)


@register_model(family="cifar", depth=56)
def resnet56(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(56, num_classes, True)


@register_model(family="cifar", depth=110)
def resnet110(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(110, num_classes, True)


@register_model(family="cifar", depth=1202)
def resnet1202(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(1202, num_classes, True)


@register_model(family="cifar", depth=20, plain=True)
def plain20(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(20, num_classes, False)


@register_model(family="cifar", depth=32, plain=True)
def plain32(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(32, num_classes, False)


@register_model(family="cifar", depth=44, plain=True)
def plain44(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(44, num_classes, False)


@register_model(family="cifar", depth=56, plain=True)
def plain56(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(56, num_classes, False)


@register_model(family="cifar", depth=110, plain=True)
def plain110(*, num_classes: int = 10) -> CifarResNet:
    return _cifar(110, num_classes, False)
