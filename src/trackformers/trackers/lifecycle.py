"""Births, misses, deaths and ids at inference: mask arithmetic on `TrackState` rows, one place.

Every method's runtime tracker is a configuration of the same few rules (`Rules`):
- a candidate row (a detect query, or an unmatched detection) whose score reaches
  `birth_thresh` is born with a fresh id, unless detection NMS finds that its box overlaps a
  track seen this frame by IoU >= `birth_nms_iou` (Trackformer's detection NMS; 1.0 is off);
- a track whose score reaches `keep_thresh` has its miss counter reset (with
  `reset_misses=False`, as Trackformer's re-queried inactive tracks, it keeps its count);
- a track whose score is below `miss_thresh` is missed once more, and dies (id -1, the caller
  drops it) once its misses reach `miss_tolerance`: a missed track stays a row, is queried
  again next frame (an inactive track with a patience) and is revived by a score above
  `keep_thresh`.
`advance` is the same arithmetic on masks a method computes itself (the IoU baseline: matched
or not), so nothing else in trackers/ counts misses or hands out ids.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.trackers.state import TrackState


@dataclass(frozen=True)
class Rules:
    """One method's runtime thresholds (see the module docstring).

    MOTR: birth 0.7, keep 0.7, miss 0.6 (scores in [0.6, 0.7) neither reset nor count), 5 misses.
    MeMOTR: birth = detection threshold, keep = miss = track threshold, 30 misses.
    """
    birth_thresh: float
    keep_thresh: float
    miss_thresh: float
    miss_tolerance: int
    birth_nms_iou: float = 1.0
    reset_misses: bool = True


def assign_new_ids(ids: Tensor, born: Tensor, next_id: int) -> tuple[Tensor, int]:
    """Give the rows in `born` consecutive new ids in row order, starting at `next_id`.

    Returns the new ids tensor and the updated counter. Equivalent to looping over the rows
    and handing out `next_id++` to each born row, without the loop.
    """
    order = torch.cumsum(born.long(), 0) - 1  # 0, 1, ... among born rows, in row order
    ids = torch.where(born, next_id + order, ids)
    return ids, next_id + int(born.sum())


def overlaps_seen(boxes: Tensor, seen: Tensor, iou_thresh: float) -> Tensor:
    """(n,) bool: rows whose box (cxcywh) overlaps a `seen` row's box by IoU >= iou_thresh."""
    xyxy = box_cxcywh_to_xyxy(boxes)
    return ((box_iou(xyxy, xyxy)[0] >= iou_thresh) & seen[None, :]).any(1)


def advance(rows: TrackState, born: Tensor, kept: Tensor, missed: Tensor, miss_tolerance: int) -> TrackState:
    """One frame of the lifecycle from masks: `born` rows get new ids, `kept` rows have their
    misses reset, `missed` tracks count one more miss and die (id -1) at `miss_tolerance`;
    ages are 0 for the newborn and +1 for every other track."""
    tracked = rows.ids >= 0
    misses = torch.where(kept, torch.zeros_like(rows.misses), rows.misses) + missed.long()
    dead = missed & (misses >= miss_tolerance)
    ids, next_id = assign_new_ids(rows.ids, born, rows.context.next_id)
    ids = torch.where(dead, torch.full_like(ids, -1), ids)
    ages = torch.where(born, torch.zeros_like(rows.ages), rows.ages + tracked.long())
    return rows.replace(ids=ids, misses=misses, ages=ages).with_context(next_id=next_id)


def update(rows: TrackState, rules: Rules, candidates: Tensor | None = None) -> TrackState:
    """One frame of the inference lifecycle on `rows.scores` (the official runtime trackers).

    candidates: (n,) bool rows that may be born (default: every row with id -1).
    """
    ids, scores = rows.ids, rows.scores
    tracked = ids >= 0
    if candidates is None:
        candidates = ids == -1
    born = candidates & ~tracked & (scores >= rules.birth_thresh)
    missed = tracked & (scores < rules.miss_thresh)
    if rules.birth_nms_iou < 1.0 and born.any():
        born &= ~overlaps_seen(rows.boxes, tracked & ~missed, rules.birth_nms_iou)
    kept = (scores >= rules.keep_thresh) if rules.reset_misses else torch.zeros_like(tracked)
    return advance(rows, born, kept, missed, rules.miss_tolerance)


def report_mask(rows: TrackState, score_thresh: float, min_area: float = 0.0,
                image_size: tuple[int, int] | None = None) -> Tensor:
    """(n,) bool: tracks to report this frame: id >= 0, score > thresh, pixel area > min_area.

    image_size (h, w) gives the pixel scale of the normalised boxes for the area test.
    """
    keep = (rows.ids >= 0) & (rows.scores > score_thresh)
    if min_area > 0:
        if image_size is None:
            raise ValueError("report_mask: min_area needs image_size")
        h, w = image_size
        # The originals compute the area from xyxy pixel corners; the same rounding here.
        cx, cy, bw, bh = rows.boxes.unbind(-1)
        x1, x2 = (cx - 0.5 * bw) * w, (cx + 0.5 * bw) * w
        y1, y2 = (cy - 0.5 * bh) * h, (cy + 0.5 * bh) * h
        keep &= (x2 - x1) * (y2 - y1) > min_area
    return keep
