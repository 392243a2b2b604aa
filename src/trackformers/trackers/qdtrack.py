"""QDTrack (Pang et al., CVPR 2021): quasi-dense similarity learning on Faster R-CNN
(`QDTrack`, method "qdtrack") and on our Deformable DETR (`QDTrackDETR`, "qdtrack_detr", see
its section at the end: decoder queries stand in for RoIs). Both share the memo tracker, its
settings (`QDTrackerConfig`), the embed head and the losses.

Training (a key and a reference frame of one clip): the detection losses of the key frame,
then RoIs of both frames (the key frame's training proposals, the reference frame's test
proposals, ground truth added) are assigned to objects (IoU >= 0.7 positive, < 0.5 negative)
and sampled (256, half positive, negatives <= 3x positives); the embeddings of the key
positives are pulled towards the reference RoIs of the same object with the multi-positive
contrastive loss (weight 0.25) and the auxiliary cosine L2 loss (weight 1.0), see
models.quasi_dense.
Inference: detections (score > 0.05, class-wise NMS 0.5, <= 100) get embeddings from their
RoI features and are associated by bi-softmax against the memo (below); the
tracker's settings carry the official names (`--set init_score_thr=0.8`).

It does not propagate queries, so it implements the tracker contract directly:
`Config`, `cfg.input`, `new_state()`, `track(image, state, orig_size)`, `training_loss(clips)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from trackformers.models.criterion import LossConfig
from trackformers.models.detector import DetectorConfig, pad_images
from trackformers.models.quasi_dense import QuasiDenseEmbedHead, mean_track_losses
from trackformers.models.rcnn.faster_rcnn import FasterRCNN, FasterRCNNConfig
from trackformers.models.rcnn.roi_head import rois_of
from trackformers.models.rcnn.sampling import AssignerConfig, SamplerConfig, sample
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou, box_xyxy_to_cxcywh
from trackformers.models.train_detector import DetectorTraining
from trackformers.trackers.tracker import InputConfig, Tracker


# ---------------------------------------------------------------------------------------
# The association (mmtracking `QuasiDenseTracker`), tensors in, tensors out
# ---------------------------------------------------------------------------------------
# Duplicate removal, bi-softmax matching against a memo of tracklets and backdrops, memo update.
#
# Per frame, with detections sorted by score:
# 1. drop a detection overlapping any higher-scored one by IoU > nms_backdrop_iou_thr (if its
#    score < obj_score_thr) or > nms_class_iou_thr (otherwise);
# 2. if there are tracklets: scores = (softmax over memo + softmax over detections) / 2 of the
#    embedding dot products (x same-class mask); greedily, in score order, a detection takes
#    its best memo entry if the score > match_score_thr: a tracklet's id when the detection is
#    confident (> obj_score_thr; that tracklet is then closed to the others), else -2 (a
#    suppressed duplicate) when the score > nms_conf_thr; a backdrop leaves it at -1;
# 3. detections still at -1 scoring > init_score_thr start tracklets (consecutive ids);
# 4. tracklets take their detection's box / label and embed <- (1-m) embed + m new; the -1
#    detections not overlapping an earlier detection by > nms_backdrop_iou_thr become this
#    frame's backdrops (the last memo_backdrop_frames updates are kept); tracklets unseen for
#    memo_tracklet_frames frames are forgotten.
# Frames without detections change nothing but the frame counter (as the original).
@dataclass
class QDMemo:
    """Tracklets (rows with ids) and backdrops (rows with ages, newest first) of one sequence.
    Boxes are xyxy pixels of the original frame."""
    ids: Tensor
    boxes: Tensor
    embeds: Tensor
    labels: Tensor
    last_frame: Tensor
    bd_boxes: Tensor
    bd_embeds: Tensor
    bd_labels: Tensor
    bd_age: Tensor
    frame: int = 0
    next_id: int = 0

    @classmethod
    def empty(cls, dim: int, device=None) -> QDMemo:
        z = torch.zeros
        return cls(z(0, dtype=torch.long, device=device), z(0, 4, device=device), z(0, dim, device=device),
                   z(0, dtype=torch.long, device=device), z(0, dtype=torch.long, device=device),
                   z(0, 4, device=device), z(0, dim, device=device), z(0, dtype=torch.long, device=device),
                   z(0, dtype=torch.long, device=device))

    def to(self, device) -> QDMemo:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})


def earlier_overlap(boxes: Tensor, thr: Tensor | float) -> Tensor:
    """(n,) bool: box i overlaps some box j < i by IoU > thr (thr: scalar or per box i)."""
    iou = box_iou(boxes, boxes)[0]
    earlier = torch.ones_like(iou, dtype=torch.bool).tril(-1)  # [i, j]: j < i
    thr = torch.as_tensor(thr, dtype=iou.dtype, device=iou.device).reshape(-1, 1)
    return ((iou > thr) & earlier).any(1)


def match_scores(embeds: Tensor, memo_embeds: Tensor, labels: Tensor, memo_labels: Tensor, metric: str,
                 with_cats: bool) -> Tensor:
    """(n, m) association scores between detections and memo entries."""
    if metric == "cosine":
        scores = torch.nn.functional.normalize(embeds, dim=1) @ torch.nn.functional.normalize(memo_embeds, dim=1).t()
    else:
        sim = embeds @ memo_embeds.t()
        scores = sim.softmax(1) if metric == "softmax" else (sim.softmax(1) + sim.softmax(0)) / 2
    if with_cats:
        scores = scores * (labels[:, None] == memo_labels[None, :]).to(scores.dtype)
    return scores


def greedy_ids(scores: Tensor, det_scores: Tensor, memo_ids: Tensor, cfg) -> Tensor:
    """Ids (n,) for detections in score order: memo id, -1 (unmatched) or -2 (suppressed).

    Row i's choice depends on the tracklets rows < i took, so this runs row by row; it does so
    on CPU copies (n <= max_per_img, one transfer instead of a device sync per row)."""
    s, conf, mids = scores.detach().cpu().clone(), det_scores.detach().cpu(), memo_ids.cpu()
    ids = torch.full((len(s),), -1, dtype=torch.long)
    for i in range(len(s)):
        best, j = s[i].max(0)
        if best <= cfg.match_score_thr:
            continue
        if mids[j] > -1:
            if conf[i] > cfg.obj_score_thr:
                ids[i] = mids[j]
                s[:, j] = 0  # row i is past; rows after i may no longer take tracklet j
            elif best > cfg.nms_conf_thr:
                ids[i] = -2
    return ids.to(scores.device)


def associate(memo: QDMemo, boxes: Tensor, scores: Tensor, labels: Tensor, embeds: Tensor, cfg
              ) -> tuple[Tensor, Tensor, QDMemo]:
    """One frame: detections (any order) -> (kept detection indices in score order, their ids,
    next memo). Reported tracks are the kept detections with id >= 0."""
    frame = memo.frame
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), torch.zeros(0, dtype=torch.long,
                                                                                   device=boxes.device), \
            replace(memo, frame=frame + 1)
    order = scores.argsort(descending=True, stable=True)
    thr = torch.where(scores[order] < cfg.obj_score_thr, cfg.nms_backdrop_iou_thr, cfg.nms_class_iou_thr)
    order = order[~earlier_overlap(boxes[order], thr)]
    boxes, scores, labels, embeds = boxes[order], scores[order], labels[order], embeds[order]

    ids = torch.full((len(order),), -1, dtype=torch.long, device=boxes.device)
    if len(memo.ids):  # backdrops alone do not start matching (the original's `empty` test)
        memo_ids = torch.cat([memo.ids, torch.full_like(memo.bd_labels, -1)])
        s = match_scores(embeds, torch.cat([memo.embeds, memo.bd_embeds]), labels,
                         torch.cat([memo.labels, memo.bd_labels]), cfg.match_metric, cfg.with_cats)
        ids = greedy_ids(s, scores, memo_ids, cfg)
    new = (ids == -1) & (scores > cfg.init_score_thr)
    n_new = int(new.sum())
    ids[new] = torch.arange(memo.next_id, memo.next_id + n_new, device=ids.device)
    return order, ids, update_memo(memo, ids, boxes, embeds, labels, cfg, n_new)


def update_memo(memo: QDMemo, ids: Tensor, boxes: Tensor, embeds: Tensor, labels: Tensor, cfg, n_new: int) -> QDMemo:
    """The memo after a frame with (at least one) kept detection and its ids."""
    frame, m = memo.frame, cfg.memo_momentum
    tracked = ids > -1
    # rows of existing tracklets matched this frame: position of each memo id among `ids`
    hit = memo.ids[:, None] == ids[None, :]                     # (T, n)
    matched = hit.any(1)
    src = hit.float().argmax(1)
    t_boxes = torch.where(matched[:, None], boxes[src], memo.boxes)
    t_embeds = torch.where(matched[:, None], (1 - m) * memo.embeds + m * embeds[src], memo.embeds)
    t_labels = torch.where(matched, labels[src], memo.labels)
    t_last = torch.where(matched, torch.full_like(memo.last_frame, frame), memo.last_frame)
    born = tracked & ~(ids[:, None] == memo.ids[None, :]).any(1)
    ids_all = torch.cat([memo.ids, ids[born]])
    boxes_all, embeds_all = torch.cat([t_boxes, boxes[born]]), torch.cat([t_embeds, embeds[born]])
    labels_all = torch.cat([t_labels, labels[born]])
    last_all = torch.cat([t_last, torch.full_like(ids[born], frame)])
    alive = frame - last_all < cfg.memo_tracklet_frames

    backdrop = (ids == -1) & ~earlier_overlap(boxes, cfg.nms_backdrop_iou_thr)
    keep_bd = memo.bd_age + 1 < cfg.memo_backdrop_frames
    return QDMemo(ids_all[alive], boxes_all[alive], embeds_all[alive], labels_all[alive], last_all[alive],
                  torch.cat([boxes[backdrop], memo.bd_boxes[keep_bd]]),
                  torch.cat([embeds[backdrop], memo.bd_embeds[keep_bd]]),
                  torch.cat([labels[backdrop], memo.bd_labels[keep_bd]]),
                  torch.cat([torch.zeros_like(ids[backdrop]), memo.bd_age[keep_bd] + 1]),
                  frame=frame + 1, next_id=memo.next_id + n_new)


def memo_step(memo: QDMemo, boxes: Tensor, scores: Tensor, labels: Tensor, embeds: Tensor, cfg,
              orig_size: tuple[int, int]) -> tuple[dict[str, Tensor], QDMemo]:
    """`associate` one frame's detections (xyxy pixels of the original (h, w) frame) and report
    the tracked ones as the tracker contract's result (boxes normalised cxcywh)."""
    order, ids, memo = associate(memo, boxes, scores, labels, embeds, cfg)
    shown = ids >= 0
    sel = order[shown]
    oh, ow = orig_size
    size = boxes.new_tensor([ow, oh, ow, oh])
    return {"ids": ids[shown], "boxes": box_xyxy_to_cxcywh(boxes[sel] / size), "scores": scores[sel],
            "labels": labels[sel]}, memo


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------
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
class QDTrackerConfig:
    """The memo tracker's settings (mmtracking QuasiDenseTracker; defaults: the MOT17 config),
    shared by QDTrack on Faster R-CNN and on Deformable DETR."""
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


@dataclass
class QDTrackConfig(QDTrackerConfig):
    detector: FasterRCNNConfig = field(default_factory=FasterRCNNConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    input: QDTrackInputConfig = field(default_factory=QDTrackInputConfig)
    size_divisibility: int = 32
    loss_track_weight: float = 0.25       # MultiPosCrossEntropyLoss
    loss_track_aux_weight: float = 1.0    # L2Loss (neg margin 0.1, neg:pos <= 3, hard mining)
    track_rois: int = 256                 # RoIs sampled per frame for the embeddings (half positive)
    grad_checkpointing: bool = False      # accepted for the training engine; not used


TRACK_ASSIGNER = AssignerConfig(pos_iou_thr=0.7, neg_iou_thr=0.5, min_pos_iou=0.5, match_low_quality=False)
TRACK_SAMPLER = SamplerConfig(num=256, pos_fraction=0.5, neg_pos_ub=3, add_gt_as_proposals=True,
                              instance_balanced=True)


def pixel_targets(target: dict, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(xyxy pixel boxes, labels, ids) of a frame target (boxes normalised cxcywh)."""
    h, w = image.shape[-2:]
    boxes = box_cxcywh_to_xyxy(target["boxes"].float()) * torch.tensor([w, h, w, h], device=image.device)
    ids = target.get("ids", torch.arange(len(boxes), device=image.device))
    return boxes, target["labels"].long(), ids.long()


def key_ref_frames(clips: list[list[tuple[Tensor, dict]]]) -> tuple[list, list]:
    """(key frames, reference frames) of clips: each clip's first and second frame (its first
    again for a one-frame clip, as QDTrack trains on static images)."""
    return [clip[0] for clip in clips], [clip[1] if len(clip) > 1 else clip[0] for clip in clips]


class QDTrack(Tracker):
    """Faster R-CNN + quasi-dense embedding head + bi-softmax memo (the mmtracking model)."""

    Config = QDTrackConfig

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
        return memo_step(state, boxes, scores, labels, embeds, self.cfg, (oh, ow))

    # -- training -------------------------------------------------------------------------
    def training_loss(self, clips: list[list[tuple[Tensor, dict]]]) -> dict[str, Tensor]:
        """Key frame = a clip's first frame, reference = its second (the same image for
        one-frame clips, as QDTrack on static images). Returns the terms and their sum "loss"."""
        keys, refs = key_ref_frames(clips)
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
        pairs = []
        for ks, rs, ke, re, (_, _, kid), (_, _, rid) in zip(key_samples, ref_samples, key_embeds, ref_embeds,
                                                           key_t, ref_t):
            ref_ids = torch.cat([rid[rs.gt_index], torch.full((len(rs.boxes) - rs.num_pos,), -1,
                                                              dtype=torch.long, device=rid.device)])
            pairs.append((ke, re, kid[ks.gt_index], ref_ids))
        track = mean_track_losses(pairs, self.cfg.loss_track_weight, self.cfg.loss_track_aux_weight)
        losses.update(track)
        losses["loss"] = sum(losses.values())
        return losses


# ---------------------------------------------------------------------------------------
# QDTrack on Deformable DETR
# ---------------------------------------------------------------------------------------
# The decoder queries are DETR's region candidates: each query's last-layer embedding has
# already pooled the image at and around its box (deformable attention), so the quasi-dense
# head embeds those vectors (`QuasiDenseEmbedHead` without convs, 1x1 "RoIs": FC + ReLU + FC)
# instead of RoIAlign crops, which a DETR has no FPN pipeline or proposals for. Every query of
# the reference frame is a contrast candidate (the dense part: Q per frame, matched or not);
# a key query's positives are the reference queries Hungarian-matched to the same object id.
def _detr() -> DetectorConfig:
    return DetectorConfig(num_classes=1, with_box_refine=True, dropout=0.0, num_queries=300)


@dataclass
class QDTrackDETRConfig(QDTrackerConfig):
    detector: DetectorConfig = field(default_factory=_detr)
    embed: EmbedConfig = field(default_factory=lambda: EmbedConfig(num_convs=0))
    input: InputConfig = field(default_factory=InputConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    loss_track_weight: float = 0.25       # as QDTrack on Faster R-CNN
    loss_track_aux_weight: float = 1.0
    score_thr: float = 0.05               # queries below this are no detections (the R-CNN test score_thr)
    max_per_img: int = 100                # most confident queries passed to the memo
    grad_checkpointing: bool = False      # recompute backbone + encoder in backward
    size_divisibility: int = 1            # pad batched training frames to a multiple of this


class QDTrackDETR(DetectorTraining, Tracker):
    """Deformable DETR + quasi-dense embedding of its decoder queries + the bi-softmax memo."""

    Config = QDTrackDETRConfig

    def __init__(self, cfg: QDTrackDETRConfig):
        super().__init__(cfg)
        e = cfg.embed
        if e.num_convs:
            raise ValueError("qdtrack_detr embeds decoder query vectors: embed.num_convs must be 0")
        self.embed_head = QuasiDenseEmbedHead(cfg.detector.hidden_dim, 0, e.conv_channels, 1, e.fc_channels,
                                              e.embed_channels, e.gn_groups)

    def embed(self, hs: Tensor) -> Tensor:
        """Last-layer query embeddings (..., C) -> quasi-dense embeddings (..., D)."""
        return self.embed_head(hs.reshape(-1, hs.shape[-1])).view(*hs.shape[:-1], self.cfg.embed.embed_channels)

    def new_state(self) -> QDMemo:
        return QDMemo.empty(self.cfg.embed.embed_channels, self.embed_head.fc_embed.weight.device)

    @torch.no_grad()
    def track(self, image: Tensor, state: QDMemo, orig_size: tuple[int, int] | None = None
              ) -> tuple[dict[str, Tensor], QDMemo]:
        """One frame: queries scoring > score_thr (best class, at most max_per_img) are the
        detections; their boxes in the original frame's pixels go to the memo (as the R-CNN
        variant's, so IoU thresholds mean the same)."""
        oh, ow = orig_size or tuple(image.shape[-2:])
        out = self.detector(image[None])
        scores, labels = out["pred_logits"][0].sigmoid().max(-1)
        top = scores.argsort(descending=True)[:self.cfg.max_per_img]
        top = top[scores[top] > self.cfg.score_thr]
        boxes = box_cxcywh_to_xyxy(out["pred_boxes"][0][top]) * image.new_tensor([ow, oh, ow, oh])
        return memo_step(state, boxes, scores[top], labels[top], self.embed(out["hs"][-1][0][top]), self.cfg,
                         (oh, ow))

    def training_loss(self, clips: list[list[tuple[Tensor, dict]]]) -> dict[str, Tensor]:
        """The DETR set loss of the key and reference frames (both are decoded anyway) plus the
        quasi-dense losses from key to reference frame. Detection terms are unweighted (as
        `DetectorTraining`), the track terms weighted; "loss" is the weighted total."""
        keys, refs = key_ref_frames(clips)
        frames = [f for pair in zip(keys, refs) for f in pair]  # key, ref, key, ref, ...
        out, targets = self.frame_outputs(frames)
        losses = self.criterion(out, targets)
        total = self.criterion.total(losses)
        # The last layer's assignment: the queries whose boxes the set loss trains, per frame.
        # (The criterion matched them too; matching is deterministic, so these are its pairs.)
        embeds = self.embed(out["hs"][-1])                       # (2B, Q, D)
        dev = embeds.device
        indices = [(q.to(dev), t.to(dev)) for q, t in self.criterion.matcher(
            {"pred_logits": out["pred_logits"], "pred_boxes": out["pred_boxes"]}, targets)]
        ids = [t.get("ids", torch.arange(len(t["labels"]))).long().to(dev) for _, t in frames]
        pairs = []
        for b in range(len(clips)):
            (kq, kt), (rq, rt) = indices[2 * b], indices[2 * b + 1]
            ref_ids = torch.full(embeds.shape[1:2], -1, dtype=torch.long, device=dev)  # unmatched: negatives
            ref_ids[rq] = ids[2 * b + 1][rt]
            pairs.append((embeds[2 * b, kq], embeds[2 * b + 1], ids[2 * b][kt], ref_ids))
        track = mean_track_losses(pairs, self.cfg.loss_track_weight, self.cfg.loss_track_aux_weight)
        losses.update(track)
        losses["loss"] = total + track["loss_track"] + track["loss_track_aux"]
        return losses
