"""TrackFormer's runtime tracker rules (official `src/trackformer/models/tracker.py`) on tensors.

The tracks of a sequence are one `TrackState`: the active tracks first, then the inactive ones,
each group in the official list order (the order fixes the next frame's track queries).
Per row: `boxes` / `scores` / `logits` / `embeds` of the last frame the track was kept,
`misses` = the official `count_termination`, and in `memory`: `inactive` (bool),
`count_inactive` and `obj_ind` (the object query that gave birth).

One frame (`step_tracks`), in the official order:
1. active tracks with score > track_obj_score_thresh and label 0 are kept (box, score and
   embedding updated, count_termination 0); the others count a miss and become inactive after
   `steps_termination` misses (keeping the box they had when last kept);
2. re-queried inactive tracks with score > reid_score_thresh and label 0 are revived, keeping
   count_inactive and count_termination, and go to the end of the active list;
3. track NMS among the active tracks deletes the suppressed ones (they do not become inactive);
4. new detections (object queries, score > detection_obj_score_thresh, label 0) may re-identify
   inactive tracks by embedding distance (Hungarian, distance <= reid_sim_threshold; resets
   count_inactive); the rest are born with consecutive ids;
5. detection NMS over all active tracks, existing ones with score +inf: only newborns go;
6. count_inactive + 1 for every inactive track.
`alive` drops inactive tracks with count_inactive > inactive_patience (or no area), as the
official code does at the start of every frame and again before re-identification.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.trackers.state import TrackState


@dataclass
class Thresholds:
    """The official tracker_cfg names (see TrackformerConfig for their defaults)."""
    detection_obj_score_thresh: float
    track_obj_score_thresh: float
    detection_nms_thresh: float
    track_nms_thresh: float
    steps_termination: int
    inactive_patience: float
    reid_sim_threshold: float
    reid_score_thresh: float


def greedy_nms(boxes: Tensor, scores: Tensor, iou_thresh: float) -> Tensor:
    """(n,) bool: boxes (xyxy) kept by greedy NMS, as torchvision's `nms`: by descending score
    (stable: equal scores keep list order), a box goes if it overlaps a kept earlier one with
    IoU > iou_thresh.

    Solved as the fixed point of "kept = not overlapped by a kept earlier box" from all-kept:
    after k rounds the first k boxes are final, and the fixed point is unique, so the loop
    stops at the greedy answer after a few rounds of matrix arithmetic.
    """
    n = len(boxes)
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    over = (box_iou(b, b)[0] > iou_thresh).triu(1)  # over[i, j]: i comes first and would remove j
    keep = torch.ones(n, dtype=torch.bool, device=boxes.device)
    for _ in range(n):
        nxt = ~(over & keep[:, None]).any(0)
        if torch.equal(nxt, keep):
            break
        keep = nxt
    out = torch.empty_like(keep)
    out[order] = keep
    return out


def alive(tracks: TrackState, inactive_patience: float) -> Tensor:
    """(n,) bool: rows to keep - active ones, and inactive ones within their patience whose box
    has a positive area."""
    inactive = tracks.memory["inactive"]
    wh_ok = (tracks.boxes[:, 2] > 0) & (tracks.boxes[:, 3] > 0)
    return ~inactive | ((tracks.memory["count_inactive"] <= inactive_patience) & wh_ok)


def _with_preds(rows: TrackState, update: Tensor, preds: TrackState) -> TrackState:
    """`rows` with box, score, logits and embedding taken from `preds` where `update`."""
    u = update[:, None]
    return rows.replace(boxes=torch.where(u, preds.boxes, rows.boxes), scores=torch.where(update, preds.scores, rows.scores),
                        logits=torch.where(u, preds.logits, rows.logits), embeds=torch.where(u, preds.embeds, rows.embeds),
                        queries=torch.where(u, preds.embeds, rows.queries))


def _set_inactive(rows: TrackState, inactive: bool) -> TrackState:
    flag = torch.full_like(rows.memory["inactive"], inactive)
    return rows.replace(memory={**rows.memory, "inactive": flag})


def label_ok(logits: Tensor) -> Tensor:
    """(n,) bool: the best class is 0 (person), as the official post-processing demands."""
    return logits.argmax(-1) == 0


def reid_matches(inactive: TrackState, dets: TrackState, threshold: float) -> tuple[Tensor, Tensor]:
    """(inactive rows, detection rows) re-identified by embedding distance: the Hungarian
    assignment on the L2 distance (torch's pairwise_distance, eps 1e-6) of the inactive tracks'
    last embeddings and the detections', pairs with distance <= threshold; rows in order."""
    empty = torch.zeros(0, dtype=torch.long, device=dets.ids.device)
    if len(inactive) == 0 or len(dets) == 0:
        return empty, empty
    dist = torch.linalg.vector_norm(inactive.embeds[:, None] - dets.embeds[None] + 1e-6, dim=-1)
    r, c = linear_sum_assignment(dist.detach().cpu().numpy())
    r, c = torch.as_tensor(r, device=empty.device), torch.as_tensor(c, device=empty.device)
    ok = dist[r, c] <= threshold
    return r[ok], c[ok]


def step_tracks(tracks: TrackState, preds: TrackState, dets: TrackState, th: Thresholds
                ) -> tuple[TrackState, dict[str, Tensor]]:
    """One frame of the official Tracker.step after the model.

    tracks: the sequence's rows that went in as track queries (already filtered by `alive`).
    preds: the same rows with this frame's boxes, scores (max class probability), logits, embeds.
    dets: the object queries' rows (this frame's predictions; ids -1, memory `obj_ind`).
    Returns the next rows (active, then inactive) and the frame's events as id tensors: born,
    det_nms_removed, to_inactive, revived, track_nms_removed, reid.
    """
    inactive = tracks.memory["inactive"]
    active = ~inactive
    ok = label_ok(preds.logits)
    keep = active & (preds.scores > th.track_obj_score_thresh) & ok
    revive = inactive & (preds.scores > th.reid_score_thresh) & ok
    rows = _with_preds(tracks, keep | revive, preds)
    misses = torch.where(keep, torch.zeros_like(rows.misses), rows.misses + active.long())
    rows = rows.replace(misses=misses, ages=rows.ages + 1)
    to_inactive = active & ~keep & (misses >= th.steps_termination)
    # list order of the official code: revived tracks are appended to the active list, tracks
    # going inactive to the inactive list.
    act = _set_inactive(TrackState.cat([rows[active & ~to_inactive], rows[revive]]), False)
    inact = _set_inactive(TrackState.cat([rows[inactive & ~revive], rows[to_inactive]]), True)
    events = {"to_inactive": rows.ids[to_inactive], "revived_query": rows.ids[revive]}
    if th.track_nms_thresh and len(act):
        kept = greedy_nms(box_cxcywh_to_xyxy(act.boxes), act.scores, th.track_nms_thresh)
        events["track_nms_removed"] = act.ids[~kept]
        act = act[kept]
    else:
        events["track_nms_removed"] = act.ids[:0]

    # new detections, re-identification of inactive tracks, births
    cand = dets[(dets.scores > th.detection_obj_score_thresh) & label_ok(dets.logits)]
    inact = inact[alive(inact, th.inactive_patience)]
    r, c = reid_matches(inact, cand, th.reid_sim_threshold)
    reid = _with_preds(inact[r], torch.ones(len(r), dtype=torch.bool, device=r.device), cand[c])
    reid = _set_inactive(reid.replace(memory={**reid.memory, "count_inactive": torch.zeros_like(r)}), False)
    unused = torch.ones(len(cand), dtype=torch.bool, device=cand.ids.device)
    unused[c] = False
    gone = torch.zeros(len(inact), dtype=torch.bool, device=unused.device)
    gone[r] = True
    inact = inact[~gone]
    born = cand[unused]
    next_id = tracks.context.next_id
    born = born.replace(ids=next_id + torch.arange(len(born), device=born.ids.device))
    events["reid"], events["born"] = reid.ids, born.ids
    act = TrackState.cat([act, reid, born])
    if th.detection_nms_thresh and len(act):
        new = torch.zeros(len(act), dtype=torch.bool, device=act.ids.device)
        new[len(act) - len(born):] = True
        scores = torch.where(new, act.scores, torch.full_like(act.scores, float("inf")))
        kept = greedy_nms(box_cxcywh_to_xyxy(act.boxes), scores, th.detection_nms_thresh)
        events["det_nms_removed"] = act.ids[~kept]
        act = act[kept]
    else:
        events["det_nms_removed"] = act.ids[:0]
    inact = inact.replace(memory={**inact.memory, "count_inactive": inact.memory["count_inactive"] + 1})
    out = TrackState.cat([act, inact])
    return out.with_context(next_id=next_id + len(born)), events
