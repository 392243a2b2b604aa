"""Greedy non-maximum suppression, single-class and class-aware (batched), in plain torch.

Same result as the classic loop (mmcv / torchvision `nms`): visit boxes by descending score,
keep a box unless a kept box overlaps it with IoU > `iou_threshold`. IoU uses no +1 pixel
offset (mmcv `offset=0`). Ties in score keep the input order (stable sort).

The loop is replaced by rounds on the "i would be suppressed by j" matrix: in each round
every undecided box that a kept box suppresses is dropped, and every undecided box that no
kept or undecided higher-ranked box can suppress is kept. The first undecided box is always
decided, so the rounds end, and each decision is the greedy one; on real detections the
number of rounds is the length of the longest chain of overlaps (a handful), not the number
of boxes, and each round is one boolean matrix-vector product.
"""
from __future__ import annotations

import torch
from torch import Tensor

from trackformers.ops.box_ops import box_iou


def greedy_keep(suppress: Tensor) -> Tensor:
    """Greedy selection from `suppress` (n, n) bool, [j, i]: j ranks before i and overlaps it
    too much (strictly upper triangular). Returns the keep mask (n,)."""
    n = suppress.shape[0]
    kept = torch.zeros(n, dtype=torch.bool, device=suppress.device)
    removed = torch.zeros_like(kept)
    s = suppress.float()
    while True:
        undecided = ~(kept | removed)
        if not bool(undecided.any()):
            return kept
        hit = (kept.float() @ s) > 0
        waiting = (undecided.float() @ s) > 0
        removed |= undecided & hit
        kept |= undecided & ~hit & ~waiting


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes (xyxy, (n, 4)) kept by greedy NMS, by descending score."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    b = boxes[order].float()
    iou = box_iou(b, b)[0]
    suppress = torch.triu(iou > iou_threshold, diagonal=1)  # NaN IoU (empty boxes) suppresses nothing
    return order[greedy_keep(suppress)]


def nms_mask(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """(n,) bool: the boxes `nms` keeps, as a mask in input order."""
    keep = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep[nms(boxes, scores, iou_threshold)] = True
    return keep


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware NMS: boxes of different `idxs` never suppress each other.

    Returns the kept indices by descending score (as mmcv `batched_nms`). Classes are handled
    one at a time so the IoU matrix stays (boxes of a class)^2: RPN proposals are 5 levels
    of up to 2000 boxes each.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    keep = []
    for c in torch.unique(idxs):
        members = torch.nonzero(idxs == c).squeeze(1)
        keep.append(members[nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True, stable=True)]
