"""Detector outputs -> scored boxes in pixels (Deformable DETR's PostProcess)."""
from __future__ import annotations

import torch
from torch import Tensor

from trackformers.ops.box_ops import box_cxcywh_to_xyxy


@torch.no_grad()
def postprocess(pred_logits: Tensor, pred_boxes: Tensor, image_sizes: Tensor, top_k: int = 100) -> list[dict]:
    """Top-k (query, class) pairs by sigmoid score, over all queries and classes jointly.

    Args:
        pred_logits: (B, Q, K); pred_boxes: (B, Q, 4) normalised cxcywh.
        image_sizes: (B, 2) (H, W) of the original images; boxes are scaled to them.
    Returns:
        per image {"scores" (k,), "labels" (k,), "boxes" (k, 4) xyxy pixels, "queries" (k,)}.
    """
    B, Q, K = pred_logits.shape
    scores, index = pred_logits.sigmoid().view(B, -1).topk(min(top_k, Q * K), dim=1)
    queries, labels = index // K, index % K
    boxes = torch.gather(box_cxcywh_to_xyxy(pred_boxes), 1, queries[..., None].expand(-1, -1, 4))
    h, w = image_sizes.to(boxes.dtype).unbind(1)
    boxes = boxes * torch.stack((w, h, w, h), 1)[:, None]
    return [{"scores": s, "labels": l, "boxes": b, "queries": q} for s, l, b, q in zip(scores, labels, boxes, queries)]
