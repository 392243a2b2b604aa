"""Set prediction losses of Deformable DETR: sigmoid focal loss, L1 and GIoU on matched boxes,
auxiliary losses on every decoder layer and the two-stage encoder proposals.

All terms are sums normalised by the number of target boxes in the batch (all-reduced across
processes when torch.distributed is initialised), so they do not depend on how the batch is
split across GPUs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from trackformers.models.matcher import HungarianMatcher
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, generalized_box_iou


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise focal loss (Lin et al. 2017) of sigmoid logits against {0, 1} targets."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def num_boxes_normalizer(num_boxes: int | float | Tensor, device: torch.device | str) -> Tensor:
    """Average number of target boxes per process, all-reduced when distributed, at least 1."""
    n = torch.as_tensor(num_boxes, dtype=torch.float32, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(n)
        n = n / dist.get_world_size()
    return n.clamp(min=1)


def _matched(indices: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Per-image (query, target) indices -> (batch index, query index) over the whole batch."""
    batch = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(indices)])
    return batch, torch.cat([src for src, _ in indices])


class SetCriterion(nn.Module):
    """Losses `loss_ce`, `loss_bbox`, `loss_giou` for the last layer, suffixed `_0`.. for the
    auxiliary layers and `_enc` for the two-stage proposals; `total` weights and sums them."""

    def __init__(self, num_classes: int, matcher: HungarianMatcher | None = None, cls_loss_coef: float = 2.0,
                 bbox_loss_coef: float = 5.0, giou_loss_coef: float = 2.0, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher or HungarianMatcher(focal_alpha=focal_alpha, focal_gamma=focal_gamma)
        self.weights = {"loss_ce": cls_loss_coef, "loss_bbox": bbox_loss_coef, "loss_giou": giou_loss_coef}
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    def loss_labels(self, logits: Tensor, targets: list[dict], indices, num_boxes: Tensor) -> Tensor:
        """Focal loss over all queries and classes: matched queries target their class, the
        rest target all-zeros (no background logit)."""
        b, q = _matched(indices)
        onehot = torch.zeros_like(logits)
        labels = torch.cat([t["labels"][tgt] for t, (_, tgt) in zip(targets, indices)]).to(torch.int64)
        onehot[b, q, labels] = 1.0
        return sigmoid_focal_loss(logits, onehot, self.focal_alpha, self.focal_gamma).sum() / num_boxes

    def loss_boxes(self, boxes: Tensor, targets: list[dict], indices, num_boxes: Tensor) -> tuple[Tensor, Tensor]:
        """L1 (cxcywh) and 1 - GIoU, summed over matched pairs."""
        b, q = _matched(indices)
        src = boxes[b, q]
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)])
        l1 = F.l1_loss(src, tgt, reduction="none").sum() / num_boxes
        giou = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt)))
        return l1, (1 - giou).sum() / num_boxes

    def layer_losses(self, outputs: dict, targets: list[dict], indices, num_boxes: Tensor,
                     suffix: str = "") -> dict[str, Tensor]:
        if indices is None:
            indices = self.matcher(outputs, targets)
        l1, giou = self.loss_boxes(outputs["pred_boxes"], targets, indices, num_boxes)
        return {f"loss_ce{suffix}": self.loss_labels(outputs["pred_logits"], targets, indices, num_boxes),
                f"loss_bbox{suffix}": l1, f"loss_giou{suffix}": giou}

    def forward(self, outputs: dict, targets: list[dict], indices: list[tuple[Tensor, Tensor]] | None = None,
                num_boxes: float | Tensor | None = None) -> dict[str, Tensor]:
        """Unweighted losses of every layer.

        Args:
            outputs: detector outputs (pred_logits, pred_boxes, aux_outputs[, enc_outputs]).
            targets: per image {"labels" (n,) int, "boxes" (n, 4) normalised cxcywh}.
            indices: a precomputed assignment (per image (query idx, target idx)) used for every
                decoder layer instead of Hungarian matching (trackers pass their own).
            num_boxes: the normaliser before all-reduce (default: number of target boxes).
        """
        device = outputs["pred_logits"].device
        if num_boxes is None:
            num_boxes = sum(len(t["labels"]) for t in targets)
        n = num_boxes_normalizer(num_boxes, device)
        losses = self.layer_losses(outputs, targets, indices, n)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            losses.update(self.layer_losses(aux, targets, indices, n, f"_{i}"))
        if "enc_outputs" in outputs:
            # Proposals are class-agnostic: every target counts as class 0.
            binary = [dict(t, labels=torch.zeros_like(t["labels"])) for t in targets]
            losses.update(self.layer_losses(outputs["enc_outputs"], binary, None, n, "_enc"))
        return losses

    def total(self, losses: dict[str, Tensor]) -> Tensor:
        """Weighted sum; `loss_ce_3` and `loss_ce_enc` take the weight of `loss_ce`."""
        return sum(self.weights[re.sub(r"_(\d+|enc)$", "", k)] * v for k, v in losses.items())


@dataclass
class LossConfig:
    """Set-loss weights and Hungarian matching costs (focal class cost, L1, GIoU): Deformable DETR's."""
    cls_loss_coef: float = 2.0
    bbox_loss_coef: float = 5.0
    giou_loss_coef: float = 2.0
    set_cost_class: float = 2.0
    set_cost_bbox: float = 5.0
    set_cost_giou: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


def build_criterion(num_classes: int, loss: LossConfig) -> SetCriterion:
    """The matcher and SetCriterion a `LossConfig` describes."""
    matcher = HungarianMatcher(loss.set_cost_class, loss.set_cost_bbox, loss.set_cost_giou,
                               loss.focal_alpha, loss.focal_gamma)
    return SetCriterion(num_classes, matcher, loss.cls_loss_coef, loss.bbox_loss_coef, loss.giou_loss_coef,
                        loss.focal_alpha, loss.focal_gamma)
