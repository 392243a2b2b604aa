"""Training-time assignment of rows to targets, track augmentation and the clip loss.

- `match_tracklets`: tracklet-aware label assignment (a track keeps the target with its
  identity; new objects are Hungarian-matched to the candidate rows), MOTR section 3.3;
- `insert_false_positives`: the false-positive track queries of MOTR's QIM and MeMOTR's
  FP_INSERT_RATE;
- `ClipLoss`: the collective average loss (every frame's loss terms summed, divided once by
  the number of supervised objects of the whole clip/batch, averaged over processes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from trackformers.models.criterion import num_boxes_normalizer
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.trackers.state import TrackState

Matcher = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""matcher(logits (Q, K), boxes (Q, 4), target labels (M,), target boxes (M, 4))
-> (query indices, target indices) of a minimum-cost one-to-one assignment."""


@dataclass
class Assignment:
    """Result of `match_tracklets` for one frame.

    gt_idx: (n,) int64 target index per row, -1 for background.
    ids:    (n,) int64 row ids after the frame: tracks keep theirs, newly matched candidates
            take their target's id, others stay as they were.
    num_disappeared: number of tracks whose identity is absent from this frame (the collective
            average loss counts them as samples, as the original does).
    """

    gt_idx: Tensor
    ids: Tensor
    num_disappeared: int


def track_targets(ids: Tensor, target_ids: Tensor) -> Tensor:
    """(n,) index of the target whose id equals each row's id; -1 where none (or id < 0)."""
    if len(target_ids) == 0 or len(ids) == 0:
        return torch.full_like(ids, -1)
    same = (ids[:, None] == target_ids[None, :]) & (ids[:, None] >= 0)
    return torch.where(same.any(1), same.long().argmax(1), torch.full_like(ids, -1))


def match_tracklets(ids: Tensor, candidates: Tensor, logits: Tensor, boxes: Tensor,
                    target: dict, matcher: Matcher) -> Assignment:
    """Tracklet-aware assignment of one frame's rows to its targets.

    ids: (n,) current row ids (>= 0: a track that keeps the target with its identity).
    candidates: (n,) bool rows that may take a new object (MOTR: every row with id -1,
        i.e. detect queries and inserted false positives; MeMOTR: the detect queries).
    logits, boxes: (n, K), (n, 4) the predictions the Hungarian matcher compares (one layer).
    target: dict with `ids` (m,), `labels` (m,), `boxes` (m, 4) cxcywh.
    Targets claimed by a track are not offered to the candidates.
    """
    tracked = (ids >= 0) & ~candidates
    gt_idx = track_targets(torch.where(tracked, ids, torch.full_like(ids, -1)), target["ids"])
    num_disappeared = int((tracked & (gt_idx < 0)).sum())
    claimed = torch.zeros(len(target["ids"]), dtype=torch.bool, device=ids.device)
    claimed[gt_idx[gt_idx >= 0]] = True
    free_t = torch.nonzero(~claimed).flatten()
    cand = torch.nonzero(candidates).flatten()
    ids = ids.clone()
    if len(free_t) and len(cand):
        qi, ti = matcher(logits[cand], boxes[cand], target["labels"][free_t], target["boxes"][free_t])
        rows, tgts = cand[qi.to(cand.device)], free_t[ti.to(free_t.device)]
        gt_idx[rows] = tgts
        ids[rows] = target["ids"][tgts]
    return Assignment(gt_idx=gt_idx, ids=ids, num_disappeared=num_disappeared)


class ClipLoss:
    """The collective average loss of a batch of clips (MOTR's CAL).

    Every frame's (and decoder layer's) summed loss terms are added up under their name and the
    number of supervised samples (targets + disappeared tracks) is counted; `result` divides
    every term once by that count, averaged over processes and clamped at 1, and weights them.
    """

    def __init__(self) -> None:
        self.terms: dict[str, Tensor] = {}
        self.num_samples = 0

    def add(self, losses: dict[str, Tensor], num_samples: int = 0) -> None:
        for k, v in losses.items():
            self.terms[k] = self.terms[k] + v if k in self.terms else v
        self.num_samples += int(num_samples)

    def normaliser(self, device: torch.device | str = "cpu") -> Tensor:
        """Samples per process, averaged over processes when distributed, at least 1."""
        return num_boxes_normalizer(self.num_samples, device)

    def result(self, weights: dict[str, float]) -> dict[str, Tensor]:
        """{"loss": sum_k weight(k) * term_k / N, and every normalised term for logging}.

        weights maps a term name, or its suffix after the last '/', to its weight (terms
        whose weight is not given count with weight 0 but are still logged).
        """
        if not self.terms:
            raise ValueError("ClipLoss.result: no loss terms were added")
        device = next(iter(self.terms.values())).device
        n = self.normaliser(device)
        out = {k: v / n for k, v in self.terms.items()}
        total = sum(weights.get(k, weights.get(k.rsplit("/", 1)[-1], 0.0)) * v for k, v in out.items())
        out["loss"] = total
        return out


def insert_false_positives(frame: TrackState, tracks: Tensor, fp_ratio: float) -> Tensor:
    """Row indices of `frame` to add as false-positive track queries (training).

    Each row in `tracks` (indices of selected tracks) is picked with probability `fp_ratio`;
    for each pick the unassigned row (id < 0) with the highest IoU to it is taken, without
    duplicates; when there are at least as many picks as unassigned rows, all of those are taken.
    """
    inactive = torch.nonzero(frame.ids < 0).flatten()
    picked = tracks[torch.bernoulli(torch.full((len(tracks),), fp_ratio, device=tracks.device)).bool()]
    if len(inactive) == 0 or len(picked) == 0:
        return tracks.new_zeros(0)
    if len(picked) >= len(inactive):
        return inactive
    iou, _ = box_iou(box_cxcywh_to_xyxy(frame.boxes[inactive]), box_cxcywh_to_xyxy(frame.boxes[picked]))
    return inactive[torch.unique(iou.argmax(0))]
