"""MOTR (Zeng et al., ECCV 2022): end-to-end tracking with track queries on Deformable DETR.

What MOTR adds to the shared frame loop (query_tracker.py):
- an extra self-attention among the track queries in each decoder layer (`--extra_track_attn`);
- the query interaction module (QIM, section 3.4): which rows become next frame's track
  queries (`select_tracks`: in training only tracks overlapping their target, randomly dropped,
  plus inserted false positives) and how their queries are updated (`QueryInteraction`, the
  temporal aggregation network);
- its runtime (RuntimeTrackerBase + the submit script's filter): births (score >=
  score_thresh), misses (score < filter_score_thresh), deaths after miss_tolerance misses, and
  the result filter (score > prob_threshold, pixel area > area_threshold).
Training uses the shared tracklet-aware assignment and collective average loss (section 3.3).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from trackformers.models.criterion import LossConfig, build_criterion
from trackformers.models.deformable_transformer import (DeformableTransformerDecoder,
                                                        DeformableTransformerDecoderLayer, with_pos)
from trackformers.models.detector import DeformableDETR, DetectorConfig
from trackformers.ops.box_ops import inverse_sigmoid
from trackformers.trackers import lifecycle
from trackformers.trackers.assignment import insert_false_positives
from trackformers.trackers.query_tracker import FrameOutput, QueryTracker
from trackformers.trackers.state import TrackState
from trackformers.trackers.tracker import InputConfig, Result


# ---------------------------------------------------------------------------------------
# Configuration (defaults: the official DanceTrack / MOT17 configs)
# ---------------------------------------------------------------------------------------
def _motr_detector() -> DetectorConfig:
    return DetectorConfig(num_classes=1, with_box_refine=True, dropout=0.0, dim_feedforward=1024, num_queries=300)


@dataclass
class QIMConfig:
    """Query interaction module: TAN update and the training-time track augmentation."""
    hidden_dim: int = 1024          # FFN width of the TAN (official: dim_feedforward)
    dropout: float = 0.0            # merger_dropout
    update_query_pos: bool = True
    random_drop: float = 0.1        # training: drop each track query with this probability
    fp_ratio: float = 0.3           # training: insert a false-positive query per track with this probability
    iou_gate: float = 0.5           # training: only tracks whose box overlaps their target more propagate


@dataclass
class MOTRConfig:
    detector: DetectorConfig = field(default_factory=_motr_detector)
    extra_track_attn: bool = True   # self-attention among track queries in every decoder layer
    qim: QIMConfig = field(default_factory=QIMConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    input: InputConfig = field(default_factory=InputConfig)
    # runtime (official RuntimeTrackerBase + the submit script's result filter)
    score_thresh: float = 0.7        # birth; also resets a track's miss counter
    filter_score_thresh: float = 0.6 # a track below this is missed
    miss_tolerance: int = 5          # misses until a track dies
    birth_nms_iou: float = 1.0       # no birth overlapping a seen track this much (1.0: off, as the original)
    prob_threshold: float = 0.7      # report tracks with score > this
    area_threshold: float = 100.0    # ... and box area > this (original-image pixels)
    grad_checkpointing: bool = False # recompute backbone + encoder and decoder in backward to save memory
    # Batched training frames are zero-padded (mask on padding) to a multiple of this. MOTR pads
    # to the largest frame only (1); on CPU a multiple like 64 keeps the set of tensor shapes
    # small, and oneDNN then reuses its kernels: training steps run ~15x faster.
    size_divisibility: int = 1


# ---------------------------------------------------------------------------------------
# Decoder layer with the extra track self-attention
# ---------------------------------------------------------------------------------------
class TrackAttentionDecoderLayer(DeformableTransformerDecoderLayer):
    """A Deformable DETR decoder layer whose self-attention step is preceded by a self-attention
    among the track queries only (the rows after the first `num_detect`), as MOTR's
    `--extra_track_attn` (`update_attn`, `norm4`; the original hard-codes num_detect = 300)."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, activation: str, n_levels: int, n_heads: int,
                 n_points: int, num_detect: int):
        super().__init__(d_model, d_ffn, dropout, activation, n_levels, n_heads, n_points)
        self.num_detect = num_detect
        self.update_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.dropout5 = nn.Dropout(dropout)
        self.norm4 = nn.LayerNorm(d_model)

    def self_attention(self, tgt: Tensor, query_pos: Tensor | None, attn_mask: Tensor | None = None,
                       key_padding_mask: Tensor | None = None) -> Tensor:
        n = self.num_detect
        if tgt.shape[1] > n:
            track, track_pos = tgt[:, n:], None if query_pos is None else query_pos[:, n:]
            q = with_pos(track, track_pos)
            track2 = self.update_attn(q, q, track, need_weights=False)[0]
            tgt = torch.cat((tgt[:, :n], self.norm4(track + self.dropout5(track2))), 1)
        return super().self_attention(tgt, query_pos, attn_mask, key_padding_mask)


def _track_attention_decoder(cfg: DetectorConfig) -> DeformableTransformerDecoder:
    layer = TrackAttentionDecoderLayer(cfg.hidden_dim, cfg.dim_feedforward, cfg.dropout, cfg.activation,
                                       cfg.num_feature_levels, cfg.nheads, cfg.dec_n_points, cfg.num_queries)
    return DeformableTransformerDecoder(layer, cfg.dec_layers, cfg.inverse_sigmoid_eps)


# ---------------------------------------------------------------------------------------
# The query interaction module
# ---------------------------------------------------------------------------------------
class QueryInteraction(nn.Module):
    """The TAN update of track queries. Parameter names as the official `track_embed`
    (its unused `norm3` is not created; the converter drops it)."""

    def __init__(self, dim: int = 256, hidden_dim: int = 1024, nheads: int = 8, dropout: float = 0.0,
                 update_query_pos: bool = True, inverse_sigmoid_eps: float = 1e-5):
        super().__init__()
        self.update_query_pos = update_query_pos
        self.inverse_sigmoid_eps = inverse_sigmoid_eps
        self.self_attn = nn.MultiheadAttention(dim, nheads, dropout)
        self.linear1 = nn.Linear(dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        if update_query_pos:
            self.linear_pos1 = nn.Linear(dim, hidden_dim)
            self.linear_pos2 = nn.Linear(hidden_dim, dim)
            self.dropout_pos1, self.dropout_pos2 = nn.Dropout(dropout), nn.Dropout(dropout)
            self.norm_pos = nn.LayerNorm(dim)
        self.linear_feat1 = nn.Linear(dim, hidden_dim)
        self.linear_feat2 = nn.Linear(hidden_dim, dim)
        self.dropout_feat1, self.dropout_feat2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_feat = nn.LayerNorm(dim)
        for p in self.parameters():  # as the original: Xavier for every matrix
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, queries: Tensor, embeds: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """queries (n, 2C) [positional | content], embeds (n, C), boxes (n, 4) cxcywh
        -> (next queries (n, 2C), next 2-d reference logits (n, 2))."""
        refs = inverse_sigmoid(boxes[:, :2].detach(), self.inverse_sigmoid_eps)
        if len(queries) == 0:
            return queries, refs
        pos, feat = queries.chunk(2, dim=1)
        q = (pos + embeds)[:, None]  # (n, 1, C): the tracks of one frame are the sequence
        attn = self.self_attn(q, q, embeds[:, None], need_weights=False)[0][:, 0]
        t = self.norm1(embeds + self.dropout1(attn))
        t = self.norm2(t + self.dropout2(self.linear2(self.dropout(torch.relu(self.linear1(t))))))
        if self.update_query_pos:
            pos = self.norm_pos(pos + self.dropout_pos2(self.linear_pos2(self.dropout_pos1(torch.relu(self.linear_pos1(t))))))
        feat = self.norm_feat(feat + self.dropout_feat2(self.linear_feat2(self.dropout_feat1(torch.relu(self.linear_feat1(t))))))
        return torch.cat((pos, feat), dim=1), refs


def select_tracks(frame: TrackState, random_drop: float = 0.0, fp_ratio: float = 0.0,
                  iou_gate: float = 0.5) -> Tensor:
    """Training: indices of the rows of this frame that become next frame's track queries, in
    order: the tracks overlapping their target by IoU > iou_gate, each kept with probability
    1 - random_drop, in row order, then any inserted false positives (they keep id -1, so next
    frame they are again candidates for new objects or background). At inference every live
    track propagates (`MOTR.lifecycle`)."""
    keep = (frame.ids >= 0) & (frame.iou > iou_gate)
    if random_drop > 0:
        keep &= torch.rand(len(frame), device=keep.device) > random_drop
    tracks = torch.nonzero(keep).flatten()
    if fp_ratio > 0:
        tracks = torch.cat((tracks, insert_false_positives(frame, tracks, fp_ratio)))
    return tracks


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------
class MOTR(QueryTracker):
    """Deformable DETR (+ box refinement) with track queries, QIM and the MOTR runtime."""

    Config = MOTRConfig

    def __init__(self, cfg: MOTRConfig):
        super().__init__()
        if cfg.detector.two_stage:
            raise ValueError("MOTR uses single-stage queries: detector.two_stage must be false")
        self.cfg = cfg
        d = cfg.detector
        self.detector = DeformableDETR(d, decoder=_track_attention_decoder(d) if cfg.extra_track_attn else None)
        self.qim = QueryInteraction(d.hidden_dim, cfg.qim.hidden_dim, d.nheads, cfg.qim.dropout,
                                    cfg.qim.update_query_pos, d.inverse_sigmoid_eps)
        self.criterion = build_criterion(d.num_classes, cfg.loss)

    @property
    def rules(self) -> lifecycle.Rules:
        """The official RuntimeTrackerBase: birth and miss reset at score_thresh, a miss below
        filter_score_thresh, death after miss_tolerance misses."""
        c = self.cfg
        return lifecycle.Rules(c.score_thresh, c.score_thresh, c.filter_score_thresh, c.miss_tolerance, c.birth_nms_iou)

    def detect_rows(self) -> TrackState:
        """The learned detect queries as fresh rows; references are logits (as track refs)."""
        d = self.cfg.detector
        queries = self.detector.query_embed.weight
        refs = self.detector.transformer.reference_points(queries[:, :d.hidden_dim])
        return TrackState.new_rows(queries, refs, d.hidden_dim, d.num_classes)

    def next_state(self, tracks: TrackState) -> TrackState:
        """The query interaction module's update of the selected rows' queries and references."""
        queries, refs = self.qim(tracks.queries, tracks.embeds, tracks.boxes)
        return tracks.replace(queries=queries, refs=refs)

    # -- inference ------------------------------------------------------------------------
    def lifecycle(self, out: FrameOutput) -> TrackState:
        """Births, misses and deaths of one frame (official RuntimeTrackerBase); the live tracks
        in row order (the score the thresholds compare: the best class, which the original's
        class 0 is for its single-class models)."""
        rows = lifecycle.update(out.rows, self.rules)
        return rows[rows.ids >= 0]

    def report(self, tracks: TrackState, image_size: tuple[int, int]) -> Result:
        """The tracks to report this frame (score and pixel-area filter)."""
        keep = lifecycle.report_mask(tracks, self.cfg.prob_threshold, self.cfg.area_threshold, image_size)
        r = tracks[keep]
        return {"ids": r.ids, "boxes": r.boxes, "scores": r.scores, "labels": r.logits.argmax(-1)}

    # -- training -------------------------------------------------------------------------
    def training_tracks(self, out: FrameOutput, rows: TrackState) -> TrackState:
        """Next frame's track rows in training: the QIM's selection (IoU gate, random drop,
        false positives) and update."""
        q = self.cfg.qim
        return self.next_state(rows[select_tracks(rows, q.random_drop, q.fp_ratio, q.iou_gate)])
