"""Faster R-CNN R50-FPN as in QDTrack's MOT17 config (mmdet `FasterRCNN`), in plain torch.

`extract` gives P2-P6; `proposals` the RPN's; `detect` the final boxes; `loss` the four
detection terms of one batch. Boxes are xyxy pixels of the (unpadded) network input.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from trackformers.models.backbone import ResNet
from trackformers.models.rcnn.fpn import FPN
from trackformers.models.rcnn.roi_head import DetectionConfig, RoIHead
from trackformers.models.rcnn.rpn import ProposalConfig, RPNHead


@dataclass
class FasterRCNNConfig:
    backbone_depth: int = 50
    backbone_width: int = 64        # 64: ResNet-50; 8 or 16 give tiny CPU test models
    backbone_style: str = "caffe"   # QDTrack MOT17: caffe-style ResNet (stride in the first 1x1 conv)
    frozen_stages: int = 1          # stem + layer1 frozen; every BN is frozen (norm_eval, requires_grad=False)
    fpn_channels: int = 256
    fc_channels: int = 1024
    num_classes: int = 1
    anchor_scales: list[float] = field(default_factory=lambda: [8.0])
    anchor_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    anchor_strides: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64])
    rpn_train: ProposalConfig = field(default_factory=lambda: ProposalConfig(nms_pre=2000, max_per_img=1000))
    rpn_test: ProposalConfig = field(default_factory=lambda: ProposalConfig(nms_pre=1000, max_per_img=1000))
    rcnn_test: DetectionConfig = field(default_factory=DetectionConfig)
    rcnn_train_rois: int = 512      # RoIs sampled per image for the box head (a quarter positive)


class FasterRCNN(nn.Module):
    def __init__(self, cfg: FasterRCNNConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNet(cfg.backbone_depth, cfg.backbone_width, return_stages=(1, 2, 3, 4),
                               frozen_stages=cfg.frozen_stages, style=cfg.backbone_style)
        self.neck = FPN(self.backbone.num_channels, cfg.fpn_channels, num_outs=len(cfg.anchor_strides))
        self.rpn_head = RPNHead(cfg.fpn_channels, tuple(cfg.anchor_strides), tuple(cfg.anchor_ratios),
                                tuple(cfg.anchor_scales))
        self.roi_head = RoIHead(cfg.num_classes, cfg.fpn_channels, tuple(cfg.anchor_strides[:4]), cfg.fc_channels)
        self.roi_head.sampler.num = cfg.rcnn_train_rois

    def extract(self, images: Tensor) -> list[Tensor]:
        """Normalised, padded images (B, 3, H, W) -> P2-P6."""
        return self.neck(self.backbone(images))

    def proposals(self, feats: list[Tensor], train: bool = False) -> list[Tensor]:
        logits, deltas = self.rpn_head(feats)
        cfg = self.cfg.rpn_train if train else self.cfg.rpn_test
        return [boxes for boxes, _ in self.rpn_head.proposals(logits, deltas, self.rpn_head.anchors(feats), cfg)]

    def detect(self, feats: list[Tensor], scale: list[Tensor] | None = None) -> list[tuple[Tensor, Tensor, Tensor]]:
        """(boxes (n, 4), scores (n,), labels (n,)) per image, after multiclass NMS."""
        return self.roi_head.detect(feats, self.proposals(feats), self.cfg.rcnn_test, scale)

    def loss(self, feats: list[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor],
             image_sizes: list[tuple[int, int]]) -> tuple[dict[str, Tensor], list[Tensor]]:
        """Detection losses of one batch and the training proposals (for the track head)."""
        logits, deltas = self.rpn_head(feats)
        anchors = self.rpn_head.anchors(feats)
        losses = self.rpn_head.loss(logits, deltas, anchors, [f.shape[-2:] for f in feats], gt_boxes, image_sizes)
        proposals = [b for b, _ in self.rpn_head.proposals(logits, deltas, anchors, self.cfg.rpn_train)]
        losses.update(self.roi_head.loss(feats, proposals, gt_boxes, gt_labels))
        return losses, proposals
