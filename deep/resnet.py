"""ResNet-18 with the CIFAR stem (He et al. 2016; thesis Sec. 4.3, SPEC §3).

The ImageNet stem (7×7 stride-2 conv + max-pool) would shrink a 32×32 image to 8×8 before the first
block; the CIFAR variant replaces it with one 3×3 conv, stride 1, padding 1, and no max-pool, so the
four stages see 32, 16, 8 and 4 pixels. `width` is the channel count of the first stage (64 in the
thesis, giving a 512-d output); stages double it, so the output has 8·width features.
"""
import torch
from torch import nn

STAGE_BLOCKS = (2, 2, 2, 2)  # ResNet-18


class BasicBlock(nn.Module):
    """Two 3×3 conv–BN layers with an identity (or 1×1 conv–BN projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.relu(self.bn1(self.conv1(x)), inplace=True)  # BN's backward needs its input only
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return out.relu_()


class ResNet18(nn.Module):
    """ResNet-18, CIFAR stem; maps (N, in_channels, H, W) images to (N, 8·width) pooled features."""

    def __init__(self, width: int = 64, in_channels: int = 3):
        super().__init__()
        if width < 1 or in_channels < 1:
            raise ValueError(f"width and in_channels must be >= 1, got width={width}, in_channels={in_channels}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], width
        for index, blocks in enumerate(STAGE_BLOCKS):
            out_channels = width * 2**index
            stride = 1 if index == 0 else 2
            layers = []
            for block in range(blocks):
                layers.append(BasicBlock(channels, out_channels, stride if block == 0 else 1))
                channels = out_channels
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.output_dim = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1)
