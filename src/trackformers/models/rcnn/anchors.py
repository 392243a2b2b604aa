"""Anchor grids as mmdet's `AnchorGenerator` (centre offset 0, scale-major base anchors)."""
from __future__ import annotations

import torch
from torch import Tensor


def base_anchors(stride: int, ratios: list[float], scales: list[float]) -> Tensor:
    """(len(ratios) * len(scales), 4) anchors centred on (0, 0): base size = stride; a ratio is
    h / w at constant area; ratios vary slowest (scale_major)."""
    h_ratios = torch.tensor(ratios, dtype=torch.float32).sqrt()
    w_ratios = 1 / h_ratios
    s = torch.tensor(scales, dtype=torch.float32)
    ws = (stride * w_ratios[:, None] * s[None, :]).reshape(-1)
    hs = (stride * h_ratios[:, None] * s[None, :]).reshape(-1)
    return torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)


def grid_anchors(base: Tensor, stride: int, size: tuple[int, int]) -> Tensor:
    """All anchors of a (H, W) map: (H * W * A, 4), location-major (row by row), anchors inner,
    the order in which the RPN's (A, H, W) outputs are flattened after a permute to (H, W, A)."""
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, device=base.device, dtype=base.dtype) * stride,
                            torch.arange(w, device=base.device, dtype=base.dtype) * stride, indexing="ij")
    shifts = torch.stack([xs, ys, xs, ys], dim=-1).reshape(-1, 1, 4)
    return (shifts + base.to(shifts)[None]).reshape(-1, 4)


def valid_anchors(stride: int, num_base: int, size: tuple[int, int], valid_hw: tuple[int, int],
                  device=None) -> Tensor:
    """(H * W * A,) bool: anchors whose location lies on the unpadded image (mmdet valid_flags:
    locations up to ceil(valid / stride))."""
    h, w = size
    vh, vw = min(-(-valid_hw[0] // stride), h), min(-(-valid_hw[1] // stride), w)
    ok = (torch.arange(h, device=device)[:, None] < vh) & (torch.arange(w, device=device)[None, :] < vw)
    return ok.reshape(-1, 1).expand(-1, num_base).reshape(-1)
