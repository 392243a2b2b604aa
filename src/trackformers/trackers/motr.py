"""MOTR (Zeng et al., ECCV 2022): end-to-end tracking with track queries on Deformable DETR.

Every frame the decoder sees the learned detect queries followed by the track queries of the
previous frame (`TrackState` rows), with an extra self-attention among the track queries in
each decoder layer. After the frame:
- training: tracklet-aware assignment (tracks keep their identity's target; new objects are
  Hungarian-matched to the rows without an id) and the frame's losses, summed over the clip
  and divided once by the clip's number of objects (collective average loss);
- inference: births (score >= score_thresh), misses (score < filter_score_thresh) and deaths
  (after miss_tolerance misses), then the result filter (score > prob_threshold, pixel area >
  area_threshold);
then the query interaction module turns the surviving rows into next frame's track queries.
`step` is the per-frame forward shared by both; `training_loss` and `track` wrap it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from trackformers.models.deformable_transformer import (DeformableTransformerDecoder,
                                                        DeformableTransformerDecoderLayer, EncoderOutput, with_pos)
from trackformers.models.criterion import LossConfig, build_criterion
from trackformers.models.detector import DeformableDETR, DetectorConfig
from trackformers.trackers.base import (ClipLoss, FrameOutput, InputConfig, QueryTracker, TrackState,
                                        match_tracklets, report_mask, runtime_update)
from trackformers.trackers.qim import QueryInteraction, select_tracks


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
    grad_checkpointing: bool = False # recompute backbone + encoder in backward to save memory
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
# The model
# ---------------------------------------------------------------------------------------
class MOTR(QueryTracker):
    """Deformable DETR (+ box refinement) with track queries, QIM and the MOTR runtime."""

    Config = MOTRConfig
    first_id = 0  # ids count from 0; result files show id + 1, as the official writer

    def __init__(self, cfg: MOTRConfig):
        super().__init__()
        if cfg.detector.two_stage:
            raise ValueError("MOTR uses single-stage queries: detector.two_stage must be false")
        self.cfg = cfg
        self.size_divisibility = cfg.size_divisibility
        self.detector = DeformableDETR(cfg.detector)
        if cfg.extra_track_attn:
            self.detector.transformer.decoder = _track_attention_decoder(cfg.detector)
            self.detector.transformer.reset_parameters()
        d = cfg.detector
        self.qim = QueryInteraction(d.hidden_dim, cfg.qim.hidden_dim, d.nheads, cfg.qim.dropout,
                                    cfg.qim.update_query_pos, d.inverse_sigmoid_eps)
        self.criterion = build_criterion(d.num_classes, cfg.loss)

    # -- state ------------------------------------------------------------------------
    def new_state(self) -> TrackState:
        """No tracks: the start of a sequence."""
        d = self.cfg.detector
        w = self.detector.query_embed.weight
        return TrackState.empty(2 * d.hidden_dim, 2, d.hidden_dim, d.num_classes, device=w.device, dtype=w.dtype)

    def detect_rows(self, next_id: int = 0) -> TrackState:
        """The learned detect queries as fresh rows; references are logits (as track refs)."""
        d = self.cfg.detector
        queries = self.detector.query_embed.weight
        refs = self.detector.transformer.reference_points(queries[:, :d.hidden_dim])
        return TrackState.new_rows(queries, refs, d.hidden_dim, d.num_classes, next_id=next_id)

    # -- the per-frame step (QueryTracker.step) decodes each sequence with this ----------
    def decode(self, rows: TrackState, enc: EncoderOutput, b: int) -> FrameOutput:
        """Decode detect + track rows of sequence `b` on its encoder output: the queries'
        positional/content halves, references from the stored logits (sigmoid here)."""
        d = self.cfg.detector
        pos, tgt = rows.queries.split(d.hidden_dim, dim=1)
        ref = rows.refs.sigmoid()[None]
        hs, inter = self.detector.transformer.decoder(
            tgt[None], ref, enc.memory[b:b + 1], enc.spatial_shapes, enc.level_start_index,
            enc.valid_ratios[b:b + 1], pos[None], enc.padding_mask[b:b + 1],
            bbox_embed=self.detector.bbox_embed if d.with_box_refine else None)
        logits, boxes = self.detector.predict(hs, ref, inter)
        logits, boxes = logits[:, 0], boxes[:, 0]
        # The score the runtime thresholds compare: the best class (the original takes class 0
        # at inference, the same thing for its single-class models).
        rows = rows.replace(logits=logits[-1], boxes=boxes[-1], embeds=hs[-1, 0],
                            scores=logits[-1].detach().sigmoid().max(-1).values)
        return FrameOutput(rows, logits, boxes)

    def next_state(self, rows: TrackState) -> TrackState:
        """The query interaction module: the selected rows with updated queries and references."""
        q = self.cfg.qim
        keep = select_tracks(rows, self.training, q.random_drop, q.fp_ratio, q.iou_gate)
        tracks = rows[keep]
        queries, refs = self.qim(tracks.queries, tracks.embeds, tracks.boxes)
        return tracks.replace(queries=queries, refs=refs)

    # -- inference ------------------------------------------------------------------------
    def lifecycle(self, rows: TrackState) -> TrackState:
        """Births, misses and deaths of one frame (official RuntimeTrackerBase)."""
        c = self.cfg
        return runtime_update(rows, c.score_thresh, c.score_thresh, c.filter_score_thresh, c.miss_tolerance,
                              birth_nms_iou=c.birth_nms_iou)

    def report(self, rows: TrackState, image_size: tuple[int, int]) -> dict[str, Tensor]:
        """The tracks to report this frame (score and pixel-area filter), as a result dict."""
        keep = report_mask(rows, self.cfg.prob_threshold, self.cfg.area_threshold, image_size)
        r = rows[keep]
        return {"ids": r.ids, "boxes": r.boxes, "scores": r.scores, "labels": r.logits.argmax(-1)}

    @torch.no_grad()
    def track_frame(self, image: Tensor, state: TrackState, orig_size: tuple[int, int] | None = None
                    ) -> tuple[dict[str, Tensor], TrackState, FrameOutput]:
        """`track` plus the frame's decoder output (all rows, before the runtime update)."""
        out = self.step(image[None], None, [state])[0]
        rows = self.lifecycle(out.rows)
        nxt = self.next_state(rows)
        # Reported: the surviving tracks in QIM order, this frame's boxes and scores.
        result = self.report(nxt, orig_size or tuple(image.shape[-2:]))
        return result, nxt, out

    # -- training -------------------------------------------------------------------------
    def supervise(self, out: FrameOutput, target: dict, clip_loss: ClipLoss) -> TrackState:
        """Assign targets to one frame's rows, add its losses; returns the rows with ids, target
        indices and IoUs for the query interaction module."""
        rows = out.rows
        candidates = rows.ids == -1
        layers = out.logits.shape[0]
        final = match_tracklets(rows.ids, candidates, out.logits[-1].detach(), out.boxes[-1].detach(),
                                target, self.matcher)
        losses = {}
        supervised = range(layers) if self.cfg.detector.aux_loss else [layers - 1]
        for layer in supervised:
            a = final if layer == layers - 1 else match_tracklets(
                rows.ids, candidates, out.logits[layer].detach(), out.boxes[layer].detach(), target, self.matcher)
            prefix = "" if layer == layers - 1 else f"aux{layer}/"
            for k, v in self.layer_losses(out.logits[layer], out.boxes[layer], a.gt_idx, target).items():
                losses[prefix + k] = v
        clip_loss.add(losses, len(target["ids"]) + final.num_disappeared)
        # IoU of every assigned track with its target (the QIM's gate); others keep their last.
        iou = self.target_iou(rows, final.gt_idx, target, (final.ids >= 0) & (final.gt_idx >= 0))
        return rows.replace(ids=final.ids, gt_idx=final.gt_idx, iou=iou)

    def training_tracks(self, out: FrameOutput, rows: TrackState) -> TrackState:
        """Next frame's track rows in training: the QIM's selection (IoU gate, random drop,
        false positives) and update."""
        return self.next_state(rows)
