"""TrackFormer's multi-frame Deformable DETR: the encoder sees the previous frame too.

Each frame contributes its own L projected levels. `level_embed` has 2L rows (rows 0..L-1 for
the previous frame, L..2L-1 for the current one) and the decoder's cross-attention reads 2L
levels. With `separate_encoder` (the released models) the L-level encoder runs twice, once per
frame, and the decoder memory is (current, previous); otherwise one 2L-level encoder runs over
(previous, current). With `multi_frame_encoding` the position encoding is the 3-d sine over
(frame, y, x), frame 0 = previous, 1 = current; else each frame gets the 2-d encoding.

The official code concatenates the memory as (current, previous) but keeps the spatial shapes,
valid ratios and padding mask in (previous, current) order; that is only consistent because
both frames have the same size, which `encode_pair` therefore requires.
"""
from __future__ import annotations

import torch
from torch import Tensor

from trackformers.models.deformable_transformer import (DeformableTransformer, DeformableTransformerEncoder,
                                                        DeformableTransformerEncoderLayer, EncoderOutput)
from trackformers.models.detector import DeformableDETR, DetectorConfig
from trackformers.models.position_encoding import PositionEmbeddingSine3D

Levels = tuple[list[Tensor], list[Tensor]]  # per level: maps (B, C, H_l, W_l), masks (B, H_l, W_l)


class MultiFrameDeformableTransformer(DeformableTransformer):
    """A DeformableTransformer over 2L levels (two frames of L levels each); with
    `separate_encoder` its encoder has L levels and runs once per frame."""

    def __init__(self, d_model: int, nhead: int, num_encoder_layers: int, num_decoder_layers: int,
                 dim_feedforward: int, dropout: float, activation: str, frame_levels: int, dec_n_points: int,
                 enc_n_points: int, inverse_sigmoid_eps: float = 1e-5, offset_normalizer_hw: bool = False,
                 separate_encoder: bool = True):
        super().__init__(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout,
                         activation, 2 * frame_levels, dec_n_points, enc_n_points, False, 300,
                         inverse_sigmoid_eps, offset_normalizer_hw)
        self.frame_levels, self.separate_encoder = frame_levels, separate_encoder
        if separate_encoder:
            layer = DeformableTransformerEncoderLayer(d_model, dim_feedforward, dropout, activation, frame_levels,
                                                      nhead, enc_n_points, offset_normalizer_hw)
            self.encoder = DeformableTransformerEncoder(layer, num_encoder_layers)
            self.reset_parameters()

    def encode_pair(self, previous: Levels, current: Levels, pos_previous: list[Tensor],
                    pos_current: list[Tensor]) -> EncoderOutput:
        """Encoder output of the two frames for the 2L-level decoder."""
        if [s.shape for s in previous[0]] != [s.shape for s in current[0]]:
            raise ValueError("multi-frame attention needs the previous and current frame at the same size, got "
                             f"{[tuple(s.shape[-2:]) for s in previous[0]]} vs {[tuple(s.shape[-2:]) for s in current[0]]}")
        src, mask, pos, shapes, starts, ratios = self.flatten(previous[0] + current[0], previous[1] + current[1],
                                                              pos_previous + pos_current)
        if not self.separate_encoder:
            memory = self.encoder(src, shapes, starts, ratios, pos, mask)
            return EncoderOutput(memory, mask, shapes, starts, ratios)
        L, half = self.frame_levels, src.shape[1] // 2
        halves = []
        for sl, lv in ((slice(None, half), slice(None, L)), (slice(half, None), slice(L, None))):
            halves.append(self.encoder(src[:, sl], shapes[lv], starts[lv] - starts[lv][0], ratios[:, lv],
                                       pos[:, sl], mask[:, sl]))
        # memory (current, previous); both frames have the same shapes, so the rest reads the same
        # in either order - take it in memory order.
        cur, prev = slice(half, None), slice(None, half)
        return EncoderOutput(torch.cat((halves[1], halves[0]), 1), torch.cat((mask[:, cur], mask[:, prev]), 1),
                             shapes, starts, torch.cat((ratios[:, L:], ratios[:, :L]), 1))


class MultiFrameDeformableDETR(DeformableDETR):
    """DeformableDETR whose encoder also sees the previous frame's projected levels."""

    def __init__(self, cfg: DetectorConfig, multi_frame_encoding: bool = True, separate_encoder: bool = True):
        super().__init__(cfg)
        if cfg.two_stage:
            raise ValueError("multi-frame attention is single-stage: detector.two_stage must be false")
        C = cfg.hidden_dim
        self.multi_frame_encoding = multi_frame_encoding
        self.transformer = MultiFrameDeformableTransformer(
            C, cfg.nheads, cfg.enc_layers, cfg.dec_layers, cfg.dim_feedforward, cfg.dropout, cfg.activation,
            cfg.num_feature_levels, cfg.dec_n_points, cfg.enc_n_points, cfg.inverse_sigmoid_eps,
            cfg.offset_normalizer_hw, separate_encoder)
        if multi_frame_encoding:
            if C % 3 or (C // 3) % 2:
                raise ValueError(f"multi_frame_encoding splits hidden_dim into 3 even parts: {C} does not")
            self.position_encoding = PositionEmbeddingSine3D(C // 3, 2, cfg.pos_temperature, cfg.pos_normalize,
                                                             cfg.pos_scale)

    def frame_positions(self, levels: Levels) -> tuple[list[Tensor], list[Tensor]]:
        """Position encodings of a frame's levels as the previous and as the current frame.

        Without padding they depend on the level shapes only: a video's frames (two per step)
        reuse them instead of recomputing the sines every frame."""
        srcs, masks = levels
        key = tuple((tuple(m.shape), s.dtype, s.device) for s, m in zip(srcs, masks))
        unpadded = not any(bool(m.any()) for m in masks)
        if unpadded and getattr(self, "_pos_cache", (None,))[0] == key:
            return self._pos_cache[1]
        pos = [self.position_encoding(m).to(s.dtype) for s, m in zip(srcs, masks)]
        out = ([p[:, 0] for p in pos], [p[:, 1] for p in pos]) if self.multi_frame_encoding else (pos, pos)
        if unpadded:
            self._pos_cache = (key, out)
        return out

    def encode_pair(self, current: Levels, previous: Levels | None = None) -> EncoderOutput:
        """Encoder output for the current frame's levels and the previous frame's (None: the
        current frame stands in for it, as the official code does on a sequence's first frame)."""
        previous = current if previous is None else previous
        pos_prev = self.frame_positions(previous)[0]
        pos_cur = self.frame_positions(current)[1]
        return self.transformer.encode_pair(previous, current, pos_prev, pos_cur)
