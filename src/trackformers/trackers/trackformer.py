"""TrackFormer (Meinhardt et al., CVPR 2022): tracking by attention with track queries.

A Deformable DETR with iterative box refinement whose decoder takes, before its object
queries, one track query per live track: content = the track's last decoder output, positional
part = zeros, reference point = the centre of its last box. With multi-frame attention the
encoder also sees the previous frame (models/multi_frame.py).
- inference: the official runtime tracker (the rules below): thresholds, track NMS,
  detection NMS against tracks, inactive tracks re-queried for `inactive_patience` frames and
  revived on score, optional re-identification by embedding distance;
- training: frame pairs (t-k, t). The previous frame runs without gradient and is matched to
  its targets; a random subset of its matched outputs (false negatives) plus a few unmatched
  ones (false positives) become the current frame's track queries. Tracks keep their
  identity's target, the Hungarian matcher assigns the remaining targets to the object
  queries, the rest learn background; focal / L1 / GIoU on every decoder layer.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from trackformers.models.criterion import LossConfig, build_criterion
from trackformers.models.deformable_transformer import EncoderOutput
from trackformers.models.detector import DeformableDETR, DetectorConfig, pad_images
from trackformers.models.multi_frame import MultiFrameDeformableDETR
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.ops.nms import nms_mask
from trackformers.trackers.assignment import ClipLoss, match_tracklets
from trackformers.trackers.query_tracker import QueryTracker
from trackformers.trackers.state import Context, TrackState
from trackformers.trackers.tracker import InputConfig


# ---------------------------------------------------------------------------------------
# The runtime tracker rules (official src/trackformer/models/tracker.py) on tensors
# ---------------------------------------------------------------------------------------
# TrackFormer's runtime tracker rules (official `src/trackformer/models/tracker.py`) on tensors.
#
# The tracks of a sequence are one `TrackState`: the active tracks first, then the inactive ones,
# each group in the official list order (the order fixes the next frame's track queries).
# Per row: `boxes` / `scores` / `logits` / `embeds` of the last frame the track was kept,
# `misses` = the official `count_termination`, and in `memory`: `inactive` (bool),
# `count_inactive` and `obj_ind` (the object query that gave birth).
#
# One frame (`step_tracks`), in the official order:
# 1. active tracks with score > track_obj_score_thresh and label 0 are kept (box, score and
#    embedding updated, count_termination 0); the others count a miss and become inactive after
#    `steps_termination` misses (keeping the box they had when last kept);
# 2. re-queried inactive tracks with score > reid_score_thresh and label 0 are revived, keeping
#    count_inactive and count_termination, and go to the end of the active list;
# 3. track NMS among the active tracks deletes the suppressed ones (they do not become inactive);
# 4. new detections (object queries, score > detection_obj_score_thresh, label 0) may re-identify
#    inactive tracks by embedding distance (Hungarian, distance <= reid_sim_threshold; resets
#    count_inactive); the rest are born with consecutive ids;
# 5. detection NMS over all active tracks, existing ones with score +inf: only newborns go;
# 6. count_inactive + 1 for every inactive track.
# `alive` drops inactive tracks with count_inactive > inactive_patience (or no area), as the
# official code does at the start of every frame and again before re-identification.
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
        kept = nms_mask(box_cxcywh_to_xyxy(act.boxes), act.scores, th.track_nms_thresh)
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
        kept = nms_mask(box_cxcywh_to_xyxy(act.boxes), scores, th.detection_nms_thresh)
        events["det_nms_removed"] = act.ids[~kept]
        act = act[kept]
    else:
        events["det_nms_removed"] = act.ids[:0]
    inact = inact.replace(memory={**inact.memory, "count_inactive": inact.memory["count_inactive"] + 1})
    out = TrackState.cat([act, inact])
    return out.with_context(next_id=next_id + len(born)), events


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------

def _trackformer_detector() -> DetectorConfig:
    # the MOT17 private model: hidden 288 (3 x 96 for the 3-d encoding), 500 queries, 20 logits
    return DetectorConfig(hidden_dim=288, num_queries=500, num_classes=20, with_box_refine=True,
                          offset_normalizer_hw=True, dim_feedforward=1024, dropout=0.1)


def _trackformer_input() -> InputConfig:
    return InputConfig(short_side=800, max_size=1333, resize_rule="detr")


@dataclass
class TrackformerConfig:
    detector: DetectorConfig = field(default_factory=_trackformer_detector)
    multi_frame_attention: bool = True
    multi_frame_encoding: bool = True
    multi_frame_attention_separate_encoder: bool = True
    loss: LossConfig = field(default_factory=LossConfig)
    input: InputConfig = field(default_factory=_trackformer_input)
    # training (official cfgs/train.yaml)
    track_query_false_positive_prob: float = 0.1
    track_query_false_negative_prob: float = 0.4
    track_backprop_prev_frame: bool = False
    # runtime: the official tracker_cfg (cfgs/track.yaml + named config `reid`), same names
    detection_obj_score_thresh: float = 0.4
    track_obj_score_thresh: float = 0.4
    detection_nms_thresh: float = 0.9
    track_nms_thresh: float = 0.9
    steps_termination: int = 1
    inactive_patience: float = 5      # track.yaml -1 (no re-query), `reid` 5 (the published results)
    reid_sim_threshold: float = 0.0
    reid_score_thresh: float = 0.4
    prev_frame_dist: int = 1
    # result files as the official writer: x + 1, y + 1, w + 1, h + 1, conf -1 ("mot": plain)
    mot_convention: str = "trackformer"
    grad_checkpointing: bool = False  # kept for the QueryTracker interface
    size_divisibility: int = 1


class Trackformer(QueryTracker):
    Config = TrackformerConfig

    def __init__(self, cfg: TrackformerConfig):
        super().__init__()
        self.cfg = cfg
        self.size_divisibility = cfg.size_divisibility
        if cfg.multi_frame_attention:
            self.detector = MultiFrameDeformableDETR(cfg.detector, cfg.multi_frame_encoding,
                                                     cfg.multi_frame_attention_separate_encoder)
        else:
            self.detector = DeformableDETR(cfg.detector)
        if cfg.detector.two_stage:
            raise ValueError("Trackformer uses single-stage object queries: detector.two_stage must be false")
        self.criterion = build_criterion(cfg.detector.num_classes, cfg.loss)

    # -- state ------------------------------------------------------------------------
    def _rows(self, embeds: Tensor, boxes: Tensor, logits: Tensor, obj_ind: Tensor, next_id: int = 0) -> TrackState:
        n = len(embeds)
        memory = {"inactive": torch.zeros(n, dtype=torch.bool, device=embeds.device),
                  "count_inactive": torch.zeros(n, dtype=torch.long, device=embeds.device), "obj_ind": obj_ind}
        rows = TrackState.new_rows(embeds, boxes[:, :2], embeds.shape[-1], logits.shape[-1], memory,
                                   Context(next_id=next_id))
        return rows.replace(embeds=embeds, boxes=boxes, logits=logits, scores=logits.sigmoid().max(-1).values)

    def new_state(self) -> TrackState:
        """No tracks. The context's `features` holds the projected levels of the last
        `prev_frame_dist` frames (the multi-frame encoder's previous frame; the official Tracker
        keeps the backbone maps, projecting them again gives the same levels) and the count of
        revivals (`num_reids`)."""
        d, w = self.cfg.detector, self.detector.query_embed.weight
        empty = self._rows(w.new_zeros(0, d.hidden_dim), w.new_zeros(0, 4), w.new_zeros(0, d.num_classes),
                           torch.zeros(0, dtype=torch.long, device=w.device))
        frames = deque([None], maxlen=max(int(self.cfg.prev_frame_dist), 1))
        return empty.with_context(features={"levels": frames, "num_reids": 0})

    # -- the model ----------------------------------------------------------------------
    def encode_frames(self, levels, previous=None) -> EncoderOutput:
        """Encoder output of a frame's projected levels (and the previous frame's, multi-frame)."""
        if self.cfg.multi_frame_attention:
            return self.detector.encode_pair(levels, previous)
        srcs, masks = levels
        pos = [self.detector.position_encoding(m).to(s.dtype) for s, m in zip(srcs, masks)]
        return self.detector.transformer.encode(srcs, masks, pos)

    def decode_queries(self, enc: EncoderOutput, b: int, track_embeds: Tensor, track_boxes: Tensor
                       ) -> tuple[Tensor, Tensor, Tensor]:
        """Track queries first (content = embedding, zero positional part, reference = box
        centre), then the object queries, decoded on sample `b` of `enc`.
        Returns every layer's logits (layers, N, K) and boxes (layers, N, 4), and the last
        layer's hidden states (N, C)."""
        d = self.detector
        C = self.cfg.detector.hidden_dim
        obj_pos, obj_tgt = d.query_embed.weight.split(C, dim=1)
        tgt = torch.cat((track_embeds, obj_tgt))
        pos = torch.cat((torch.zeros_like(track_embeds), obj_pos))
        ref = torch.cat((track_boxes[:, :2], d.transformer.reference_points(obj_pos).sigmoid()))[None]
        hs, inter = d.transformer.decoder(tgt[None], ref, enc.memory[b:b + 1], enc.spatial_shapes,
                                          enc.level_start_index, enc.valid_ratios[b:b + 1], pos[None],
                                          enc.padding_mask[b:b + 1],
                                          bbox_embed=d.bbox_embed if self.cfg.detector.with_box_refine else None)
        logits, boxes = d.predict(hs, ref, inter)
        return logits[:, 0], boxes[:, 0], hs[-1, 0]

    # -- inference ------------------------------------------------------------------------
    def thresholds(self) -> Thresholds:
        c = self.cfg
        return Thresholds(c.detection_obj_score_thresh, c.track_obj_score_thresh, c.detection_nms_thresh,
                          c.track_nms_thresh, int(c.steps_termination), float(c.inactive_patience),
                          c.reid_sim_threshold, c.reid_score_thresh)

    @torch.no_grad()
    def track_frame(self, image: Tensor, state: TrackState, orig_size: tuple[int, int] | None = None):
        """`track` plus the frame's record: dict(tracks in, logits, boxes, hs, events)."""
        c = self.cfg
        ctx = state.context
        tracks = state[alive(state, float(c.inactive_patience))]
        levels = self.detector.levels(image[None])
        enc = self.encode_frames(levels, ctx.features["levels"][0])
        logits, boxes, hs = self.decode_queries(enc, 0, tracks.embeds, tracks.boxes)
        n = len(tracks)
        preds = tracks.replace(boxes=boxes[-1, :n], logits=logits[-1, :n], embeds=hs[:n],
                               scores=logits[-1, :n].sigmoid().max(-1).values)
        dets = self._rows(hs[n:], boxes[-1, n:], logits[-1, n:], torch.arange(len(hs) - n, device=hs.device),
                          ctx.next_id)
        nxt, events = step_tracks(tracks, preds, dets, self.thresholds())
        frames = deque(ctx.features["levels"], maxlen=ctx.features["levels"].maxlen)
        frames.append(levels)
        num_reids = ctx.features["num_reids"] + len(events["revived_query"]) + len(events["reid"])
        new_state = nxt.with_context(frame=ctx.frame + 1, features={"levels": frames, "num_reids": num_reids})
        act = nxt[~nxt.memory["inactive"]]
        result = {"ids": act.ids, "boxes": act.boxes, "scores": act.scores, "labels": act.logits.argmax(-1)}
        record = {"tracks_in": tracks, "logits": logits, "boxes": boxes, "hs": hs, "events": events}
        return result, new_state, record

    # -- training -------------------------------------------------------------------------
    def training_loss(self, clips: list[list[tuple[Tensor, dict]]]) -> dict[str, Tensor]:
        """Loss of a batch of frame pairs: each clip's first frame is the previous frame t-k,
        its last the current frame t (clips of one frame pair the frame with itself)."""
        prev = [c[0] for c in clips]
        cur = [c[-1] for c in clips]
        images_p, masks_p = pad_images([im for im, _ in prev], self.size_divisibility)
        images_c, masks_c = pad_images([im for im, _ in cur], self.size_divisibility)
        grad_prev = torch.enable_grad() if self.cfg.track_backprop_prev_frame else torch.no_grad()
        with grad_prev:
            feats_p = self.detector.backbone(images_p)
            enc_p = self.encode_frames(self.detector.project(feats_p, masks_p))
            empty = images_p.new_zeros(0, self.cfg.detector.hidden_dim), images_p.new_zeros(0, 4)
            prev_out = [self.decode_queries(enc_p, b, *empty) for b in range(len(clips))]
        queries = self.sample_track_queries(prev_out, [t for _, t in prev], [t for _, t in cur])
        feats_c = self.detector.backbone(images_c)
        levels_c = self.detector.project(feats_c, masks_c)
        # the previous frame's backbone maps, projected again with gradient (as the official code)
        levels_p = self.detector.project([f.detach() for f in feats_p], masks_p) if self.cfg.multi_frame_attention else None
        enc = self.encode_frames(levels_c, levels_p)
        clip_loss = ClipLoss()
        for b, (ids, embeds, boxes) in enumerate(queries):
            logits_all, boxes_all, _ = self.decode_queries(enc, b, embeds, boxes)
            self.add_pair_losses(logits_all, boxes_all, ids, cur[b][1], clip_loss)
        c = self.cfg.loss
        return clip_loss.result({"loss_ce": c.cls_loss_coef, "loss_bbox": c.bbox_loss_coef,
                                 "loss_giou": c.giou_loss_coef})

    def add_pair_losses(self, logits: Tensor, boxes: Tensor, track_ids: Tensor, target: dict,
                        clip_loss: ClipLoss) -> None:
        """Three-step matching per decoder layer (track queries -> their identity's target, FP
        or vanished ones -> background, Hungarian on the object queries for the rest), losses
        normalised by the number of current targets."""
        layers = logits.shape[0]
        supervised = range(layers) if self.cfg.detector.aux_loss else [layers - 1]
        losses = {}
        for layer in supervised:
            gt_idx = self.assign(track_ids, logits[layer].detach(), boxes[layer].detach(), target)
            prefix = "" if layer == layers - 1 else f"aux{layer}/"
            for k, v in self.layer_losses(logits[layer], boxes[layer], gt_idx, target).items():
                losses[prefix + k] = v
        clip_loss.add(losses, len(target["ids"]))

    def assign(self, track_ids: Tensor, logits: Tensor, boxes: Tensor, target: dict) -> Tensor:
        """(N,) target index per row (-1: background) of one layer: the first len(track_ids)
        rows are track queries (id -1: false positive), the rest object queries."""
        n = len(track_ids)
        ids = torch.cat((track_ids, track_ids.new_full((logits.shape[0] - n,), -1)))
        candidates = torch.arange(len(ids), device=ids.device) >= n
        return match_tracklets(ids, candidates, logits, boxes, target, self.matcher).gt_idx

    def sample_track_queries(self, prev_out: list, prev_targets: list[dict], targets: list[dict]) -> list:
        """Per sample (ids, embeddings, boxes) of the track queries made from the previous frame
        (official `add_track_queries_to_targets`): one number of kept matches for the batch,
        uniform in [0, min matches]; a random subset of that size (false negatives); up to
        ceil(fp_prob * kept) unmatched outputs added as false positives (id -1). A kept track
        whose identity is gone from the current frame keeps its id and finds no target."""
        matches = [self.matcher(lg[-1].detach(), bx[-1].detach(), t["labels"], t["boxes"]) if len(t["ids"]) else
                   (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
                   for (lg, bx, _), t in zip(prev_out, prev_targets)]
        m = min(len(q) for q, _ in matches)
        n_keep = int(torch.randint(0, m + 1, (1,))) if m else 0
        n_fp = int(torch.randint(int(math.ceil(self.cfg.track_query_false_positive_prob * n_keep)) + 1, (1,))) \
            if n_keep else 0
        out = []
        for (lg, bx, hs), (qi, ti), pt, t in zip(prev_out, matches, prev_targets, targets):
            qi, ti = qi.to(hs.device), ti.to(hs.device)
            if self.cfg.track_query_false_negative_prob:
                subset = torch.randperm(len(qi), device=hs.device)[:n_keep]
                qi, ti = qi[subset], ti[subset]
            ids = pt["ids"][ti]
            present = (ids[:, None] == t["ids"][None]).any(1)
            fps = self._false_positives(bx[-1].detach(), qi, qi[present], n_keep, n_fp)
            rows = torch.cat((qi, fps))
            ids = torch.cat((ids, ids.new_full((len(fps),), -1)))
            out.append((ids, hs[rows].detach(), bx[-1, rows].detach()))
        return out

    @staticmethod
    def _false_positives(boxes: Tensor, kept: Tensor, kept_present: Tensor, n_keep: int, n_fp: int) -> Tensor:
        """Unmatched outputs drawn as false-positive track queries, as the official code: for a
        random kept index j that addresses a kept track still present, weights = the x-distance
        of the unmatched boxes' centres to that track's box (the official `dx**2 + dx**2`),
        else uniform; each drawn output leaves the pool."""
        pool = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
        pool[kept] = False
        drawn = []
        for j in torch.randperm(n_keep)[:n_fp].tolist():
            free = torch.nonzero(pool).flatten()
            if len(free) == 0:
                break
            if j < len(kept_present):
                dx = boxes[kept_present[j], 0] - boxes[free, 0]
                w = torch.sqrt(dx ** 2 + dx ** 2)
                pick = free[torch.multinomial(w.cpu(), 1).item()] if w.sum() > 0 else free[0]
            else:
                pick = free[torch.randint(len(free), (1,)).item()]
            pool[pick] = False
            drawn.append(pick)
        return torch.stack(drawn) if drawn else kept.new_zeros(0)
