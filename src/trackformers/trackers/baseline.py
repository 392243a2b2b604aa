"""The tracking-by-detection baseline: the same Deformable DETR, IoU + Hungarian association.

Every frame the detector's boxes above `det_thresh` are matched to the live tracks by maximum
total IoU (scipy's Hungarian solver; pairs below `iou_thresh` or of different classes are not
allowed), a matched track takes its detection's box, an unmatched detection above
`score_thresh` starts a new track, and a track unmatched for `miss_tolerance` frames in a row
ends. This is the comparison every user of an end-to-end tracker asks for: same detector,
association by overlap instead of by track queries.

`training_loss` trains the detector alone (DETR set loss over every frame of the clips, from
`models.train_detector`), which is also the detector pre-training stage of the query-based
trackers: a MOTR config can start from a baseline model with `pretrained:`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from trackformers.models.criterion import LossConfig
from trackformers.models.detector import DetectorConfig
from trackformers.models.train_detector import DetectorTraining
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.trackers import lifecycle
from trackformers.trackers.state import TrackState
from trackformers.trackers.tracker import InputConfig, Result, Tracker


def _detector() -> DetectorConfig:
    return DetectorConfig(num_classes=1, with_box_refine=True, dropout=0.0, num_queries=300)


@dataclass
class IoUBaselineConfig:
    detector: DetectorConfig = field(default_factory=_detector)
    input: InputConfig = field(default_factory=InputConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    det_thresh: float = 0.4        # detections below this score are ignored
    score_thresh: float = 0.6      # an unmatched detection at least this confident starts a track
    iou_thresh: float = 0.3        # a detection continues a track only if their IoU is at least this
    miss_tolerance: int = 5        # a track unmatched this many frames in a row ends
    max_detections: int = 100      # most confident detections kept per frame
    grad_checkpointing: bool = False  # accepted for the training engine; the detector trains without it
    size_divisibility: int = 1     # pad batched training frames to a multiple of this (as motr-synth: 64)


def associate(track_boxes: Tensor, det_boxes: Tensor, iou_thresh: float,
              track_labels: Tensor | None = None, det_labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Match tracks to detections (xyxy boxes) by maximum total IoU over the allowed pairs.

    A pair is allowed when its IoU is >= iou_thresh (and the labels agree, when given): gating
    before solving lets a track take its second-best detection when that frees the best one
    for another track, which matching first and thresholding after would miss.
    Returns (track indices, detection indices) of the matched pairs.
    """
    empty = torch.zeros(0, dtype=torch.long, device=track_boxes.device)
    if len(track_boxes) == 0 or len(det_boxes) == 0:
        return empty, empty
    iou = box_iou(track_boxes, det_boxes)[0]
    allowed = iou >= iou_thresh
    if track_labels is not None and det_labels is not None:
        allowed &= track_labels[:, None] == det_labels[None, :]
    gain = torch.where(allowed, iou, torch.zeros_like(iou)).double().cpu().numpy()
    rows, cols = linear_sum_assignment(gain, maximize=True)
    rows, cols = torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)
    ok = allowed.cpu()[rows, cols]
    return rows[ok].to(track_boxes.device), cols[ok].to(track_boxes.device)


class IoUBaseline(DetectorTraining, Tracker):
    """Deformable DETR + score threshold + IoU-Hungarian association (tracking by detection).

    Training is the detector's own (`DetectorTraining.training_loss`: the DETR set loss of
    every frame); its weights live under `detector.` as in the query-based trackers. The
    state is a `TrackState` of the live tracks (no queries; `memory["labels"]` their class).
    """

    Config = IoUBaselineConfig

    # -- inference ------------------------------------------------------------------------
    def new_state(self) -> TrackState:
        return self.rows(self.detector.query_embed.weight.new_zeros(0, 4), self.detector.query_embed.weight.new_zeros(0),
                         torch.zeros(0, dtype=torch.long, device=self.detector.query_embed.weight.device))

    def rows(self, boxes: Tensor, scores: Tensor, labels: Tensor) -> TrackState:
        """Detections as fresh rows: boxes cxcywh, scores, labels (in memory)."""
        rows = TrackState.new_rows(boxes.new_zeros(len(boxes), 0), boxes.new_zeros(len(boxes), 0), 0, 0,
                                   memory={"labels": labels})
        return rows.replace(boxes=boxes, scores=scores)

    @torch.no_grad()
    def detect(self, image: Tensor) -> TrackState:
        """Detections of one normalised image (3, H, W), most confident first, as rows."""
        out = self.detector(image[None])
        scores, labels = out["pred_logits"][0].sigmoid().max(-1)
        keep = scores >= self.cfg.det_thresh
        scores, labels, boxes = scores[keep], labels[keep], out["pred_boxes"][0][keep]
        order = scores.argsort(descending=True)[:self.cfg.max_detections]
        return self.rows(boxes[order], scores[order], labels[order])

    def update(self, state: TrackState, dets: TrackState) -> tuple[Result, TrackState]:
        """Associate one frame's detections with the tracks; returns (this frame's tracks, next state).

        A matched track takes its detection's box, score and label and is kept; an unmatched
        track is missed; an unmatched detection above `score_thresh` is born (`lifecycle.advance`).
        """
        c = self.cfg
        ti, di = associate(box_cxcywh_to_xyxy(state.boxes), box_cxcywh_to_xyxy(dets.boxes), c.iou_thresh,
                           state.memory["labels"], dets.memory["labels"])
        matched = torch.zeros(len(state), dtype=torch.bool, device=state.ids.device)
        matched[ti] = True
        used = torch.zeros(len(dets), dtype=torch.bool, device=dets.ids.device)
        used[di] = True
        boxes, scores, labels = state.boxes.clone(), state.scores.clone(), state.memory["labels"].clone()
        boxes[ti], scores[ti], labels[ti] = dets.boxes[di], dets.scores[di], dets.memory["labels"][di]
        tracks = state.replace(boxes=boxes, scores=scores, memory={"labels": labels})
        rows = TrackState.cat([tracks, dets[~used]], context=state.context)
        is_track = torch.arange(len(rows), device=rows.ids.device) < len(state)
        seen = torch.cat([matched, torch.ones(len(rows) - len(state), dtype=torch.bool, device=matched.device)])
        born = ~is_track & (rows.scores >= c.score_thresh)
        rows = lifecycle.advance(rows, born=born, kept=is_track & seen, missed=is_track & ~seen,
                                 miss_tolerance=c.miss_tolerance)
        live = rows.ids >= 0
        nxt, reported = rows[live], rows[live & seen]
        result = {"ids": reported.ids, "boxes": reported.boxes, "scores": reported.scores,
                  "labels": reported.memory["labels"]}
        return result, nxt

    @torch.no_grad()
    def track(self, image: Tensor, state: TrackState, orig_size: tuple[int, int] | None = None
              ) -> tuple[Result, TrackState]:
        """One inference frame: image (3, H, W) normalised -> (result, next state)."""
        return self.update(state, self.detect(image))
