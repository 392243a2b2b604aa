"""DAB-style anchor-box queries (DAB-Deformable-DETR, MeMOTR).

A DAB query is a content vector plus a 4-d anchor box (cx, cy, w, h) kept in logit space.
In every decoder layer its positional query is made from the current anchor:

    pos = query_scale(tgt) * ref_point_head(sine(anchor))      (scale = 1 in layer 0)

and box refinement moves the anchor layer by layer. Two official conventions differ only in
the order the four coordinates are concatenated in the sine embedding: MeMOTR uses
(x, y, w, h), DAB-Deformable-DETR (y, x, w, h); the `order` option selects it, so one module
serves both checkpoints.

- `anchor_sine_embed`, `AnchorQueryPos`: the positional query of an anchor box;
- `DABDecoder`: the shared deformable decoder with that positional query in every layer;
- `DABDeformableDETR` (+ `DABDetectorConfig`): the detector, official parameter names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from trackformers.models.deformable_transformer import (DeformableTransformerDecoder,
                                                        DeformableTransformerDecoderLayer)
from trackformers.models.detector import DeformableDETR, DetectorConfig
from trackformers.models.heads import MLP
from trackformers.models.position_encoding import sine_embed

SINE_ORDERS = {"xywh": (0, 1, 2, 3), "yxwh": (1, 0, 2, 3)}


def anchor_sine_embed(boxes: Tensor, num_feats: int = 128, temperature: float = 10000.0,
                      order: str = "xywh", scale: float = 2 * math.pi) -> Tensor:
    """Sine embedding of normalised boxes: (..., 4) -> (..., 4 * num_feats), coordinates
    concatenated in `order` ("xywh" as MeMOTR, "yxwh" as DAB-Deformable-DETR)."""
    if order not in SINE_ORDERS:
        raise ValueError(f"anchor sine order must be one of {sorted(SINE_ORDERS)}, got {order!r}")
    return sine_embed(boxes[..., list(SINE_ORDERS[order])], num_feats, temperature, scale)


class AnchorQueryPos(nn.Module):
    """Positional queries from anchor boxes: `query_scale(tgt) * ref_point_head(sine(anchor))`.

    Sub-module names (`ref_point_head`, `query_scale`) are the official ones.
    """

    def __init__(self, d_model: int = 256, temperature: float = 10000.0, order: str = "xywh"):
        super().__init__()
        if order not in SINE_ORDERS:  # reject it now, not in the middle of a forward
            raise ValueError(f"anchor sine order must be one of {sorted(SINE_ORDERS)}, got {order!r}")
        self.d_model, self.temperature, self.order = d_model, temperature, order
        self.ref_point_head = MLP(2 * d_model, d_model, d_model, 2)
        self.query_scale = MLP(d_model, d_model, d_model, 2)

    def forward(self, tgt: Tensor, anchors: Tensor, layer: int) -> Tensor:
        """tgt (B, Q, C) the layer's input; anchors (B, Q, 4) normalised boxes already scaled by
        the level-0 valid ratios; `layer` the decoder layer index (no scaling in layer 0)."""
        sine = anchor_sine_embed(anchors, self.d_model // 2, self.temperature, self.order)
        pos = self.ref_point_head(sine)
        return pos if layer == 0 else self.query_scale(tgt) * pos


class DABDecoder(DeformableTransformerDecoder):
    """A deformable decoder whose positional queries come from the queries' current anchor
    boxes (`anchor_pos`), recomputed in every layer; without `anchor_pos` it is the plain
    decoder (positional queries given by the caller). Call it with 4-d references, box
    refinement heads and `query_pos=None`."""

    def __init__(self, decoder_layer: DeformableTransformerDecoderLayer, num_layers: int,
                 inverse_sigmoid_eps: float = 1e-5, anchor_pos: AnchorQueryPos | None = None):
        super().__init__(decoder_layer, num_layers, inverse_sigmoid_eps)
        self.anchor_pos = anchor_pos

    def layer_query_pos(self, lid: int, output: Tensor, reference_points_input: Tensor,
                        query_pos: Tensor | None) -> Tensor | None:
        if self.anchor_pos is None:
            return query_pos
        # The anchor as seen from level 0 (boxes scaled by that level's valid ratios), as DAB.
        return self.anchor_pos(output, reference_points_input[:, :, 0], lid)


@dataclass
class DABDetectorConfig(DetectorConfig):
    """DAB-Deformable-DETR: Deformable DETR options with the DAB defaults (IDEA-Research/DAB-DETR
    main.py: FFN 2048, dropout 0, box refinement always on, inverse-sigmoid eps 1e-3) and the
    anchor sine embedding's coordinate order and temperature."""
    dim_feedforward: int = 2048
    dropout: float = 0.0
    with_box_refine: bool = True
    inverse_sigmoid_eps: float = 1e-3
    anchor_sine_order: str = "yxwh"
    anchor_temperature: float = 10000.0


class DABDeformableDETR(DeformableDETR):
    """Deformable DETR whose queries are DAB anchor boxes: `tgt_embed` (Q, C) content and
    `refpoint_embed` (Q, 4) logit-space anchors, positional queries made per layer from the
    anchors (`DABDecoder`), anchors refined layer by layer. Official parameter names."""

    def __init__(self, cfg: DABDetectorConfig, decoder: DABDecoder | None = None):
        if cfg.two_stage or not cfg.with_box_refine:
            raise ValueError("DAB-Deformable-DETR is single-stage with box refinement "
                             "(two_stage=false, with_box_refine=true)")
        if decoder is None:
            layer = DeformableTransformerDecoderLayer(cfg.hidden_dim, cfg.dim_feedforward, cfg.dropout, cfg.activation,
                                                      cfg.num_feature_levels, cfg.nheads, cfg.dec_n_points,
                                                      cfg.offset_normalizer_hw)
            decoder = DABDecoder(layer, cfg.dec_layers, cfg.inverse_sigmoid_eps,
                                 AnchorQueryPos(cfg.hidden_dim, cfg.anchor_temperature, cfg.anchor_sine_order))
        # anchors replace the 2-d reference point head
        super().__init__(cfg, decoder=decoder, reference_points_head=False)

    def build_queries(self, cfg: DABDetectorConfig) -> None:
        """`tgt_embed` (Q, C) content and `refpoint_embed` (Q, 4) logit-space anchors."""
        self.tgt_embed = nn.Embedding(cfg.num_queries, cfg.hidden_dim)
        self.refpoint_embed = nn.Embedding(cfg.num_queries, 4)

    def forward(self, images: Tensor, masks: Tensor | None = None) -> dict:
        """Same outputs as `DeformableDETR.forward`."""
        srcs, level_masks, pos = self.features(images, masks)
        enc = self.transformer.encode(srcs, level_masks, pos)
        B = images.shape[0]
        tgt = self.tgt_embed.weight[None].expand(B, -1, -1)
        ref = self.refpoint_embed.weight.sigmoid()[None].expand(B, -1, -1)
        hs, inter = self.transformer.decoder(tgt, ref, enc.memory, enc.spatial_shapes, enc.level_start_index,
                                             enc.valid_ratios, None, enc.padding_mask, bbox_embed=self.bbox_embed)
        logits, boxes = self.predict(hs, ref, inter)
        out = self.format_outputs(logits, boxes)
        if not self.cfg.aux_loss:
            out["aux_outputs"] = []
        out.update(hs=hs, init_reference=ref, inter_references=inter)
        return out
