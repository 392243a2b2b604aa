"""Which proposals train which head: max-IoU assignment and sampling (mmdet's MaxIoUAssigner,
RandomSampler, CombinedSampler with instance-balanced positives), vectorised.

An assignment is (N,) long: -1 ignored, 0 background, g + 1 the g-th ground-truth box.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trackformers.ops.box_ops import box_iou


@dataclass
class AssignerConfig:
    pos_iou_thr: float = 0.5
    neg_iou_thr: float = 0.5
    min_pos_iou: float = 0.5
    match_low_quality: bool = False


@dataclass
class SamplerConfig:
    num: int = 512
    pos_fraction: float = 0.25
    neg_pos_ub: int = -1               # negatives at most this many times the positives (-1: no cap)
    add_gt_as_proposals: bool = True
    instance_balanced: bool = False    # positives spread evenly over the ground-truth objects


def assign(boxes: Tensor, gt: Tensor, cfg: AssignerConfig) -> Tensor:
    """Assignment (N,) of xyxy `boxes` to `gt` (G, 4) by IoU.

    Positive: best IoU >= pos_iou_thr; negative: 0 <= best IoU < neg_iou_thr; else ignored. With
    match_low_quality every gt also takes the boxes at its own best IoU (if >= min_pos_iou).
    """
    n = boxes.shape[0]
    if gt.shape[0] == 0:
        return torch.zeros(n, dtype=torch.long, device=boxes.device)
    iou = box_iou(gt, boxes)[0]  # (G, N)
    best, arg = iou.max(0)
    out = torch.full((n,), -1, dtype=torch.long, device=boxes.device)
    out[(best >= 0) & (best < cfg.neg_iou_thr)] = 0
    pos = best >= cfg.pos_iou_thr
    out[pos] = arg[pos] + 1
    if cfg.match_low_quality:
        gt_best = iou.max(1).values
        hit = (iou == gt_best[:, None]) & (gt_best[:, None] >= cfg.min_pos_iou)  # (G, N)
        # as mmdet's loop over gts: a later gt overrides an earlier one on the same box
        g = torch.arange(1, gt.shape[0] + 1, device=boxes.device)[:, None]
        last = (hit * g).max(0).values
        out = torch.where(last > 0, last, out)
    return out


def _random_pick(mask: Tensor, k: int, rank: Tensor | None = None) -> Tensor:
    """Indices of k random True entries of mask (all if fewer); with `rank`, lower ranks first."""
    idx = torch.nonzero(mask).squeeze(1)
    if len(idx) <= k:
        return idx
    key = torch.rand(len(idx), device=mask.device)
    if rank is not None:
        key = key + rank[idx].to(key.dtype)
    return idx[key.argsort()[:k]]


def _rank_within_group(groups: Tensor) -> Tensor:
    """For each entry, a random rank among the entries of its group (0, 1, ...)."""
    perm = torch.randperm(len(groups), device=groups.device)
    g = groups[perm]
    order = torch.sort(g, stable=True).indices
    sorted_g = g[order]
    start = torch.searchsorted(sorted_g, sorted_g, right=False)
    rank_sorted = torch.arange(len(g), device=g.device) - start
    rank = torch.empty_like(rank_sorted)
    rank[perm[order]] = rank_sorted
    return rank


@dataclass
class Sample:
    """Sampled RoIs of one image: positives first, then negatives."""
    boxes: Tensor        # (P + Q, 4)
    num_pos: int
    gt_index: Tensor     # (P,) index of the assigned ground truth of each positive
    labels: Tensor       # (P + Q,) class of each RoI, `background` for negatives


def sample(proposals: Tensor, gt: Tensor, gt_labels: Tensor, assigner: AssignerConfig, cfg: SamplerConfig,
           background: int) -> Sample:
    """Assign proposals (N, 4) to gt, then sample `num` of them (gt boxes added first if asked)."""
    if cfg.add_gt_as_proposals and gt.shape[0]:
        proposals = torch.cat([gt.to(proposals), proposals])
    assigned = assign(proposals, gt, assigner)
    num_pos = int(cfg.num * cfg.pos_fraction)
    rank = _rank_within_group(assigned) if cfg.instance_balanced else None
    pos = _random_pick(assigned > 0, num_pos, rank)
    num_neg = cfg.num - len(pos)
    if cfg.neg_pos_ub >= 0:
        num_neg = min(num_neg, max(1, len(pos)) * cfg.neg_pos_ub)
    neg = _random_pick(assigned == 0, num_neg)
    gt_index = assigned[pos] - 1
    labels = torch.cat([gt_labels[gt_index].long(), torch.full((len(neg),), background, dtype=torch.long,
                                                               device=proposals.device)])
    return Sample(proposals[torch.cat([pos, neg])], len(pos), gt_index, labels)
