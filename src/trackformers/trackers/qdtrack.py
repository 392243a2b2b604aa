"""QDTrack (Pang et al., CVPR 2021): quasi-dense similarity learning on Faster R-CNN.

Training (a key and a reference frame of one clip): the detection losses of the key frame,
then RoIs of both frames (the key frame's training proposals, the reference frame's test
proposals, ground truth added) are assigned to objects (IoU >= 0.7 positive, < 0.5 negative)
and sampled (256, half positive, negatives <= 3x positives); the embeddings of the key
positives are pulled towards the reference RoIs of the same object with the multi-positive
contrastive loss (weight 0.25) and the auxiliary cosine L2 loss (weight 1.0), see
models.quasi_dense.
Inference: detections (score > 0.05, class-wise NMS 0.5, <= 100) get embeddings from their
RoI features and are associated by bi-softmax against the memo (trackers.qdtrack_memo); the
tracker's settings carry the official names (`--set init_score_thr=0.8`).

It does not propagate queries, so it implements the tracker contract directly:
`Config`, `cfg.input`, `new_state()`, `track(image, state, orig_size)`, `training_loss(clips)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from trackformers.models.detector import pad_images
from trackformers.models.quasi_dense import QuasiDenseEmbedHead, track_losses
from trackformers.models.rcnn.faster_rcnn import FasterRCNN, FasterRCNNConfig
from trackformers.models.rcnn.roi_head import rois_of
from trackformers.models.rcnn.sampling import AssignerConfig, SamplerConfig, sample
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh
from trackformers.trackers.qdtrack_memo import QDMemo, associate


@dataclass
class QDTrackInputConfig:
    """The official test pipeline: keep-ratio resize to (1088, 1088), BGR mean (103.53, 116.28,
    123.675), std 1 on 0-255 values; here as RGB in [0, 1] (the converter flips conv1's input
    channels), padding to a multiple of 32."""
    short_side: int = 1088
    max_size: int = 1088
    resize_rule: str = "mmdet"
    mean: list[float] = field(default_factory=lambda: [123.675 / 255, 116.28 / 255, 103.53 / 255])
    std: list[float] = field(default_factory=lambda: [1 / 255, 1 / 255, 1 / 255])


@dataclass
class EmbedConfig:
    num_convs: int = 4
    conv_channels: int = 256
    fc_channels: int = 1024
    embed_channels: int = 256
    gn_groups: int = 32


@dataclass
class QDTrackConfig:
    detector: FasterRCNNConfig = field(default_factory=FasterRCNNConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    input: QDTrackInputConfig = field(default_factory=QDTrackInputConfig)
    size_divisibility: int = 32
    loss_track_weight: float = 0.25       # MultiPosCrossEntropyLoss
    loss_track_aux_weight: float = 1.0    # L2Loss (neg margin 0.1, neg:pos <= 3, hard mining)
    track_rois: int = 256                 # RoIs sampled per frame for the embeddings (half positive)
    grad_checkpointing: bool = False      # accepted for the training engine; not used
    # tracker (mmtracking QuasiDenseTracker; defaults: the MOT17 config)
    init_score_thr: float = 0.9
    obj_score_thr: float = 0.5
    match_score_thr: float = 0.5
    memo_tracklet_frames: int = 30
    memo_backdrop_frames: int = 1
    memo_momentum: float = 0.8
    nms_conf_thr: float = 0.5
    nms_backdrop_iou_thr: float = 0.3
    nms_class_iou_thr: float = 0.7
    with_cats: bool = True
    match_metric: str = "bisoftmax"       # bisoftmax | softmax | cosine

    def __post_init__(self):
        if self.match_metric not in ("bisoftmax", "softmax", "cosine"):
            raise ValueError(f"match_metric must be bisoftmax, softmax or cosine, got {self.match_metric!r}")
        if not 0 <= self.memo_momentum <= 1:
            raise ValueError(f"memo_momentum must be in [0, 1], got {self.memo_momentum}")


TRACK_ASSIGNER = AssignerConfig(pos_iou_thr=0.7, neg_iou_thr=0.5, min_pos_iou=0.5, match_low_quality=False)
TRACK_SAMPLER = SamplerConfig(num=256, pos_fraction=0.5, neg_pos_ub=3, add_gt_as_proposals=True,
                              instance_balanced=True)


def pixel_targets(target: dict, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(xyxy pixel boxes, labels, ids) of a frame target (boxes normalised cxcywh)."""
    h, w = image.shape[-2:]
    boxes = box_cxcywh_to_xyxy(target["boxes"].float()) * torch.tensor([w, h, w, h], device=image.device)
    ids = target.get("ids", torch.arange(len(boxes), device=image.device))
    return boxes, target["labels"].long(), ids.long()


class QDTrack(nn.Module):
    """Faster R-CNN + quasi-dense embedding head + bi-softmax memo (the mmtracking model)."""

    Config = QDTrackConfig
    first_id = 0  # ids count from 0 as mmtracking's; result files show id + 1

    def __init__(self, cfg: QDTrackConfig):
        super().__init__()
        self.cfg = cfg
        self.detector = FasterRCNN(cfg.detector)
        e = cfg.embed
        self.track_sampler = replace(TRACK_SAMPLER, num=cfg.track_rois)
        self.embed_head = QuasiDenseEmbedHead(cfg.detector.fpn_channels, e.num_convs, e.conv_channels, 7,
                                              e.fc_channels, e.embed_channels, e.gn_groups)

    def embed(self, feats: list[Tensor], boxes: list[Tensor]) -> Tensor:
        """Embeddings (sum n_i, D) of xyxy input-pixel boxes, RoIAlign on P2-P5."""
        return self.embed_head(self.detector.roi_head.extractor(feats[:4], rois_of(boxes)))

    # -- inference ------------------------------------------------------------------------
    def new_state(self) -> QDMemo:
        return QDMemo.empty(self.cfg.embed.embed_channels, self.embed_head.fc_embed.weight.device)

    @torch.no_grad()
    def track(self, image: Tensor, state: QDMemo, orig_size: tuple[int, int] | None = None
              ) -> tuple[dict[str, Tensor], QDMemo]:
        """One frame, image (3, h, w) normalised -> (result: ids, boxes cxcywh normalised,
        scores, labels; next memo). Detection NMS and the memo's IoUs are computed in the
        original frame's pixels, as mmtracking (boxes rescaled by the resize factors)."""
        h, w = image.shape[-2:]
        oh, ow = orig_size or (h, w)
        scale = image.new_tensor([w / ow, h / oh, w / ow, h / oh])
        images, _ = pad_images([image], self.cfg.size_divisibility)
        feats = self.detector.extract(images)
        boxes, scores, labels = self.detector.detect(feats, scale=[scale])[0]
        embeds = self.embed(feats, [boxes * scale])
        order, ids, state = associate(state, boxes, scores, labels, embeds, self.cfg)
        shown = ids >= 0
        sel = order[shown]
        size = image.new_tensor([ow, oh, ow, oh])
        result = {"ids": ids[shown], "boxes": box_xyxy_to_cxcywh(boxes[sel] / size), "scores": scores[sel],
                  "labels": labels[sel]}
        return result, state

    # -- training -------------------------------------------------------------------------
    def training_loss(self, clips: list[list[tuple[Tensor, dict]]]) -> dict[str, Tensor]:
        """Key frame = a clip's first frame, reference = its second (the same image for
        one-frame clips, as QDTrack on static images). Returns the terms and their sum "loss"."""
        keys = [clip[0] for clip in clips]
        refs = [clip[1] if len(clip) > 1 else clip[0] for clip in clips]
        key_images, _ = pad_images([im for im, _ in keys], self.cfg.size_divisibility)
        ref_images, _ = pad_images([im for im, _ in refs], self.cfg.size_divisibility)
        key_t = [pixel_targets(t, im) for im, t in keys]
        ref_t = [pixel_targets(t, im) for im, t in refs]

        feats = self.detector.extract(key_images)
        losses, proposals = self.detector.loss(feats, [b for b, _, _ in key_t], [lab for _, lab, _ in key_t],
                                               [tuple(im.shape[-2:]) for im, _ in keys])
        ref_feats = self.detector.extract(ref_images)
        ref_proposals = self.detector.proposals(ref_feats)
        key_samples = [sample(p.detach(), b, lab, TRACK_ASSIGNER, self.track_sampler, background=-1)
                       for p, (b, lab, _) in zip(proposals, key_t)]
        ref_samples = [sample(p.detach(), b, lab, TRACK_ASSIGNER, self.track_sampler, background=-1)
                       for p, (b, lab, _) in zip(ref_proposals, ref_t)]
        key_embeds = self.embed(feats, [s.boxes[:s.num_pos] for s in key_samples]).split(
            [s.num_pos for s in key_samples])
        ref_embeds = self.embed(ref_feats, [s.boxes for s in ref_samples]).split([len(s.boxes) for s in ref_samples])
        track = {"loss_track": 0.0, "loss_track_aux": 0.0}
        for ks, rs, ke, re, (_, _, kid), (_, _, rid) in zip(key_samples, ref_samples, key_embeds, ref_embeds,
                                                           key_t, ref_t):
            ref_ids = torch.cat([rid[rs.gt_index], torch.full((len(rs.boxes) - rs.num_pos,), -1,
                                                              dtype=torch.long, device=rid.device)])
            pair = track_losses(ke, re, kid[ks.gt_index], ref_ids, self.cfg.loss_track_weight,
                                self.cfg.loss_track_aux_weight)
            for k in track:
                track[k] = track[k] + pair[k] / len(clips)
        losses.update(track)
        losses["loss"] = sum(losses.values())
        return losses
