"""Second stage: RoI features from P2-P5, the Shared2FC box head, multiclass NMS, loss."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trackformers.models.rcnn import box_coder
from trackformers.models.rcnn.sampling import AssignerConfig, SamplerConfig, sample
from trackformers.ops.nms import batched_nms
from trackformers.ops.roi_align import roi_align

BOX_STDS = (0.1, 0.1, 0.2, 0.2)  # the box head's target stds (means 0)


def map_levels(boxes: Tensor, num_levels: int = 4, finest_scale: float = 56.0) -> Tensor:
    """FPN level of each xyxy box: floor(log2(sqrt(area) / finest_scale)), clamped to the levels
    (mmdet SingleRoIExtractor: scale < 112 -> P2, < 224 -> P3, < 448 -> P4, else P5)."""
    scale = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
    return torch.floor(torch.log2(scale / finest_scale + 1e-6)).clamp(0, num_levels - 1).long()


def rois_of(boxes: list[Tensor]) -> Tensor:
    """Per-image box lists -> (K, 5) RoIs [image index, x1, y1, x2, y2]."""
    return torch.cat([torch.cat([torch.full_like(b[:, :1], i), b[:, :4]], 1) for i, b in enumerate(boxes)])


class RoIExtractor(nn.Module):
    """RoIAlign (aligned, adaptive sampling) of each RoI on its FPN level."""

    def __init__(self, strides: tuple[int, ...] = (4, 8, 16, 32), output_size: int = 7, finest_scale: float = 56.0):
        super().__init__()
        self.strides, self.output_size, self.finest_scale = tuple(strides), output_size, finest_scale

    def forward(self, feats: list[Tensor], rois: Tensor) -> Tensor:
        c = feats[0].shape[1]
        out = feats[0].new_zeros(len(rois), c, self.output_size, self.output_size)
        levels = map_levels(rois[:, 1:], len(self.strides), self.finest_scale)
        for lvl, stride in enumerate(self.strides):  # four levels, each vectorised over its RoIs
            idx = torch.nonzero(levels == lvl).squeeze(1)
            if len(idx):
                out = out.index_copy(0, idx, roi_align(feats[lvl], rois[idx], self.output_size, 1.0 / stride))
        return out


class BBoxHead(nn.Module):
    """mmdet `Shared2FCBBoxHead`: flatten -> 2 x (FC + ReLU) -> class logits (C + 1, background
    last) and class-specific deltas (4C)."""

    def __init__(self, num_classes: int, in_channels: int = 256, roi_size: int = 7, fc_channels: int = 1024):
        super().__init__()
        self.num_classes = num_classes
        self.shared_fcs = nn.ModuleList([nn.Linear(in_channels * roi_size * roi_size, fc_channels),
                                         nn.Linear(fc_channels, fc_channels)])
        self.fc_cls = nn.Linear(fc_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_channels, 4 * num_classes)
        for fc in self.shared_fcs:
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        nn.init.normal_(self.fc_cls.weight, std=0.01)
        nn.init.normal_(self.fc_reg.weight, std=0.001)
        nn.init.zeros_(self.fc_cls.bias)
        nn.init.zeros_(self.fc_reg.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


@dataclass
class DetectionConfig:
    score_thr: float = 0.05
    nms_iou: float = 0.5
    max_per_img: int = 100


def multiclass_nms(boxes: Tensor, scores: Tensor, cfg: DetectionConfig) -> tuple[Tensor, Tensor, Tensor]:
    """boxes (N, 4C) or (N, 4), softmax scores (N, C + 1) -> (boxes (M, 4), scores, labels) by
    descending score: every (box, class) pair above score_thr, NMS per class, the best max_per_img."""
    n, num_classes = scores.shape[0], scores.shape[1] - 1
    boxes = boxes.reshape(n, -1, 4).expand(n, num_classes, 4).reshape(-1, 4)
    labels = torch.arange(num_classes, device=scores.device).repeat(n)
    scores = scores[:, :-1].reshape(-1)
    ok = scores > cfg.score_thr
    boxes, scores, labels = boxes[ok], scores[ok], labels[ok]
    keep = batched_nms(boxes, scores, labels, cfg.nms_iou)[:cfg.max_per_img]
    return boxes[keep], scores[keep], labels[keep]


class RoIHead(nn.Module):
    """Box head on RoI features; mmdet's StandardRoIHead with attribute `bbox_head`."""

    def __init__(self, num_classes: int, channels: int = 256, strides: tuple[int, ...] = (4, 8, 16, 32),
                 fc_channels: int = 1024):
        super().__init__()
        self.extractor = RoIExtractor(strides)
        self.bbox_head = BBoxHead(num_classes, channels, 7, fc_channels)
        self.assigner = AssignerConfig(pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5)
        self.sampler = SamplerConfig(num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True)

    @torch.no_grad()
    def detect(self, feats: list[Tensor], proposals: list[Tensor], cfg: DetectionConfig, scale: list[Tensor] | None = None) -> list[tuple[Tensor, Tensor, Tensor]]:
        """(boxes, scores, labels) per image. `scale` (4,) per image divides the decoded boxes
        before NMS (mmdet's rescale to the original image, where its NMS runs)."""
        logits, deltas = self.bbox_head(self.extractor(feats, rois_of(proposals)))
        probs = logits.softmax(-1)
        out, start = [], 0
        for i, p in enumerate(proposals):
            sl = slice(start, start + len(p))
            start += len(p)
            boxes = box_coder.decode(p, deltas[sl], stds=BOX_STDS)
            if scale is not None:
                boxes = (boxes.reshape(len(p), -1, 4) / scale[i]).reshape(len(p), -1)
            out.append(multiclass_nms(boxes, probs[sl], cfg))
        return out

    def loss(self, feats: list[Tensor], proposals: list[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor]
             ) -> dict[str, Tensor]:
        """Softmax CE over 512 sampled RoIs per image and L1 on the positives' class deltas,
        both averaged over all sampled RoIs of the batch."""
        c = self.bbox_head.num_classes
        samples = [sample(p, g, lab, self.assigner, self.sampler, background=c)
                   for p, g, lab in zip(proposals, gt_boxes, gt_labels)]
        logits, deltas = self.bbox_head(self.extractor(feats, rois_of([s.boxes for s in samples])))
        labels = torch.cat([s.labels for s in samples])
        pos_rows, pos_targets, start = [], [], 0
        for s, g in zip(samples, gt_boxes):
            pos_rows.append(torch.arange(start, start + s.num_pos, device=labels.device))
            pos_targets.append(box_coder.encode(s.boxes[:s.num_pos], g.to(s.boxes)[s.gt_index], stds=BOX_STDS))
            start += len(s.boxes)
        pos_rows = torch.cat(pos_rows)
        pred = deltas.reshape(len(labels), c, 4)[pos_rows, labels[pos_rows]]
        n = max(len(labels), 1)
        return {"loss_cls": F.cross_entropy(logits, labels, reduction="sum") / n,
                "loss_bbox": F.l1_loss(pred, torch.cat(pos_targets), reduction="sum") / n}
