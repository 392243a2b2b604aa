"""QDTrack's association (mmtracking `QuasiDenseTracker`): duplicate removal, bi-softmax
matching against a memo of tracklets and backdrops, memo update. Tensors in, tensors out.

Per frame, with detections sorted by score:
1. drop a detection overlapping any higher-scored one by IoU > nms_backdrop_iou_thr (if its
   score < obj_score_thr) or > nms_class_iou_thr (otherwise);
2. if there are tracklets: scores = (softmax over memo + softmax over detections) / 2 of the
   embedding dot products (x same-class mask); greedily, in score order, a detection takes
   its best memo entry if the score > match_score_thr: a tracklet's id when the detection is
   confident (> obj_score_thr; that tracklet is then closed to the others), else -2 (a
   suppressed duplicate) when the score > nms_conf_thr; a backdrop leaves it at -1;
3. detections still at -1 scoring > init_score_thr start tracklets (consecutive ids);
4. tracklets take their detection's box / label and embed <- (1-m) embed + m new; the -1
   detections not overlapping an earlier detection by > nms_backdrop_iou_thr become this
   frame's backdrops (the last memo_backdrop_frames updates are kept); tracklets unseen for
   memo_tracklet_frames frames are forgotten.
Frames without detections change nothing but the frame counter (as the original).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from trackformers.ops.box_ops import box_iou


@dataclass
class QDMemo:
    """Tracklets (rows with ids) and backdrops (rows with ages, newest first) of one sequence.
    Boxes are xyxy pixels of the original frame."""
    ids: Tensor
    boxes: Tensor
    embeds: Tensor
    labels: Tensor
    last_frame: Tensor
    bd_boxes: Tensor
    bd_embeds: Tensor
    bd_labels: Tensor
    bd_age: Tensor
    frame: int = 0
    next_id: int = 0

    @classmethod
    def empty(cls, dim: int, device=None) -> QDMemo:
        z = torch.zeros
        return cls(z(0, dtype=torch.long, device=device), z(0, 4, device=device), z(0, dim, device=device),
                   z(0, dtype=torch.long, device=device), z(0, dtype=torch.long, device=device),
                   z(0, 4, device=device), z(0, dim, device=device), z(0, dtype=torch.long, device=device),
                   z(0, dtype=torch.long, device=device))

    def to(self, device) -> QDMemo:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})


def earlier_overlap(boxes: Tensor, thr: Tensor | float) -> Tensor:
    """(n,) bool: box i overlaps some box j < i by IoU > thr (thr: scalar or per box i)."""
    iou = box_iou(boxes, boxes)[0]
    earlier = torch.ones_like(iou, dtype=torch.bool).tril(-1)  # [i, j]: j < i
    thr = torch.as_tensor(thr, dtype=iou.dtype, device=iou.device).reshape(-1, 1)
    return ((iou > thr) & earlier).any(1)


def match_scores(embeds: Tensor, memo_embeds: Tensor, labels: Tensor, memo_labels: Tensor, metric: str,
                 with_cats: bool) -> Tensor:
    """(n, m) association scores between detections and memo entries."""
    if metric == "cosine":
        scores = torch.nn.functional.normalize(embeds, dim=1) @ torch.nn.functional.normalize(memo_embeds, dim=1).t()
    else:
        sim = embeds @ memo_embeds.t()
        scores = sim.softmax(1) if metric == "softmax" else (sim.softmax(1) + sim.softmax(0)) / 2
    if with_cats:
        scores = scores * (labels[:, None] == memo_labels[None, :]).to(scores.dtype)
    return scores


def greedy_ids(scores: Tensor, det_scores: Tensor, memo_ids: Tensor, cfg) -> Tensor:
    """Ids (n,) for detections in score order: memo id, -1 (unmatched) or -2 (suppressed).

    Row i's choice depends on the tracklets rows < i took, so this runs row by row; it does so
    on CPU copies (n <= max_per_img, one transfer instead of a device sync per row)."""
    s, conf, mids = scores.detach().cpu().clone(), det_scores.detach().cpu(), memo_ids.cpu()
    ids = torch.full((len(s),), -1, dtype=torch.long)
    for i in range(len(s)):
        best, j = s[i].max(0)
        if best <= cfg.match_score_thr:
            continue
        if mids[j] > -1:
            if conf[i] > cfg.obj_score_thr:
                ids[i] = mids[j]
                s[:, j] = 0  # row i is past; rows after i may no longer take tracklet j
            elif best > cfg.nms_conf_thr:
                ids[i] = -2
    return ids.to(scores.device)


def associate(memo: QDMemo, boxes: Tensor, scores: Tensor, labels: Tensor, embeds: Tensor, cfg
              ) -> tuple[Tensor, Tensor, QDMemo]:
    """One frame: detections (any order) -> (kept detection indices in score order, their ids,
    next memo). Reported tracks are the kept detections with id >= 0."""
    frame = memo.frame
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), torch.zeros(0, dtype=torch.long,
                                                                                   device=boxes.device), \
            replace(memo, frame=frame + 1)
    order = scores.argsort(descending=True, stable=True)
    thr = torch.where(scores[order] < cfg.obj_score_thr, cfg.nms_backdrop_iou_thr, cfg.nms_class_iou_thr)
    order = order[~earlier_overlap(boxes[order], thr)]
    boxes, scores, labels, embeds = boxes[order], scores[order], labels[order], embeds[order]

    ids = torch.full((len(order),), -1, dtype=torch.long, device=boxes.device)
    if len(memo.ids):  # backdrops alone do not start matching (the original's `empty` test)
        memo_ids = torch.cat([memo.ids, torch.full_like(memo.bd_labels, -1)])
        s = match_scores(embeds, torch.cat([memo.embeds, memo.bd_embeds]), labels,
                         torch.cat([memo.labels, memo.bd_labels]), cfg.match_metric, cfg.with_cats)
        ids = greedy_ids(s, scores, memo_ids, cfg)
    new = (ids == -1) & (scores > cfg.init_score_thr)
    n_new = int(new.sum())
    ids[new] = torch.arange(memo.next_id, memo.next_id + n_new, device=ids.device)
    return order, ids, update_memo(memo, ids, boxes, embeds, labels, cfg, n_new)


def update_memo(memo: QDMemo, ids: Tensor, boxes: Tensor, embeds: Tensor, labels: Tensor, cfg, n_new: int) -> QDMemo:
    """The memo after a frame with (at least one) kept detection and its ids."""
    frame, m = memo.frame, cfg.memo_momentum
    tracked = ids > -1
    # rows of existing tracklets matched this frame: position of each memo id among `ids`
    hit = memo.ids[:, None] == ids[None, :]                     # (T, n)
    matched = hit.any(1)
    src = hit.float().argmax(1)
    t_boxes = torch.where(matched[:, None], boxes[src], memo.boxes)
    t_embeds = torch.where(matched[:, None], (1 - m) * memo.embeds + m * embeds[src], memo.embeds)
    t_labels = torch.where(matched, labels[src], memo.labels)
    t_last = torch.where(matched, torch.full_like(memo.last_frame, frame), memo.last_frame)
    born = tracked & ~(ids[:, None] == memo.ids[None, :]).any(1)
    ids_all = torch.cat([memo.ids, ids[born]])
    boxes_all, embeds_all = torch.cat([t_boxes, boxes[born]]), torch.cat([t_embeds, embeds[born]])
    labels_all = torch.cat([t_labels, labels[born]])
    last_all = torch.cat([t_last, torch.full_like(ids[born], frame)])
    alive = frame - last_all < cfg.memo_tracklet_frames

    backdrop = (ids == -1) & ~earlier_overlap(boxes, cfg.nms_backdrop_iou_thr)
    keep_bd = memo.bd_age + 1 < cfg.memo_backdrop_frames
    return QDMemo(ids_all[alive], boxes_all[alive], embeds_all[alive], labels_all[alive], last_all[alive],
                  torch.cat([boxes[backdrop], memo.bd_boxes[keep_bd]]),
                  torch.cat([embeds[backdrop], memo.bd_embeds[keep_bd]]),
                  torch.cat([labels[backdrop], memo.bd_labels[keep_bd]]),
                  torch.cat([torch.zeros_like(ids[backdrop]), memo.bd_age[keep_bd] + 1]),
                  frame=frame + 1, next_id=memo.next_id + n_new)
