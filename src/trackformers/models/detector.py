"""Deformable DETR: backbone -> multi-scale projection -> deformable transformer -> heads.

`DeformableDETR(cfg)` with `DetectorConfig` covers plain, iterative box refinement and
two-stage. Its parameter names follow the official implementation (the backbone is a
torchvision-named ResNet under `backbone.`), so official checkpoints convert by a prefix
rename. Trackers reuse the pieces: `features` (backbone + projections + position
encodings), `transformer.encode` / `transformer.decoder`, and `predict` (per-layer heads).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trackformers.models.backbone import build_backbone, downsample_mask
from trackformers.models.deformable_transformer import DeformableTransformer, EncoderOutput, refine_boxes
from trackformers.models.heads import MLP, init_box_head, init_class_head
from trackformers.models.position_encoding import build_position_encoding


@dataclass
class DetectorConfig:
    """Every option of the Deformable DETR family (defaults: the official R50 plain model)."""
    backbone_depth: int = 50
    backbone_width: int = 64          # 64 = standard ResNet; smaller for fast CPU models
    dilation: bool = False            # DC5
    frozen_stages: int = 1            # stem + layer1 frozen, as the originals
    hidden_dim: int = 256
    nheads: int = 8
    num_feature_levels: int = 4
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 1024
    dropout: float = 0.1
    activation: str = "relu"
    enc_n_points: int = 4
    dec_n_points: int = 4
    num_queries: int = 300
    num_classes: int = 91             # sigmoid logits, no background column
    with_box_refine: bool = False
    two_stage: bool = False
    aux_loss: bool = True
    position_embedding: str = "sine"  # or "learned"
    pos_temperature: float = 10000.0
    pos_normalize: bool = True
    pos_scale: float = 2 * math.pi
    pos_offset: float = -0.5          # Deformable DETR -0.5; DETR 0.0
    inverse_sigmoid_eps: float = 1e-5
    offset_normalizer_hw: bool = False  # TrackFormer's pre-fix MSDA normaliser


def pad_images(images: list[Tensor], size_divisibility: int = 1) -> tuple[Tensor, Tensor]:
    """Images (3, H_i, W_i) -> zero-padded batch (B, 3, H, W) and mask (B, H, W), True on padding.

    H, W are the largest sizes (the official NestedTensor: bottom/right padding, no rounding),
    rounded up to a multiple of `size_divisibility` when it is > 1 (MeMOTR's loader uses 32).
    """
    d = max(int(size_divisibility), 1)
    H = -(-max(im.shape[1] for im in images) // d) * d
    W = -(-max(im.shape[2] for im in images) // d) * d
    batch = images[0].new_zeros(len(images), 3, H, W)
    mask = torch.ones(len(images), H, W, dtype=torch.bool, device=images[0].device)
    for i, im in enumerate(images):
        batch[i, :, :im.shape[1], :im.shape[2]] = im
        mask[i, :im.shape[1], :im.shape[2]] = False
    return batch, mask


def _input_proj(cfg: DetectorConfig, backbone_channels: list[int]) -> nn.ModuleList:
    """1x1 conv + GroupNorm per backbone level; 3x3/s2 conv + GroupNorm for each extra level
    (the first extra level reads the raw last backbone map, later ones the previous level)."""
    C = cfg.hidden_dim
    projs = [nn.Sequential(nn.Conv2d(c, C, 1), nn.GroupNorm(32, C)) for c in backbone_channels]
    c_in = backbone_channels[-1]
    for _ in range(cfg.num_feature_levels - len(backbone_channels)):
        projs.append(nn.Sequential(nn.Conv2d(c_in, C, 3, stride=2, padding=1), nn.GroupNorm(32, C)))
        c_in = C
    for proj in projs:
        nn.init.xavier_uniform_(proj[0].weight, gain=1)
        nn.init.constant_(proj[0].bias, 0)
    return nn.ModuleList(projs)


class DeformableDETR(nn.Module):
    """Deformable DETR; `decoder` replaces the plain decoder (a tracker's own: MOTR's track
    attention, MeMOTR's detection/joint split), `reference_points_head=False` leaves out the
    2-d reference Linear (anchor-box queries carry their own references)."""

    def __init__(self, cfg: DetectorConfig, decoder: nn.Module | None = None, reference_points_head: bool = True):
        super().__init__()
        self.cfg = cfg
        C = cfg.hidden_dim
        self.backbone = build_backbone(cfg.backbone_depth, cfg.backbone_width, cfg.dilation,
                                       cfg.num_feature_levels, cfg.frozen_stages)
        self.position_encoding = build_position_encoding(cfg.position_embedding, C, cfg.pos_temperature,
                                                         cfg.pos_normalize, cfg.pos_scale, cfg.pos_offset)
        self.input_proj = _input_proj(cfg, self.backbone.num_channels)
        self.transformer = DeformableTransformer(
            C, cfg.nheads, cfg.enc_layers, cfg.dec_layers, cfg.dim_feedforward, cfg.dropout, cfg.activation,
            cfg.num_feature_levels, cfg.dec_n_points, cfg.enc_n_points, cfg.two_stage, cfg.num_queries,
            cfg.inverse_sigmoid_eps, cfg.offset_normalizer_hw, decoder, reference_points_head)
        if not cfg.two_stage:
            self.build_queries(cfg)
        self.class_embed, self.bbox_embed = self._build_heads(cfg)

    def build_queries(self, cfg: DetectorConfig) -> None:
        """The learned single-stage queries: `query_embed` (Q, 2C) = [positional | content]."""
        self.query_embed = nn.Embedding(cfg.num_queries, 2 * cfg.hidden_dim)

    @staticmethod
    def _build_heads(cfg: DetectorConfig) -> tuple[nn.ModuleList, nn.ModuleList]:
        """One class/box head per decoder layer (+1 for two-stage proposals). Without box
        refinement the originals share ONE head across layers (and the two-stage proposals);
        we keep that (the state dict still lists it once per layer)."""
        num_pred = cfg.dec_layers + (1 if cfg.two_stage else 0)
        wh_bias = 0.0 if cfg.two_stage else -2.0
        if cfg.with_box_refine:
            class_heads = [nn.Linear(cfg.hidden_dim, cfg.num_classes) for _ in range(num_pred)]
            box_heads = [MLP(cfg.hidden_dim, cfg.hidden_dim, 4, 3) for _ in range(num_pred)]
        else:
            class_heads = [nn.Linear(cfg.hidden_dim, cfg.num_classes)] * num_pred
            box_heads = [MLP(cfg.hidden_dim, cfg.hidden_dim, 4, 3)] * num_pred
        for head in class_heads:
            init_class_head(head)
        for head in box_heads:
            init_box_head(head, wh_bias)
        return nn.ModuleList(class_heads), nn.ModuleList(box_heads)

    def features(self, images: Tensor, masks: Tensor | None = None) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Normalised images (B, 3, H, W) + padding mask (B, H, W, True on padding) ->
        per level: projected maps (B, C, H_l, W_l), masks (B, H_l, W_l), position encodings."""
        srcs, level_masks = self.levels(images, masks)
        pos = [self.position_encoding(m).to(s.dtype) for s, m in zip(srcs, level_masks)]
        return srcs, level_masks, pos

    def levels(self, images: Tensor, masks: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """Backbone and input projections: per level, maps (B, C, H_l, W_l) and masks (B, H_l, W_l)."""
        if masks is None:
            masks = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        return self.project(self.backbone(images), masks)

    def project(self, feats: list[Tensor], masks: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Input projections (+ extra strided levels) of backbone maps; masks (B, H, W) of the image."""
        srcs, level_masks = [], []
        for proj, feat in zip(self.input_proj, feats):
            srcs.append(proj(feat))
            level_masks.append(downsample_mask(masks, feat.shape[-2:]))
        for lvl in range(len(feats), self.cfg.num_feature_levels):
            src = self.input_proj[lvl](feats[-1] if lvl == len(feats) else srcs[-1])
            srcs.append(src)
            level_masks.append(downsample_mask(masks, src.shape[-2:]))
        return srcs, level_masks

    def predict(self, hs: Tensor, init_reference: Tensor, inter_references: Tensor) -> tuple[Tensor, Tensor]:
        """Per-layer heads: hs (L, B, Q, C) -> logits (L, B, Q, K), boxes (L, B, Q, 4).

        Layer l's boxes refine the references layer l started from: the initial ones for
        l = 0, else the references after layer l - 1.
        """
        logits, boxes = [], []
        for lvl in range(hs.shape[0]):
            ref = init_reference if lvl == 0 else inter_references[lvl - 1]
            logits.append(self.class_embed[lvl](hs[lvl]))
            boxes.append(refine_boxes(self.bbox_embed[lvl](hs[lvl]), ref, self.cfg.inverse_sigmoid_eps))
        return torch.stack(logits), torch.stack(boxes)

    @staticmethod
    def format_outputs(logits: Tensor, boxes: Tensor) -> dict:
        """Stacked per-layer predictions -> {pred_logits, pred_boxes, aux_outputs: [...]}."""
        return {"pred_logits": logits[-1], "pred_boxes": boxes[-1],
                "aux_outputs": [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1])]}

    def encode(self, images: Tensor, masks: Tensor | None = None) -> EncoderOutput:
        """Backbone, projections and encoder: the part of the forward pass that sees pixels."""
        return self.transformer.encode(*self.features(images, masks))

    def decode(self, enc: EncoderOutput) -> dict:
        """Queries -> decoder -> heads on an encoder output; see `forward` for the result."""
        query_embed = None if self.cfg.two_stage else self.query_embed.weight
        t = self.transformer.decode(enc, query_embed, self.class_embed, self.bbox_embed,
                                    refine=self.cfg.with_box_refine)
        logits, boxes = self.predict(t["hs"], t["init_reference"], t["inter_references"])
        out = self.format_outputs(logits, boxes)
        if not self.cfg.aux_loss:
            out["aux_outputs"] = []
        if self.cfg.two_stage:
            out["enc_outputs"] = {"pred_logits": t["enc_outputs_class"],
                                  "pred_boxes": t["enc_outputs_coord_unact"].sigmoid()}
        out.update(hs=t["hs"], init_reference=t["init_reference"], inter_references=t["inter_references"])
        return out

    def forward(self, images: Tensor, masks: Tensor | None = None) -> dict:
        """Normalised images (B, 3, H, W) + padding mask (B, H, W, True on padding; None: none)
        -> dict(pred_logits (B, Q, K), pred_boxes (B, Q, 4) normalised cxcywh, aux_outputs,
        [enc_outputs], hs (L, B, Q, C), init_reference, inter_references)."""
        return self.decode(self.encode(images, masks))


def build_detector(cfg: DetectorConfig | None = None) -> DeformableDETR:
    """A Deformable DETR from its config (defaults: the official plain R50 COCO model)."""
    return DeformableDETR(cfg or DetectorConfig())
