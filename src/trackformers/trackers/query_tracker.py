"""The frame loop of every query-propagation tracker (MOTR, MeMOTR, Trackformer, SambaMOTR).

One step per frame for a batch of sequences, the same code in training and inference
(DESIGN.md "One tracker, two modes"): encode the frames, put each sequence's detect rows
before its track rows, decode them, then
- inference (`track_frame`): the method's runtime rules (`lifecycle`), its query update
  (`next_state`) and its result filter (`report`);
- training (`supervise`): tracklet-aware assignment and the per-layer set losses, summed over
  the clip and divided once by its number of objects (`ClipLoss`); then the method's choice of
  next frame's track rows (`training_tracks`).
A method overrides small hooks, never the loop:
    detect_rows() -> TrackState            the learned detect queries as fresh rows
    lifecycle(out) -> TrackState           inference: births / misses / deaths -> live tracks
    next_state(tracks) -> TrackState       the query update between frames (QIM, TIM, Samba)
    report(tracks, image_size) -> Result   the tracks reported this frame
    candidates(rows) -> Tensor             training: rows that may take a new object
    training_tracks(out, rows) -> TrackState   training: next frame's track rows
and may override `encode(images, masks, states)` (it sees the states: Trackformer's
multi-frame encoder needs the previous frame) or `layer_losses`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from trackformers.models.deformable_transformer import EncoderOutput
from trackformers.models.detector import pad_images
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.trackers.assignment import ClipLoss, match_tracklets
from trackformers.trackers.state import TrackState
from trackformers.trackers.tracker import Result, Tracker


@dataclass
class FrameOutput:
    """One frame of one sequence after the decoder.

    rows:   detect rows then track rows, with this frame's `logits`, `boxes`, `embeds`, `scores`
            (the best class probability).
    logits, boxes: (layers, n, K), (layers, n, 4) every decoder layer's predictions (with grad).
    hs:     (layers, n, C) every decoder layer's output.
    inter:  (layers, n, R) the references after every layer (sigmoid space).
    """
    rows: TrackState
    logits: Tensor
    boxes: Tensor
    hs: Tensor
    inter: Tensor


class QueryTracker(Tracker):
    """What is the same in every query-based tracker (see the module docstring).

    A subclass sets `cfg` (with `input`, `loss: LossConfig`, `grad_checkpointing`,
    `size_divisibility`), `detector` (a DeformableDETR-like module with `features`,
    `transformer.encode`, `transformer.decoder`, `predict`, `bbox_embed`) and `criterion`.
    """

    # Rows of the first `detect_only_layers` decoder layers are matched as if no track existed
    # (MeMOTR's detection decoder); 0: every layer sees the tracks.
    detect_only_layers: int = 0
    # Whether a track whose identity is absent from the frame counts as a sample of the clip
    # loss (MOTR's collective average loss does; MeMOTR counts the targets only).
    count_disappeared: bool = True
    # Whether a single inference frame is zero-padded to `cfg.size_divisibility` (MeMOTR's
    # loader pads every image; MOTR's inference script does not).
    pad_at_inference: bool = False

    # -- the shared per-frame step ------------------------------------------------------
    def new_state(self) -> TrackState:
        """No tracks: the start of a sequence (rows shaped like the detect rows)."""
        return self.detect_rows()[:0].detach()

    def encode(self, images: Tensor, masks: Tensor, states: list[TrackState]) -> EncoderOutput:
        """Backbone, projections and encoder (recomputed in backward with grad_checkpointing)."""
        def run(images: Tensor, masks: Tensor) -> EncoderOutput:
            srcs, level_masks, pos = self.detector.features(images, masks)
            return self.detector.transformer.encode(srcs, level_masks, pos)
        if self.cfg.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(run, images, masks, use_reentrant=False)
        return run(images, masks)

    def step(self, images: Tensor, masks: Tensor | None, states: list[TrackState]) -> list[FrameOutput]:
        """One frame of each sequence: images (B, 3, H, W) normalised, masks (B, H, W) True on
        padding (None: none), states[b] the track rows of sequence b -> its detect + track rows
        decoded."""
        if masks is None:
            masks = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        enc = self.encode(images, masks, states)
        # Sequences carry different numbers of track rows: decode them one by one on the shared
        # (batched) encoder output instead of padding the queries.
        return [self.decode(TrackState.cat([self.detect_rows(), s], context=s.context), enc, b)
                for b, s in enumerate(states)]

    def decode(self, rows: TrackState, enc: EncoderOutput, b: int) -> FrameOutput:
        """Decode the rows of sequence `b` on its encoder output.

        Queries are [positional | content] (2C wide) or content only (C wide: DAB queries,
        whose positional query the decoder makes from the reference box in every layer);
        references are stored as logits.
        """
        C = self.cfg.detector.hidden_dim
        tgt, pos = (rows.queries, None) if rows.queries.shape[1] == C else rows.queries.split(C, dim=1)[::-1]
        ref = rows.refs.sigmoid()[None]
        args = (tgt[None], ref, enc.memory[b:b + 1], enc.spatial_shapes, enc.level_start_index,
                enc.valid_ratios[b:b + 1], None if pos is None else pos[None], enc.padding_mask[b:b + 1])
        bbox_embed = self.detector.bbox_embed if self.cfg.detector.with_box_refine else None
        decoder = self.detector.transformer.decoder
        if self.cfg.grad_checkpointing and torch.is_grad_enabled():
            hs, inter = checkpoint(decoder, *args, bbox_embed=bbox_embed, use_reentrant=False)
        else:
            hs, inter = decoder(*args, bbox_embed=bbox_embed)
        logits, boxes = self.detector.predict(hs, ref, inter)
        logits, boxes = logits[:, 0], boxes[:, 0]
        rows = rows.replace(logits=logits[-1], boxes=boxes[-1], embeds=hs[-1, 0],
                            scores=logits[-1].detach().sigmoid().max(-1).values)
        return FrameOutput(rows, logits, boxes, hs[:, 0], inter[:, 0])

    # -- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def track_frame(self, image: Tensor, state: TrackState, orig_size: tuple[int, int] | None = None
                    ) -> tuple[Result, TrackState, FrameOutput]:
        """`track` plus the frame's decoder output (all rows, before the runtime update)."""
        images, masks = pad_images([image], self.cfg.size_divisibility if self.pad_at_inference else 1)
        out = self.step(images, masks, [state])[0]
        tracks = self.next_state(self.lifecycle(out))
        tracks = tracks.with_context(frame=tracks.context.frame + 1)
        # Reported: the live tracks after the query update, with this frame's boxes and scores.
        return self.report(tracks, orig_size or tuple(image.shape[-2:])), tracks, out

    def track(self, image: Tensor, state: TrackState, orig_size: tuple[int, int] | None = None
              ) -> tuple[Result, TrackState]:
        result, tracks, _ = self.track_frame(image, state, orig_size)
        return result, tracks

    # -- training -------------------------------------------------------------------------
    def candidates(self, rows: TrackState) -> Tensor:
        """(n,) bool: rows that may be matched to a new object (default: every row without an id)."""
        return rows.ids == -1

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

    def supervise(self, out: FrameOutput, target: dict, clip_loss: ClipLoss) -> TrackState:
        """Assign one frame's targets to its rows and add the frame's losses; returns the rows
        with ids (newly matched candidates take their target's id), target indices and IoUs.

        Tracks keep their identity's target; candidates are Hungarian-matched to the targets no
        track claims, in every supervised decoder layer on that layer's predictions.
        """
        rows = out.rows
        candidates = self.candidates(rows)
        no_tracks = torch.full_like(rows.ids, -1)
        layers = out.logits.shape[0]
        losses, final = {}, None
        for layer in range(layers) if self.cfg.detector.aux_loss else [layers - 1]:
            ids = no_tracks if layer < self.detect_only_layers else rows.ids
            final = match_tracklets(ids, candidates, out.logits[layer].detach(), out.boxes[layer].detach(),
                                    target, self.matcher)
            prefix = "" if layer == layers - 1 else f"aux{layer}/"
            for k, v in self.layer_losses(out.logits[layer], out.boxes[layer], final.gt_idx, target).items():
                losses[prefix + k] = v
        clip_loss.add(losses, len(target["ids"]) + (final.num_disappeared if self.count_disappeared else 0))
        # A track without a target this frame keeps its last IoU, as the originals.
        iou = self.target_iou(rows, final.gt_idx, target, (final.ids >= 0) & (final.gt_idx >= 0))
        return rows.replace(ids=final.ids, gt_idx=final.gt_idx, iou=iou)

    def training_loss(self, clips: list[list[tuple[Tensor, dict]]]) -> dict[str, Tensor]:
        """Collective average loss of a batch of clips (each a list of (image, target)); clips
        may differ in length and image size (frames are padded per time step)."""
        clip_loss = ClipLoss()
        states = [self.new_state() for _ in clips]
        for t in range(max(len(c) for c in clips)):
            live = [b for b, c in enumerate(clips) if t < len(c)]
            images, masks = pad_images([clips[b][t][0] for b in live], self.cfg.size_divisibility)
            for b, out in zip(live, self.step(images, masks, [states[b] for b in live])):
                rows = self.supervise(out, clips[b][t][1], clip_loss)
                if t + 1 < len(clips[b]):
                    states[b] = self.training_tracks(out, rows)
        c = self.cfg.loss
        return clip_loss.result({"loss_ce": c.cls_loss_coef, "loss_bbox": c.bbox_loss_coef,
                                 "loss_giou": c.giou_loss_coef})
