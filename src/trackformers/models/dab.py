"""DAB-style anchor-box queries (DAB-Deformable-DETR, MeMOTR).

A DAB query is a content vector plus a 4-d anchor box (cx, cy, w, h) kept in logit space.
In every decoder layer its positional query is made from the current anchor:

    pos = query_scale(tgt) * ref_point_head(sine(anchor))      (scale = 1 in layer 0)

and box refinement moves the anchor layer by layer. Two official conventions differ only in
the order the four coordinates are concatenated in the sine embedding: MeMOTR uses
(x, y, w, h), DAB-Deformable-DETR (y, x, w, h); the `order` option selects it, so one module
serves both checkpoints.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SINE_ORDERS = {"xywh": (0, 1, 2, 3), "yxwh": (1, 0, 2, 3)}


def anchor_sine_embed(boxes: Tensor, num_feats: int = 128, temperature: float = 10000.0,
                      order: str = "xywh", scale: float = 2 * math.pi) -> Tensor:
    """Sine embedding of normalised boxes: (..., 4) -> (..., 4 * num_feats).

    Per coordinate, `num_feats` channels alternate sin/cos over frequency pairs (DETR style,
    frequency `temperature ** (2 * (i // 2) / num_feats)`); coordinates are concatenated in
    `order` ("xywh" as MeMOTR, "yxwh" as DAB-Deformable-DETR).
    """
    if order not in SINE_ORDERS:
        raise ValueError(f"anchor sine order must be one of {sorted(SINE_ORDERS)}, got {order!r}")
    i = torch.arange(num_feats, dtype=torch.float32, device=boxes.device)
    dim_t = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / num_feats)
    pos = boxes[..., list(SINE_ORDERS[order])] * scale
    pos = pos[..., None] / dim_t                                      # (..., 4, F)
    pos = torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1)
    return pos.flatten(-3)


class MLP(nn.Module):
    """Linear layers with ReLU between them (the DETR box-head MLP)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class AnchorQueryPos(nn.Module):
    """Positional queries from anchor boxes: `query_scale(tgt) * ref_point_head(sine(anchor))`.

    Parameter names (`ref_point_head`, `query_scale`) are the official ones, so checkpoints load
    by prefix.
    """

    def __init__(self, d_model: int = 256, temperature: float = 10000.0, order: str = "xywh"):
        super().__init__()
        self.d_model, self.temperature, self.order = d_model, temperature, order
        self.ref_point_head = MLP(2 * d_model, d_model, d_model, 2)
        self.query_scale = MLP(d_model, d_model, d_model, 2)

    def forward(self, tgt: Tensor, anchors: Tensor, layer: int) -> Tensor:
        """tgt (B, Q, C) the layer's input; anchors (B, Q, 4) normalised boxes already scaled by
        the level-0 valid ratios; `layer` the decoder layer index (no scaling in layer 0)."""
        sine = anchor_sine_embed(anchors, self.d_model // 2, self.temperature, self.order)
        pos = self.ref_point_head(sine)
        return pos if layer == 0 else self.query_scale(tgt) * pos
