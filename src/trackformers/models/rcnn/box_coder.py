"""Delta xywh box encoding (R-CNN): mmdet `DeltaXYWHBBoxCoder`."""
from __future__ import annotations

import math

import torch
from torch import Tensor

MAX_LOG_RATIO = abs(math.log(16 / 1000))  # wh_ratio_clip: a box grows or shrinks at most 62.5x


def encode(boxes: Tensor, targets: Tensor, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Deltas (..., 4) that move xyxy `boxes` onto `targets`, normalised by means / stds."""
    pw, ph = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    px, py = boxes[..., 0] + 0.5 * pw, boxes[..., 1] + 0.5 * ph
    gw, gh = targets[..., 2] - targets[..., 0], targets[..., 3] - targets[..., 1]
    gx, gy = targets[..., 0] + 0.5 * gw, targets[..., 1] + 0.5 * gh
    deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], -1)
    return (deltas - deltas.new_tensor(means)) / deltas.new_tensor(stds)


def decode(boxes: Tensor, deltas: Tensor, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0),
           max_shape: tuple[int, int] | None = None) -> Tensor:
    """Apply deltas (N, 4k) to xyxy boxes (N, 4) -> (N, 4k); k > 1 for class-specific deltas.

    The width / height log-ratios are clamped to +-log(1000/16) before exp; with `max_shape`
    (H, W) the result is clipped to the image (QDTrack's configs turn clipping off).
    """
    n, k = deltas.shape[0], deltas.shape[1] // 4
    d = deltas.reshape(n, k, 4) * deltas.new_tensor(stds) + deltas.new_tensor(means)
    pxy = ((boxes[:, :2] + boxes[:, 2:]) * 0.5)[:, None]
    pwh = (boxes[:, 2:] - boxes[:, :2])[:, None]
    gxy = pxy + pwh * d[..., :2]
    gwh = pwh * d[..., 2:].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO).exp()
    out = torch.cat([gxy - 0.5 * gwh, gxy + 0.5 * gwh], -1)
    if max_shape is not None:
        limit = out.new_tensor([max_shape[1], max_shape[0]] * 2)
        out = torch.minimum(out.clamp(min=0), limit)
    return out.reshape(n, 4 * k)
