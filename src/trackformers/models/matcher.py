"""Hungarian matching of predictions to targets with Deformable DETR's costs.

cost = cost_class * focal class cost + cost_bbox * L1(cxcywh) + cost_giou * (-GIoU),
solved per image with scipy's `linear_sum_assignment`.
"""
from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from trackformers.ops.box_ops import box_cxcywh_to_xyxy, generalized_box_iou


def focal_class_cost(prob: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """(N, K) probabilities, (M,) labels -> (N, M): focal loss of predicting the target class
    minus the focal loss of rejecting it (lower = better match)."""
    p = prob[:, labels]
    pos = alpha * (1 - p) ** gamma * -(p + 1e-8).log()
    neg = (1 - alpha) * p ** gamma * -(1 - p + 1e-8).log()
    return pos - neg


def match_cost(pred_logits: Tensor, pred_boxes: Tensor, labels: Tensor, boxes: Tensor, cost_class: float = 2.0,
               cost_bbox: float = 5.0, cost_giou: float = 2.0, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Cost matrix (N, M) between N predictions (logits (N, K), cxcywh boxes (N, 4)) and M targets."""
    c_class = focal_class_cost(pred_logits.sigmoid(), labels, alpha, gamma)
    c_bbox = torch.cdist(pred_boxes, boxes, p=1)
    c_giou = -generalized_box_iou(box_cxcywh_to_xyxy(pred_boxes), box_cxcywh_to_xyxy(boxes))
    return cost_bbox * c_bbox + cost_class * c_class + cost_giou * c_giou


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to targets, per image.

    `forward(outputs, targets)` takes {"pred_logits" (B, Q, K), "pred_boxes" (B, Q, 4)} and a
    list of B targets {"labels" (n,), "boxes" (n, 4) cxcywh}; returns B pairs
    (query indices, target indices), int64, sorted by query.
    """

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        super().__init__()
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[Tensor, Tensor]]:
        B, Q = outputs["pred_logits"].shape[:2]
        sizes = [len(t["boxes"]) for t in targets]
        empty = torch.empty(0, dtype=torch.int64)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in targets]
        # One cost matrix for the whole batch (one GPU->CPU copy), split per image afterwards.
        cost = match_cost(outputs["pred_logits"].flatten(0, 1), outputs["pred_boxes"].flatten(0, 1),
                          torch.cat([t["labels"] for t in targets]), torch.cat([t["boxes"] for t in targets]),
                          self.cost_class, self.cost_bbox, self.cost_giou, self.focal_alpha, self.focal_gamma)
        cost = cost.view(B, Q, -1).cpu()
        indices = []
        for b, c in enumerate(cost.split(sizes, -1)):
            rows, cols = linear_sum_assignment(c[b].numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices
