"""MeMOTR (Gao & Wang, ICCV 2023): track queries with long-term memory.

What MeMOTR adds to the shared frame loop (query_tracker.py) and detector core (models/):
- its decoder split: the first `detect_only_layers` decoder layers see the detect queries
  only ("detection decoder"); the rest see detect and track queries together;
- its query updater, the Temporal Interaction Module (`QueryUpdater`): confidence-weighted
  aggregation of this and the last confident output, attention across the frame's tracks
  against their long-term memory, and an EMA long-term memory; all gated by the track score;
- its runtime thresholds (birth / keep-alive / update / result) and its newborn
  initialisation from the penultimate decoder layer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trackformers.config import to_dict
from trackformers.models.criterion import LossConfig, build_criterion
from trackformers.models.dab import AnchorQueryPos, DABDecoder, DABDeformableDETR, DABDetectorConfig, anchor_sine_embed
from trackformers.models.deformable_transformer import DeformableTransformerDecoderLayer
from trackformers.models.detector import DeformableDETR, DetectorConfig
from trackformers.models.heads import FFN, MLP
from trackformers.ops.box_ops import inverse_sigmoid
from trackformers.trackers import lifecycle
from trackformers.trackers.assignment import insert_false_positives
from trackformers.trackers.query_tracker import FrameOutput, QueryTracker
from trackformers.trackers.state import TrackState
from trackformers.trackers.tracker import InputConfig, Result


class QueryUpdater(nn.Module):
    """The Temporal Interaction Module: this frame's outputs -> next frame's track queries.

    For the K tracks of one video (all tensors have first dimension K), with O the last
    decoder layer's output, O_last the output of the last confident frame and M the long-term
    memory:
        w  = sigmoid(confidence_weight(O))                   channel-wise confidence
        S  = short_memory_fusion([w * O, O_last])            adaptive aggregation
        p  = query_pos_head(sine(box))                       position of the track
        A  = MHA(q = S + p, k = M + p, v = O)                attention across the K tracks
        E' = query_feat_ffn(LN(M + memory_ffn(LN(O + A))))   next content query
        M' = (1 - lambda) M + lambda O                       long-term memory EMA
    Only tracks with score > `update_thresh` take E', M', O_last' = O and the new reference
    box; the others keep query, box and memories (occluded tracks are frozen). In the
    Deformable-DETR variant (`learned_query_pos`), the query also carries a learned positional
    half updated by `norm_pos(P + linear_pos2(relu(linear_pos1(O))))`.
    """

    def __init__(self, d_model: int = 256, d_ffn: int = 2048, n_heads: int = 8, dropout: float = 0.0,
                 update_thresh: float = 0.5, memory_lambda: float = 0.01, learned_query_pos: bool = False,
                 eps: float = 1e-5):
        super().__init__()
        self.d_model, self.update_thresh, self.memory_lambda, self.eps = d_model, update_thresh, memory_lambda, eps
        self.learned_query_pos = learned_query_pos
        self.confidence_weight = MLP(d_model, d_model, d_model, 2)
        self.short_memory_fusion = MLP(2 * d_model, 2 * d_model, d_model, 2)
        self.memory_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.memory_norm = nn.LayerNorm(d_model)
        self.memory_ffn = FFN(d_model, d_ffn, dropout)
        self.query_feat_norm = nn.LayerNorm(d_model)
        self.query_feat_ffn = FFN(d_model, d_ffn, dropout)
        self.query_pos_head = MLP(2 * d_model, d_model, d_model, 2)
        self.dropout = nn.Dropout(dropout)
        if learned_query_pos:
            self.linear_pos1 = nn.Linear(d_model, d_model)
            self.linear_pos2 = nn.Linear(d_model, d_model)
            self.norm_pos = nn.LayerNorm(d_model)
        for p in self.parameters():  # official init
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, scores: Tensor, boxes: Tensor, ref_pts: Tensor, query_embed: Tensor,
                output_embed: Tensor, last_output: Tensor, long_memory: Tensor) -> dict[str, Tensor]:
        """One video's tracks -> their updated `ref_pts`, `query_embed`, `last_output`, `long_memory`.

        scores (K,) max class probability; boxes (K, 4) this frame's boxes; ref_pts (K, 4) logit
        boxes; query_embed (K, C) or (K, 2C) with a learned positional half first.
        """
        if len(scores) == 0:
            return dict(ref_pts=ref_pts, query_embed=query_embed, last_output=last_output, long_memory=long_memory)
        keep = (scores > self.update_thresh)[:, None]
        ref_pts = torch.where(keep, inverse_sigmoid(boxes.detach(), self.eps), ref_pts)
        memory = long_memory.detach()

        pos = self.query_pos_head(anchor_sine_embed(ref_pts.sigmoid(), self.d_model // 2))
        weight = self.confidence_weight(output_embed).sigmoid()
        short_memory = self.short_memory_fusion(torch.cat((weight * output_embed, last_output), dim=-1))
        attn = self.memory_attn((short_memory + pos)[None], (memory + pos)[None], output_embed[None],
                                need_weights=False)[0][0]
        x = self.memory_ffn(self.memory_norm(output_embed + self.dropout(attn)))
        content = self.query_feat_ffn(self.query_feat_norm(memory + self.dropout(x)))

        new_memory = (1 - self.memory_lambda) * memory + self.memory_lambda * output_embed
        if self.learned_query_pos:
            old_pos, old_content = query_embed.split(self.d_model, dim=-1)
            new_pos = self.norm_pos(old_pos + self.linear_pos2(F.relu(self.linear_pos1(output_embed))))
            query = torch.cat((new_pos, content), dim=-1)
        else:
            query = content
        return dict(ref_pts=ref_pts,
                    query_embed=torch.where(keep, query, query_embed),
                    last_output=torch.where(keep, output_embed, last_output),
                    long_memory=torch.where(keep, new_memory, long_memory))


# ---------------------------------------------------------------------------------------
# Configuration (defaults: the official DanceTrack DAB config, configs/train_dancetrack.yaml)
# ---------------------------------------------------------------------------------------
def _memotr_detector() -> DetectorConfig:
    # The MeMOTR checkpoints were fine-tuned with image position temperature 20 (not 10000).
    return DetectorConfig(num_classes=1, with_box_refine=True, dropout=0.0, dim_feedforward=2048,
                          num_queries=300, pos_temperature=20.0)


@dataclass
class MeMOTRConfig:
    detector: DetectorConfig = field(default_factory=_memotr_detector)
    use_dab: bool = True               # DAB anchor-box queries (False: Deformable DETR queries)
    detect_only_layers: int = 1        # decoder layers that see detect queries only (MERGE_DET_TRACK_LAYER)
    anchor_sine_order: str = "xywh"    # coordinate order of the anchor sine embedding (DAB-DETR: yxwh)
    anchor_temperature: float = 10000.0
    update_thresh: float = 0.5         # a track updates query / box / memories only above this score
    memory_lambda: float = 0.01        # long-term memory EMA: M <- (1 - lambda) M + lambda O
    train_iou_thresh: float = 0.5      # training: a propagated track whose IoU is below loses its id
    tp_drop_rate: float = 0.0          # training: drop each true track with this probability (TP_DROP_RATE)
    fp_insert_rate: float = 0.0        # training: per track, insert the unmatched detection overlapping it most
    loss: LossConfig = field(default_factory=LossConfig)
    input: InputConfig = field(default_factory=InputConfig)
    # runtime (official RuntimeTracker + Submitter filters)
    det_score_thresh: float = 0.5      # birth: detect query with max score >= this
    track_score_thresh: float = 0.5    # a track whose own-label score is below is missed
    result_score_thresh: float = 0.5   # report tracks with max score > this
    miss_tolerance: int = 30           # a track dies after this many consecutive misses
    birth_nms_iou: float = 1.0         # no birth overlapping a seen track this much (1.0: off, as the original)
    area_threshold: float = 100.0      # report boxes with area > this (original-image pixels)
    size_divisibility: int = 32        # zero-pad images to a multiple of this (mask on padding), as the original
    grad_checkpointing: bool = False   # recompute backbone + encoder and decoder layers in backward


# ---------------------------------------------------------------------------------------
# The decoder split: detection-only layers first, joint layers after
# ---------------------------------------------------------------------------------------
class SplitDecoderLayer(DeformableTransformerDecoderLayer):
    """A decoder layer that, when `num_detect` > 0, runs on the first `num_detect` queries only
    (the detect queries) and passes the rest (track queries) through unchanged; with
    `point_references` those detect queries sample around 2-d points (Deformable DETR's first
    layer) instead of boxes."""

    num_detect: int = 0
    point_references: bool = False

    def forward(self, tgt: Tensor, query_pos: Tensor | None, reference_points: Tensor, memory: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor, memory_padding_mask: Tensor | None = None,
                self_attn_mask: Tensor | None = None, query_padding_mask: Tensor | None = None) -> Tensor:
        n = self.num_detect
        if n <= 0:
            return super().forward(tgt, query_pos, reference_points, memory, spatial_shapes, level_start_index,
                                   memory_padding_mask, self_attn_mask, query_padding_mask)
        refs = reference_points[:, :n, :, :2] if self.point_references else reference_points[:, :n]
        det = super().forward(tgt[:, :n], None if query_pos is None else query_pos[:, :n], refs, memory,
                              spatial_shapes, level_start_index, memory_padding_mask,
                              None if self_attn_mask is None else self_attn_mask[..., :n, :n],
                              None if query_padding_mask is None else query_padding_mask[:, :n])
        return torch.cat((det, tgt[:, n:]), 1)


class MeMOTRDecoder(DABDecoder):
    """Detection decoder (first `detect_only_layers` layers, detect queries only, whose track
    references are not refined) followed by the joint decoder."""

    def __init__(self, cfg: MeMOTRConfig):
        d = cfg.detector
        layer = SplitDecoderLayer(d.hidden_dim, d.dim_feedforward, d.dropout, d.activation,
                                  d.num_feature_levels, d.nheads, d.dec_n_points, d.offset_normalizer_hw)
        anchor_pos = AnchorQueryPos(d.hidden_dim, cfg.anchor_temperature, cfg.anchor_sine_order) if cfg.use_dab else None
        super().__init__(layer, d.dec_layers, d.inverse_sigmoid_eps, anchor_pos)
        self.num_detect = d.num_queries
        self.detect_only_layers = cfg.detect_only_layers
        for lid in range(cfg.detect_only_layers):
            self.layers[lid].num_detect = d.num_queries
            self.layers[lid].point_references = lid == 0 and not cfg.use_dab

    def next_references(self, lid: int, refined: Tensor, reference_points: Tensor) -> Tensor:
        if lid >= self.detect_only_layers:
            return refined.detach()
        n = self.num_detect
        return torch.cat((refined[:, :n].detach(), reference_points[:, n:]), 1)


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------
class MeMOTR(QueryTracker):
    """DAB- (or plain) Deformable DETR with MeMOTR's decoder split, memory-based query updater
    and runtime. Track rows carry in `memory`: `last_output` (C), `long_memory` (C) and
    `labels` (the class fixed at birth)."""

    Config = MeMOTRConfig
    count_disappeared = False  # MeMOTR normalises by the clip's number of targets only
    pad_at_inference = True    # the original's loader pads every frame to a multiple of 32

    def __init__(self, cfg: MeMOTRConfig):
        super().__init__()
        d = cfg.detector
        if d.two_stage or not d.with_box_refine:
            raise ValueError("MeMOTR uses single-stage queries with box refinement: set detector.two_stage=false, "
                             "detector.with_box_refine=true")
        if not 0 <= cfg.detect_only_layers < d.dec_layers:
            raise ValueError(f"detect_only_layers must be in [0, {d.dec_layers}), got {cfg.detect_only_layers}")
        self.cfg = cfg
        self.detect_only_layers = cfg.detect_only_layers
        if cfg.use_dab:  # DAB-Deformable-DETR: tgt_embed (Q, C) + refpoint_embed (Q, 4) detect queries
            dab = DABDetectorConfig(**to_dict(d), anchor_sine_order=cfg.anchor_sine_order,
                                    anchor_temperature=cfg.anchor_temperature)
            self.detector = DABDeformableDETR(dab, decoder=MeMOTRDecoder(cfg))
        else:  # Deformable DETR: query_embed (Q, 2C), 2-d reference points from its positional half
            self.detector = DeformableDETR(d, decoder=MeMOTRDecoder(cfg))
        self.query_updater = QueryUpdater(d.hidden_dim, d.dim_feedforward, d.nheads, d.dropout, cfg.update_thresh,
                                          cfg.memory_lambda, learned_query_pos=not cfg.use_dab,
                                          eps=d.inverse_sigmoid_eps)
        self.criterion = build_criterion(d.num_classes, cfg.loss)

    @property
    def rules(self) -> lifecycle.Rules:
        """The official RuntimeTracker: birth at det_score_thresh; a track below
        track_score_thresh is missed (at or above it, its misses reset); death after miss_tolerance."""
        c = self.cfg
        return lifecycle.Rules(c.det_score_thresh, c.track_score_thresh, c.track_score_thresh, c.miss_tolerance,
                               c.birth_nms_iou)

    # -- rows -----------------------------------------------------------------------------
    def _memory(self, n: int, like: Tensor) -> dict[str, Tensor]:
        C = self.cfg.detector.hidden_dim
        return {"last_output": like.new_zeros(n, C), "long_memory": like.new_zeros(n, C),
                "labels": torch.zeros(n, dtype=torch.long, device=like.device)}

    def detect_rows(self) -> TrackState:
        """The detector's queries as fresh rows with logit-space 4-d references."""
        d, det = self.cfg.detector, self.detector
        if self.cfg.use_dab:
            queries, refs = det.tgt_embed.weight, det.refpoint_embed.weight
        else:  # a learned 2-d point; w, h at logit 0 (0.5), unused by the point-sampling first layer
            queries = det.query_embed.weight
            xy = det.transformer.reference_points(queries[:, :d.hidden_dim])
            refs = torch.cat((xy, torch.zeros_like(xy)), 1)
        return TrackState.new_rows(queries, refs, d.hidden_dim, d.num_classes, self._memory(len(queries), queries))

    def is_detect(self, rows: TrackState) -> Tensor:
        """(n,) bool: the detect rows (they come first)."""
        return torch.arange(len(rows), device=rows.ids.device) < self.cfg.detector.num_queries

    candidates = is_detect  # training: only detect rows take new objects

    def newborn(self, out: FrameOutput, rows: Tensor) -> TrackState:
        """Rows (indices into out.rows) initialised as new tracks, as the original: content query
        = input of the last decoder layer, reference = the box the last layer started from,
        last output = this output, long-term memory = the content query."""
        r = out.rows[rows]
        content = out.hs[-2][rows]
        queries = content if self.cfg.use_dab else torch.cat((r.queries[:, :self.cfg.detector.hidden_dim], content), 1)
        memory = {"last_output": r.embeds, "long_memory": content, "labels": r.logits.detach().argmax(-1)}
        refs = inverse_sigmoid(out.inter[-2][rows], self.cfg.detector.inverse_sigmoid_eps)
        return r.replace(queries=queries, refs=refs, memory=memory)

    def next_state(self, tracks: TrackState) -> TrackState:
        """The query updater on one sequence's tracks (training and inference alike)."""
        m = tracks.memory
        upd = self.query_updater(tracks.logits.detach().sigmoid().max(-1).values, tracks.boxes, tracks.refs,
                                 tracks.queries, tracks.embeds, m["last_output"], m["long_memory"])
        memory = dict(m, last_output=upd["last_output"], long_memory=upd["long_memory"])
        return tracks.replace(queries=upd["query_embed"], refs=upd["ref_pts"], memory=memory)

    # -- inference ------------------------------------------------------------------------
    def lifecycle(self, out: FrameOutput) -> TrackState:
        """Births, misses and deaths of one frame (official RuntimeTracker); returns the live
        tracks in the official order: surviving tracks, then newborns in detect-query order.
        A detect row is judged on its best class, a track on the class it was born with."""
        rows, is_det = out.rows, self.is_detect(out.rows)
        prob = rows.logits.sigmoid()
        own = prob.gather(1, rows.memory["labels"][:, None])[:, 0]
        rows = rows.replace(scores=torch.where(is_det, prob.max(-1).values, own))
        rows = lifecycle.update(rows, self.rules, candidates=is_det)
        born = torch.nonzero(is_det & (rows.ids >= 0)).flatten()
        kept = torch.nonzero(~is_det & (rows.ids >= 0)).flatten()
        babies = self.newborn(dataclasses.replace(out, rows=rows), born)
        return TrackState.cat([rows[kept], babies])

    def report(self, tracks: TrackState, image_size: tuple[int, int]) -> Result:
        """The tracks to report this frame: max score > result_score_thresh, pixel area > area_threshold."""
        scores = tracks.logits.sigmoid().max(-1).values
        keep = lifecycle.report_mask(tracks.replace(scores=scores), self.cfg.result_score_thresh,
                                     self.cfg.area_threshold, image_size)
        return {"ids": tracks.ids[keep], "boxes": tracks.boxes[keep], "scores": scores[keep],
                "labels": tracks.memory["labels"][keep]}

    # -- training -------------------------------------------------------------------------
    def layer_losses(self, logits: Tensor, boxes: Tensor, gt_idx: Tensor, target: dict) -> dict[str, Tensor]:
        losses = super().layer_losses(logits, boxes, gt_idx, target)
        # MeMOTR averages the focal loss over the classes (Deformable DETR sums): the same for
        # one class, 8x smaller on BDD100K.
        losses["loss_ce"] = losses["loss_ce"] / logits.shape[-1]
        return losses

    def training_tracks(self, out: FrameOutput, rows: TrackState) -> TrackState:
        """Training: next frame's tracks (official QueryUpdater.select_active_tracks, no TP drop /
        FP insertion) with their queries updated: previous tracks, then matched detect rows as
        newborns, then unmatched detect rows (id -1, reference = their anchor); kept if confident
        or assigned; a kept row whose box overlaps its target less than `train_iou_thresh` loses
        its id (it is background next frame)."""
        c, n_det = self.cfg, self.cfg.detector.num_queries
        det = torch.arange(n_det, device=rows.ids.device)
        matched = rows.ids[:n_det] >= 0
        frame = dataclasses.replace(out, rows=rows)
        unmatched = self.newborn(frame, det[~matched])
        unmatched = unmatched.replace(refs=rows.refs[:n_det][~matched])
        tracks = TrackState.cat([rows[n_det:], self.newborn(frame, det[matched])])
        if c.tp_drop_rate > 0 or c.fp_insert_rate > 0:
            return self.next_state(self.augmented_tracks(tracks, unmatched))
        tracks = TrackState.cat([tracks, unmatched])
        scores = tracks.logits.detach().sigmoid().max(-1).values
        tracks = tracks[(scores > c.update_thresh) | (tracks.ids >= 0)]
        ids = torch.where(tracks.iou < c.train_iou_thresh, torch.full_like(tracks.ids, -1), tracks.ids)
        return self.next_state(tracks.replace(ids=ids))

    def augmented_tracks(self, tracks: TrackState, unmatched: TrackState) -> TrackState:
        """The original's other selection (TP_DROP_RATE / FP_INSERT_RATE > 0): well-localised
        tracks with an id, each dropped with probability `tp_drop_rate`, then false positives:
        for each kept track picked with probability `fp_insert_rate`, the unmatched detection
        overlapping it most (all of them when there are fewer than picks)."""
        c = self.cfg
        tracks = tracks[(tracks.iou > c.train_iou_thresh) & (tracks.ids >= 0)]
        if c.tp_drop_rate > 0:
            tracks = tracks[torch.rand(len(tracks), device=tracks.ids.device) > c.tp_drop_rate]
        frame = TrackState.cat([tracks, unmatched])
        kept = torch.arange(len(tracks), device=tracks.ids.device)
        fp = insert_false_positives(frame, kept, c.fp_insert_rate) if c.fp_insert_rate > 0 else kept[:0]
        return frame[torch.cat((kept, fp))]
