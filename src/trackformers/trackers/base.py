"""What every query-based tracker shares: the live-track state and its arithmetic.

A tracker's per-frame step (the same code in training and inference, DESIGN.md "One tracker,
two modes") reads a `TrackState`, runs the decoder on detect queries + the state's track
queries, and produces the next `TrackState`. Around that step this module provides:

- `TrackState`: one row per track query, every per-row tensor with the same first dimension;
  indexing, concatenation and `.to()` are written once here for all fields (and for any
  method-specific `memory` tensors).
- `runtime_update`: births, misses and deaths at inference as mask arithmetic (no Python loop
  over tracks), with ids drawn from a per-sequence counter so they are never reused.
- `match_tracklets`: tracklet-aware label assignment for training (a track keeps the target
  with its identity; new objects are Hungarian-matched to the candidate queries).
- `ClipLoss`: the collective average loss (every frame's loss terms summed, divided once by the
  number of supervised objects of the whole clip/batch, averaged over processes).
- `QueryTracker`: the frame loop itself (batched encoder, per-sequence decoding of detect +
  track rows, `track`, `training_loss`, matching and per-layer losses), so that a method
  writes only its own pieces: its detect rows, its decoder call, its target assignment and
  track selection, its runtime.
- `InputConfig`: the inference resize every tracker has (set-loss weights: `models.criterion.LossConfig`).

Nothing here is specific to one method: MOTR, MeMOTR and later trackers differ in how they
build queries, update them between frames and set their thresholds, not in this bookkeeping.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from trackformers.models.criterion import num_boxes_normalizer
from trackformers.models.deformable_transformer import EncoderOutput
from trackformers.models.detector import pad_images
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou

# Per-row tensor fields of TrackState, in declaration order (`memory` is handled alongside).
_ROW_FIELDS = ("ids", "queries", "refs", "embeds", "boxes", "logits", "scores", "misses", "ages",
               "gt_idx", "iou")


@dataclass
class TrackState:
    """The rows (track queries) a tracker carries from one frame to the next.

    Every tensor has the same first dimension n (the number of rows); rows are ordered as they
    enter the decoder after the detect queries.

    ids:     (n,) int64 track id; -1 for a row that is not (or no longer) a track, e.g. a
             false-positive query inserted in training or a freshly added detect query.
             At inference ids come from `next_id` (never reused); in training they are the
             ground-truth identities the rows are assigned to.
    queries: (n, Dq) the query embedding fed to the decoder (method-defined layout, e.g. MOTR:
             positional half ++ content half, Dq = 2C).
    refs:    (n, R) reference point (R=2) or box (R=4) in the space the method's decoder
             expects (MOTR: inverse-sigmoid of the box centre).
    embeds:  (n, C) last decoder layer output of this row in the latest frame.
    boxes:   (n, 4) latest predicted box, normalised cxcywh.
    logits:  (n, K) latest class logits.
    scores:  (n,) latest score the runtime thresholds compare (method-defined, e.g. sigmoid of
             the first logit, or of the max logit).
    misses:  (n,) int64 consecutive frames the track was missed (official `disappear_time`).
    ages:    (n,) int64 frames since the track was born (0 in its first frame).
    gt_idx:  (n,) int64 training: index of the assigned target in the current frame, -1 if none.
    iou:     (n,) training: IoU of `boxes` with the assigned target (0 if none).
    memory:  method-specific per-row tensors (e.g. MeMOTR's long-term memory), each with first
             dimension n; indexed, concatenated and moved with the rest.
    next_id: the next id to hand out in this sequence (a counter, not a row).
    """

    ids: Tensor
    queries: Tensor
    refs: Tensor
    embeds: Tensor
    boxes: Tensor
    logits: Tensor
    scores: Tensor
    misses: Tensor
    ages: Tensor
    gt_idx: Tensor
    iou: Tensor
    memory: dict[str, Tensor] = field(default_factory=dict)
    next_id: int = 0

    # -- construction -------------------------------------------------------------------
    @classmethod
    def new_rows(cls, queries: Tensor, refs: Tensor, embed_dim: int, num_classes: int,
                 memory: dict[str, Tensor] | None = None, next_id: int = 0) -> TrackState:
        """Rows for fresh queries (ids -1, zero embeddings/boxes/logits/scores/counters)."""
        n, device, dtype = len(queries), queries.device, queries.dtype
        return cls(
            ids=torch.full((n,), -1, dtype=torch.long, device=device),
            queries=queries, refs=refs,
            embeds=torch.zeros(n, embed_dim, device=device, dtype=dtype),
            boxes=torch.zeros(n, 4, device=device, dtype=dtype),
            logits=torch.zeros(n, num_classes, device=device, dtype=dtype),
            scores=torch.zeros(n, device=device, dtype=dtype),
            misses=torch.zeros(n, dtype=torch.long, device=device),
            ages=torch.zeros(n, dtype=torch.long, device=device),
            gt_idx=torch.full((n,), -1, dtype=torch.long, device=device),
            iou=torch.zeros(n, device=device, dtype=dtype),
            memory=dict(memory or {}), next_id=next_id)

    @classmethod
    def empty(cls, query_dim: int, ref_dim: int, embed_dim: int, num_classes: int,
              memory_dims: dict[str, tuple[int, ...]] | None = None,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> TrackState:
        """A state with no rows: the start of every sequence (`memory_dims`: per-row shapes)."""
        memory = {k: torch.zeros((0, *s), device=device, dtype=dtype) for k, s in (memory_dims or {}).items()}
        return cls.new_rows(torch.zeros(0, query_dim, device=device, dtype=dtype),
                            torch.zeros(0, ref_dim, device=device, dtype=dtype),
                            embed_dim, num_classes, memory)

    # -- one implementation of the per-row plumbing ---------------------------------------
    def map(self, fn: Callable[[Tensor], Tensor]) -> TrackState:
        """A new state with `fn` applied to every per-row tensor (fields and memory)."""
        rows = {name: fn(getattr(self, name)) for name in _ROW_FIELDS}
        return TrackState(**rows, memory={k: fn(v) for k, v in self.memory.items()}, next_id=self.next_id)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, index: Tensor | slice | int) -> TrackState:
        """Rows selected by a boolean mask, an index tensor or a slice (an int keeps the dim)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map(lambda t: t[index])

    def to(self, *args, **kwargs) -> TrackState:
        """`Tensor.to` on every row tensor; integer fields keep their dtype when casting."""
        def move(t: Tensor) -> Tensor:
            if t.is_floating_point():
                return t.to(*args, **kwargs)
            dtype_free = [a for a in args if not isinstance(a, torch.dtype)]
            return t.to(*dtype_free, **{k: v for k, v in kwargs.items() if k != "dtype"})
        return self.map(move)

    def detach(self) -> TrackState:
        return self.map(Tensor.detach)

    def replace(self, **changes) -> TrackState:
        """A copy with some fields replaced (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    @staticmethod
    def cat(states: list[TrackState]) -> TrackState:
        """Rows of all states, in order; memory keys must agree; the id counter is the max."""
        states = list(states)
        if not states:
            raise ValueError("TrackState.cat: nothing to concatenate")
        keys = set(states[0].memory)
        for s in states[1:]:
            if set(s.memory) != keys:
                raise ValueError(f"TrackState.cat: memory keys differ ({sorted(keys)} vs {sorted(s.memory)})")
        rows = {name: torch.cat([getattr(s, name) for s in states]) for name in _ROW_FIELDS}
        memory = {k: torch.cat([s.memory[k] for s in states]) for k in states[0].memory}
        return TrackState(**rows, memory=memory, next_id=max(s.next_id for s in states))

    @property
    def active(self) -> Tensor:
        """(n,) bool: rows that are tracks (id >= 0)."""
        return self.ids >= 0


# ---------------------------------------------------------------------------------------
# Inference: births, misses, deaths as mask arithmetic
# ---------------------------------------------------------------------------------------
def assign_new_ids(ids: Tensor, born: Tensor, next_id: int) -> tuple[Tensor, int]:
    """Give the rows in `born` consecutive new ids in row order, starting at `next_id`.

    Returns the new ids tensor and the updated counter. Equivalent to looping over the rows
    and handing out `next_id++` to each born row, without the loop.
    """
    order = torch.cumsum(born.long(), 0) - 1  # 0, 1, ... among born rows, in row order
    ids = torch.where(born, next_id + order, ids)
    return ids, next_id + int(born.sum())


def runtime_update(state: TrackState, birth_thresh: float, keep_thresh: float, miss_thresh: float,
                   miss_tolerance: int, candidates: Tensor | None = None, birth_nms_iou: float = 1.0) -> TrackState:
    """One frame of the inference lifecycle on `state.scores` (official runtime trackers).

    - misses reset to 0 for every row with score >= keep_thresh;
    - a candidate row (default: id == -1) with score >= birth_thresh is born with a new id,
      unless its box overlaps a track seen this frame (score >= miss_thresh) with IoU >=
      birth_nms_iou (Trackformer's detection NMS against tracks; 1.0, the default, never does:
      MOTR and MeMOTR rely on their training alone to keep detect queries off tracked objects);
    - a track (id >= 0 before this frame) with score < miss_thresh is missed once more; once
      its misses reach `miss_tolerance` its id becomes -1 (dead; the caller drops it);
    - ages: 0 for the newborn, +1 for every other track.
    MOTR: birth 0.7, keep 0.7, miss 0.6 (scores in [0.6, 0.7) neither reset nor count).
    MeMOTR: birth = det threshold, keep = miss = track threshold.
    """
    ids, scores = state.ids, state.scores
    tracked = ids >= 0
    if candidates is None:
        candidates = ids == -1
    misses = torch.where(scores >= keep_thresh, torch.zeros_like(state.misses), state.misses)
    born = candidates & ~tracked & (scores >= birth_thresh)
    missed = tracked & (scores < miss_thresh)
    if birth_nms_iou < 1.0 and born.any():
        xyxy = box_cxcywh_to_xyxy(state.boxes)
        seen = tracked & ~missed
        born &= ~((box_iou(xyxy, xyxy)[0] >= birth_nms_iou) & seen[None, :]).any(1)
    misses = misses + missed.long()
    dead = missed & (misses >= miss_tolerance)
    ids, next_id = assign_new_ids(ids, born, state.next_id)
    ids = torch.where(dead, torch.full_like(ids, -1), ids)
    ages = torch.where(born, torch.zeros_like(state.ages), state.ages + tracked.long())
    return state.replace(ids=ids, misses=misses, ages=ages, next_id=next_id)


def report_mask(state: TrackState, score_thresh: float, min_area: float = 0.0,
                image_size: tuple[int, int] | None = None) -> Tensor:
    """(n,) bool: tracks to report this frame: id >= 0, score > thresh, pixel area > min_area.

    image_size (h, w) gives the pixel scale of the normalised boxes for the area test.
    """
    keep = (state.ids >= 0) & (state.scores > score_thresh)
    if min_area > 0:
        if image_size is None:
            raise ValueError("report_mask: min_area needs image_size")
        h, w = image_size
        # The originals compute the area from xyxy pixel corners; the same rounding here.
        cx, cy, bw, bh = state.boxes.unbind(-1)
        x1, x2 = (cx - 0.5 * bw) * w, (cx + 0.5 * bw) * w
        y1, y2 = (cy - 0.5 * bh) * h, (cy + 0.5 * bh) * h
        keep &= (x2 - x1) * (y2 - y1) > min_area
    return keep


# ---------------------------------------------------------------------------------------
# Training: tracklet-aware label assignment and the collective average loss
# ---------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------
# Training-time track augmentation (MOTR's QIM, MeMOTR's FP_INSERT_RATE)
# ---------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------
# Settings every tracker has
# ---------------------------------------------------------------------------------------
@dataclass
class InputConfig:
    """Inference resize: short side to `short_side`, long side at most `max_size`; normalisation.

    resize_rule 'motr' is the official MOTR / MeMOTR inference scripts' (one scale, both sides
    truncated, cv2 bilinear); 'detr' the Deformable DETR rule (see data.transforms).
    """
    short_side: int = 800
    max_size: int = 1536
    resize_rule: str = "motr"
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])


# ---------------------------------------------------------------------------------------
# The frame loop shared by query-based trackers
# ---------------------------------------------------------------------------------------
@dataclass
class FrameOutput:
    """One frame of one sequence after the decoder.

    rows: detect rows then track rows, with this frame's `logits`, `boxes`, `embeds`, `scores`.
    logits, boxes: (layers, n, K), (layers, n, 4) every decoder layer's predictions (with grad).
    Methods that need more of the decoder (e.g. MeMOTR's penultimate layer) subclass it.
    """
    rows: TrackState
    logits: Tensor
    boxes: Tensor


class QueryTracker(nn.Module):
    """What is the same in every query-based tracker: one step per frame for a batch of
    sequences, the inference wrapper, and the training loop over clips.

    A subclass sets `cfg` (with `grad_checkpointing` and `loss: LossConfig`), `detector` (a
    DeformableDETR-like module with `features` and `transformer.encode`) and `criterion`
    (a `SetCriterion`), and implements:
      detect_rows(next_id) -> TrackState          the learned detect queries as fresh rows
      decode(rows, enc, b) -> FrameOutput         decode one sequence's rows on encoder output b
      supervise(out, target, clip_loss) -> rows   training: assign targets, add the frame's losses
      training_tracks(out, rows) -> TrackState    training: next frame's track rows
      track_frame(image, state, orig_size) -> (result, next state, FrameOutput)   inference
    """

    first_id = 0            # the first id a sequence hands out (the registry writes ids from 1)
    size_divisibility = 1   # batched training frames are padded to a multiple of this

    def encode(self, images: Tensor, masks: Tensor) -> EncoderOutput:
        """Backbone, projections and encoder (recomputed in backward with grad_checkpointing)."""
        def run(images: Tensor, masks: Tensor) -> EncoderOutput:
            srcs, level_masks, pos = self.detector.features(images, masks)
            return self.detector.transformer.encode(srcs, level_masks, pos)
        if self.cfg.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(run, images, masks, use_reentrant=False)
        return run(images, masks)

    def step(self, images: Tensor, masks: Tensor | None, states: list[TrackState]) -> list[FrameOutput]:
        """One frame of each sequence, the same code in training and inference: images
        (B, 3, H, W) normalised, masks (B, H, W) True on padding (None: none), states[b] the
        track rows of sequence b -> its detect + track rows decoded."""
        if masks is None:
            masks = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        enc = self.encode(images, masks)
        # Sequences carry different numbers of track rows: decode them one by one on the shared
        # (batched) encoder output instead of padding the queries.
        return [self.decode(TrackState.cat([self.detect_rows(s.next_id), s]), enc, b) for b, s in enumerate(states)]

    def track(self, image: Tensor, state: TrackState, orig_size: tuple[int, int] | None = None
              ) -> tuple[dict[str, Tensor], TrackState]:
        """One inference frame: image (3, H, W) normalised -> (result, next state).

        orig_size (h, w) of the original frame is where the result's area filter is measured
        (as the official filters); without it, the pixels of `image` are used.
        """
        result, nxt, _ = self.track_frame(image, state, orig_size)
        return result, nxt

    # -- training ---------------------------------------------------------------------
    def matcher(self, logits: Tensor, boxes: Tensor, labels: Tensor, tgt_boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Hungarian matching of candidate rows to targets (the `Matcher` of match_tracklets)."""
        return self.criterion.matcher({"pred_logits": logits[None], "pred_boxes": boxes[None]},
                                      [{"labels": labels, "boxes": tgt_boxes}])[0]

    def layer_losses(self, logits: Tensor, boxes: Tensor, gt_idx: Tensor, target: dict) -> dict[str, Tensor]:
        """Summed (not yet normalised) losses of one decoder layer: focal over every row and
        class (rows without a target are background), L1 and GIoU over rows with a target."""
        rows = torch.nonzero(gt_idx >= 0).flatten()
        one = torch.ones((), device=logits.device)
        return self.criterion.layer_losses({"pred_logits": logits[None], "pred_boxes": boxes[None]}, [target],
                                           [(rows, gt_idx[rows])], num_boxes=one)

    @staticmethod
    def target_iou(rows: TrackState, gt_idx: Tensor, target: dict, assigned: Tensor) -> Tensor:
        """(n,) IoU of each `assigned` row's box with its target; other rows keep their last IoU."""
        iou = rows.iou.clone()
        if assigned.any():
            src = box_cxcywh_to_xyxy(rows.boxes[assigned].detach())
            tgt = box_cxcywh_to_xyxy(target["boxes"][gt_idx[assigned]])
            iou[assigned] = box_iou(src, tgt)[0].diagonal().to(iou.dtype)
        return iou

    def training_loss(self, clips: list[list[tuple[Tensor, dict]]]) -> dict[str, Tensor]:
        """Collective average loss of a batch of clips (each a list of (image, target)); clips
        may differ in length and image size (frames are padded per time step)."""
        clip_loss = ClipLoss()
        states = [self.new_state() for _ in clips]
        for t in range(max(len(c) for c in clips)):
            live = [b for b, c in enumerate(clips) if t < len(c)]
            images, masks = pad_images([clips[b][t][0] for b in live], self.size_divisibility)
            for b, out in zip(live, self.step(images, masks, [states[b] for b in live])):
                rows = self.supervise(out, clips[b][t][1], clip_loss)
                if t + 1 < len(clips[b]):
                    states[b] = self.training_tracks(out, rows)
        c = self.cfg.loss
        return clip_loss.result({"loss_ce": c.cls_loss_coef, "loss_bbox": c.bbox_loss_coef,
                                 "loss_giou": c.giou_loss_coef})
