"""ResNet backbones with frozen BatchNorm, returning multi-scale feature maps and masks.

Parameter names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`,
...), so a torchvision, DETR or Deformable DETR checkpoint's backbone loads by prefix alone.
`width` scales every stage (64 = the standard networks; 8 or 16 give tiny CPU test models).
`style="caffe"` puts a bottleneck's stride on its first 1x1 conv instead of the 3x3 (the
Detectron / mmdet caffe ResNets, e.g. QDTrack's MOT17 Faster R-CNN); the names stay the same.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# depth -> (block type, blocks per stage)
RESNET_STAGES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all stored as buffers.

    `eps` is 1e-5 as in the DETR family (torchvision's own FrozenBatchNorm2d once used 0).
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)  # present in torchvision files; meaningless here
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def _conv3x3(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3x3 convs."""
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(c_in, planes, stride, dilation)
        self.bn1 = FrozenBatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = FrozenBatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """ResNet-50/101 block: 1x1 reduce, 3x3 (carries the stride, "ResNet v1.5"), 1x1 expand."""
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None,
                 stride_in_1x1: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 1, stride=stride if stride_in_1x1 else 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, 1 if stride_in_1x1 else stride, dilation)
        self.bn2 = FrozenBatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """ResNet trunk (no pooling/fc) returning the maps of the stages in `return_stages`.

    Args:
        depth: 18, 34, 50 or 101.
        width: channels of the stem and of stage 1's planes (64 for the standard networks).
        dilation: replace the stride of the last stage by dilation (DC5): C5 at stride 16.
        return_stages: stages (1..4) whose outputs `forward` returns; Deformable DETR uses
            (2, 3, 4) = strides 8/16/32, DETR and single-scale models (4,).
        frozen_stages: parameters of the stem and of stages 1..frozen_stages get
            requires_grad=False (the DETR family freezes stem + layer1: 1). -1 freezes all.
        style: "pytorch" (stride on the 3x3 conv) or "caffe" (stride on the first 1x1 conv).
    """

    def __init__(self, depth: int = 50, width: int = 64, dilation: bool = False,
                 return_stages: tuple[int, ...] = (2, 3, 4), frozen_stages: int = 1, style: str = "pytorch"):
        super().__init__()
        if style not in ("pytorch", "caffe"):
            raise ValueError(f"ResNet style must be 'pytorch' or 'caffe', got {style!r}")
        if depth not in RESNET_STAGES:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_STAGES)}, got {depth}")
        kind, blocks = RESNET_STAGES[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        extra = {"stride_in_1x1": True} if style == "caffe" and kind == "bottleneck" else {}
        self.return_stages = tuple(return_stages)
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in, current_dilation = width, 1
        channels, strides = [], []
        stride_so_far = 4
        for i, n in enumerate(blocks):
            planes = width * 2 ** i
            stride = 1 if i == 0 else 2
            previous_dilation = current_dilation
            if dilation and i == 3:
                current_dilation, stride = current_dilation * stride, 1
            downsample = None
            if stride != 1 or c_in != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(c_in, planes * block.expansion, 1, stride=stride, bias=False),
                                           FrozenBatchNorm2d(planes * block.expansion))
            # As torchvision: the first block keeps the previous dilation, the rest use the new one.
            layers = [block(c_in, planes, stride, previous_dilation, downsample, **extra)]
            c_in = planes * block.expansion
            layers += [block(c_in, planes, 1, current_dilation) for _ in range(1, n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            stride_so_far *= stride
            channels.append(c_in)
            strides.append(stride_so_far)
        self.num_channels = [channels[s - 1] for s in self.return_stages]
        self.strides = [strides[s - 1] for s in self.return_stages]
        self.freeze(frozen_stages)

    def freeze(self, frozen_stages: int) -> None:
        """Stop gradients for the stem and stages 1..frozen_stages (-1: everything)."""
        frozen = [self.conv1] + [getattr(self, f"layer{i}") for i in range(1, 5)
                                 if frozen_stages < 0 or i <= frozen_stages]
        if frozen_stages == 0:
            frozen = []
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            if i in self.return_stages:
                outs.append(x)
            if i >= max(self.return_stages):
                break
        return outs


def downsample_mask(mask: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Padding mask (B, H, W) resized to a feature map's size by nearest interpolation, as DETR."""
    return F.interpolate(mask[None].float(), size=tuple(size)).to(torch.bool)[0]


def build_backbone(depth: int = 50, width: int = 64, dilation: bool = False, num_feature_levels: int = 4,
                   frozen_stages: int = 1) -> ResNet:
    """The backbone of a Deformable DETR with `num_feature_levels` levels: C3-C5 (extra levels
    come from strided convs on C5), or for fewer levels the last ones (C4-C5, C5)."""
    stages = (2, 3, 4)[-min(num_feature_levels, 3):]
    return ResNet(depth, width, dilation, stages, frozen_stages)
