"""Feature pyramid network (Lin et al. 2017) as mmdet's `FPN` with `num_outs=5`, no extra convs."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ConvModule(nn.Module):
    """A conv named `conv` (mmcv ConvModule's name for it, so checkpoint keys map as they are)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, padding: int = 0, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class FPN(nn.Module):
    """C2-C5 -> P2-P6: 1x1 laterals, nearest top-down upsampling to the finer map's size, 3x3
    output convs; P6 is P5 max-pooled with stride 2 (kernel 1)."""

    def __init__(self, in_channels: list[int], out_channels: int = 256, num_outs: int = 5):
        super().__init__()
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        for m in self.modules():  # mmdet initialises FPN convs with Xavier uniform
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs
