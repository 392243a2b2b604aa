"""Region proposal network head (mmdet `RPNHead`): sigmoid objectness and deltas per anchor."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trackformers.models.rcnn import box_coder
from trackformers.models.rcnn.anchors import base_anchors, grid_anchors, valid_anchors
from trackformers.models.rcnn.sampling import AssignerConfig, SamplerConfig, assign, _random_pick
from trackformers.ops.nms import batched_nms


@dataclass
class ProposalConfig:
    nms_pre: int = 1000        # most confident anchors kept per level before NMS
    max_per_img: int = 1000    # proposals kept after NMS
    nms_iou: float = 0.7
    min_bbox_size: float = 0.0  # proposals not wider and taller than this are dropped


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then 1x1 convs for A objectness logits and 4A deltas per location."""

    def __init__(self, channels: int = 256, strides: tuple[int, ...] = (4, 8, 16, 32, 64),
                 ratios: tuple[float, ...] = (0.5, 1.0, 2.0), scales: tuple[float, ...] = (8.0,)):
        super().__init__()
        self.strides = tuple(strides)
        self.num_anchors = len(ratios) * len(scales)
        self.rpn_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(channels, self.num_anchors, 1)
        self.rpn_reg = nn.Conv2d(channels, self.num_anchors * 4, 1)
        for conv in (self.rpn_conv, self.rpn_cls, self.rpn_reg):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        self.register_buffer("base", torch.stack([base_anchors(s, list(ratios), list(scales)) for s in strides]),
                             persistent=False)
        self.assigner = AssignerConfig(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, match_low_quality=True)
        self.sampler = SamplerConfig(num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False)

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: objectness logits (B, H*W*A) and deltas (B, H*W*A, 4), anchor order."""
        logits, deltas = [], []
        for f in feats:
            x = F.relu(self.rpn_conv(f))
            b = x.shape[0]
            logits.append(self.rpn_cls(x).permute(0, 2, 3, 1).reshape(b, -1))
            deltas.append(self.rpn_reg(x).permute(0, 2, 3, 1).reshape(b, -1, 4))
        return logits, deltas

    def anchors(self, feats: list[Tensor]) -> list[Tensor]:
        return [grid_anchors(self.base[i], s, f.shape[-2:]) for i, (s, f) in enumerate(zip(self.strides, feats))]

    @torch.no_grad()
    def proposals(self, logits: list[Tensor], deltas: list[Tensor], anchors: list[Tensor], cfg: ProposalConfig,
                  ) -> list[tuple[Tensor, Tensor]]:
        """(boxes (n, 4), scores (n,)) per image: per level the top `nms_pre` anchors, decoded
        (unclipped), NMS per level (level = class), the best `max_per_img` overall."""
        out = []
        for b in range(logits[0].shape[0]):
            boxes, scores, levels = [], [], []
            for lvl, (lg, dl, an) in enumerate(zip(logits, deltas, anchors)):
                s = lg[b].sigmoid()
                if 0 < cfg.nms_pre < len(s):
                    s, top = s.topk(cfg.nms_pre)
                    dl_b, an_b = dl[b][top], an[top]
                else:
                    dl_b, an_b = dl[b], an
                boxes.append(box_coder.decode(an_b, dl_b))
                scores.append(s)
                levels.append(torch.full_like(s, lvl, dtype=torch.long))
            boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
            wh = boxes[:, 2:] - boxes[:, :2]
            ok = (wh > cfg.min_bbox_size).all(1)
            boxes, scores, levels = boxes[ok], scores[ok], levels[ok]
            keep = batched_nms(boxes, scores, levels, cfg.nms_iou)[:cfg.max_per_img]
            out.append((boxes[keep], scores[keep]))
        return out

    def loss(self, logits: list[Tensor], deltas: list[Tensor], anchors: list[Tensor], level_sizes: list[tuple[int, int]],
             gt_boxes: list[Tensor], image_sizes: list[tuple[int, int]], beta: float = 1.0 / 9.0) -> dict[str, Tensor]:
        """Objectness BCE and smooth-L1 deltas on 256 sampled anchors per image, both averaged
        over all sampled anchors of the batch (mmdet's avg_factor). Anchors on padding are ignored."""
        all_anchors = torch.cat(anchors)
        logit_b, delta_b = torch.cat(logits, 1), torch.cat(deltas, 1)
        cls_terms, reg_terms, count = [], [], 0
        for b, (gt, size) in enumerate(zip(gt_boxes, image_sizes)):
            gt = gt.to(all_anchors)
            valid = torch.cat([valid_anchors(s, self.num_anchors, hw, size, all_anchors.device)
                               for s, hw in zip(self.strides, level_sizes)])
            assigned = assign(all_anchors, gt, self.assigner)
            assigned = torch.where(valid, assigned, torch.full_like(assigned, -1))
            pos = _random_pick(assigned > 0, int(self.sampler.num * self.sampler.pos_fraction))
            neg = _random_pick(assigned == 0, self.sampler.num - len(pos))
            target = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).to(all_anchors)
            cls_terms.append(F.binary_cross_entropy_with_logits(logit_b[b][torch.cat([pos, neg])], target,
                                                                reduction="sum"))
            enc = box_coder.encode(all_anchors[pos], gt[assigned[pos] - 1])
            reg_terms.append(F.smooth_l1_loss(delta_b[b][pos], enc, beta=beta, reduction="sum"))
            count += len(pos) + len(neg)
        count = max(count, 1)
        return {"loss_rpn_cls": sum(cls_terms) / count, "loss_rpn_bbox": sum(reg_terms) / count}
