"""Average precision at one IoU threshold (AP@0.5 by default), per class and averaged.

Detections of a class are ranked by score over all images; each takes the still-unmatched
ground-truth box of its image with the highest IoU if that IoU reaches the threshold (true
positive), else counts as a false positive. AP is the area under the precision-recall curve
with precision made monotone (all-point interpolation, as PASCAL VOC 2010+).
"""
from __future__ import annotations

import numpy as np
import torch

from trackformers.ops.box_ops import box_iou


def _true_positives(det_boxes, det_scores, gt_boxes, iou_threshold: float) -> np.ndarray:
    """Greedy score-ordered matching inside one image; returns a TP flag per detection."""
    tp = np.zeros(len(det_scores), bool)
    if len(gt_boxes) == 0 or len(det_scores) == 0:
        return tp
    iou = box_iou(torch.as_tensor(det_boxes, dtype=torch.float64), torch.as_tensor(gt_boxes, dtype=torch.float64))[0]
    iou = iou.numpy()
    taken = np.zeros(len(gt_boxes), bool)
    for d in np.argsort(-det_scores, kind="stable"):  # sequential by nature: earlier detections claim first
        candidates = np.where(taken, -1.0, iou[d])
        g = int(candidates.argmax())
        if candidates[g] >= iou_threshold:
            taken[g] = tp[d] = True
    return tp


def precision_recall_ap(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP from detections' scores and TP flags."""
    if num_gt == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tps = np.cumsum(tp[order])
    fps = np.cumsum(~tp[order])
    recall = tps / num_gt
    precision = tps / np.maximum(tps + fps, 1)
    recall = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    precision = np.concatenate([[1.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def average_precision(detections: list[dict], ground_truths: list[dict], iou_threshold: float = 0.5) -> dict:
    """AP over a set of images.

    Args:
        detections: per image {"boxes" (n, 4) xyxy, "scores" (n,), "labels" (n,)} (tensors or arrays).
        ground_truths: per image {"boxes" (m, 4) xyxy, "labels" (m,)}, same coordinates.
    Returns:
        {"AP": mean over classes with ground truth, "per_class": {label: AP}}.
    """
    as_np = lambda x: x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    dets = [{k: as_np(d[k]) for k in ("boxes", "scores", "labels")} for d in detections]
    gts = [{k: as_np(g[k]) for k in ("boxes", "labels")} for g in ground_truths]
    classes = sorted({int(c) for g in gts for c in g["labels"]})
    per_class = {}
    for c in classes:
        scores, tps, num_gt = [], [], 0
        for d, g in zip(dets, gts):
            dm, gm = d["labels"] == c, g["labels"] == c
            num_gt += int(gm.sum())
            scores.append(d["scores"][dm])
            tps.append(_true_positives(d["boxes"][dm].reshape(-1, 4), d["scores"][dm], g["boxes"][gm].reshape(-1, 4),
                                       iou_threshold))
        per_class[c] = precision_recall_ap(np.concatenate(scores), np.concatenate(tps), num_gt)
    ap = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return {"AP": ap, "per_class": per_class}
