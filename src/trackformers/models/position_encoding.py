"""Position encodings: 2-d sine over feature maps (DETR / Deformable DETR), 3-d sine over
(frame, y, x) (TrackFormer's multi-frame attention), learned, and the sine embedding of
normalised coordinates used for box queries (two-stage, DAB)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _interleave_sin_cos(x: Tensor) -> Tensor:
    """(..., F) angles -> (..., F): sin on even channels, cos on odd ones, pairwise interleaved."""
    return torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), dim=-1).flatten(-2)


def _frequencies(num_feats: int, temperature: float, device, dtype=torch.float32) -> Tensor:
    dim_t = torch.arange(num_feats, dtype=dtype, device=device)
    return temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)


class PositionEmbeddingSine(nn.Module):
    """2-d sine encoding of a padded batch: `[pos_y (F), pos_x (F)]` channels, F = num_pos_feats.

    Coordinates are the cumulative count of valid pixels along each axis. With `normalize`,
    they are divided by the valid extent and scaled to `scale` (2*pi); `offset` is subtracted
    first: Deformable DETR uses -0.5 (pixel centres), DETR 0.0.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0, normalize: bool = True,
                 scale: float = 2 * math.pi, offset: float = -0.5, eps: float = 1e-6):
        super().__init__()
        self.num_pos_feats, self.temperature, self.normalize = num_pos_feats, temperature, normalize
        self.scale, self.offset, self.eps = scale, offset, eps

    def forward(self, mask: Tensor) -> Tensor:
        """mask (B, H, W), True on padding -> (B, 2F, H, W) float32."""
        not_mask = ~mask
        y = not_mask.cumsum(1, dtype=torch.float32)
        x = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            y = (y + self.offset) / (y[:, -1:, :] + self.eps) * self.scale
            x = (x + self.offset) / (x[:, :, -1:] + self.eps) * self.scale
        dim_t = _frequencies(self.num_pos_feats, self.temperature, mask.device)
        pos_x = _interleave_sin_cos(x[..., None] / dim_t)
        pos_y = _interleave_sin_cos(y[..., None] / dim_t)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class PositionEmbeddingSine3D(nn.Module):
    """3-d sine encoding of `num_frames` frames of a padded batch (TrackFormer's multi-frame
    attention): `[pos_z (F), pos_y (F), pos_x (F)]` channels for every frame.

    The frame coordinate is 1..T, the spatial ones the cumulative count of valid pixels; with
    `normalize` each is divided by its extent (z by T) and scaled to `scale`. Unlike the 2-d
    Deformable DETR encoding there is no -0.5 offset (the official code has none).
    """

    def __init__(self, num_pos_feats: int = 96, num_frames: int = 2, temperature: float = 10000.0,
                 normalize: bool = True, scale: float = 2 * math.pi, eps: float = 1e-6):
        super().__init__()
        self.num_pos_feats, self.num_frames, self.temperature = num_pos_feats, num_frames, temperature
        self.normalize, self.scale, self.eps = normalize, scale, eps

    def forward(self, mask: Tensor) -> Tensor:
        """mask (B, H, W), True on padding -> (B, T, 3F, H, W) float32; frame t is `[:, t]`."""
        not_mask = (~mask)[:, None].expand(-1, self.num_frames, -1, -1)
        z = not_mask.cumsum(1, dtype=torch.float32)
        y = not_mask.cumsum(2, dtype=torch.float32)
        x = not_mask.cumsum(3, dtype=torch.float32)
        if self.normalize:
            z = z / (z[:, -1:] + self.eps) * self.scale
            y = y / (y[:, :, -1:] + self.eps) * self.scale
            x = x / (x[:, :, :, -1:] + self.eps) * self.scale
        dim_t = _frequencies(self.num_pos_feats, self.temperature, mask.device)
        pos = [_interleave_sin_cos(c[..., None] / dim_t) for c in (z, y, x)]
        return torch.cat(pos, dim=-1).permute(0, 1, 4, 2, 3)


class PositionEmbeddingLearned(nn.Module):
    """Learned absolute encoding: `[col (F), row (F)]` embeddings for maps up to `max_size`."""

    def __init__(self, num_pos_feats: int = 128, max_size: int = 50):
        super().__init__()
        self.row_embed = nn.Embedding(max_size, num_pos_feats)
        self.col_embed = nn.Embedding(max_size, num_pos_feats)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self, mask: Tensor) -> Tensor:
        """mask (B, H, W) -> (B, 2F, H, W); the mask only gives the shape."""
        B, H, W = mask.shape
        x = self.col_embed(torch.arange(W, device=mask.device))
        y = self.row_embed(torch.arange(H, device=mask.device))
        pos = torch.cat((x[None].expand(H, W, -1), y[:, None].expand(H, W, -1)), dim=-1)
        return pos.permute(2, 0, 1)[None].expand(B, -1, -1, -1)


def sine_embed(coords: Tensor, num_feats: int = 128, temperature: float = 10000.0,
               scale: float = 2 * math.pi) -> Tensor:
    """Sine embedding of normalised coordinates (..., K) -> (..., K * num_feats).

    Each coordinate (in [0, 1]) is scaled by `scale` and embedded like one axis of
    `PositionEmbeddingSine`; the K embeddings are concatenated in the given order.
    Two-stage Deformable DETR embeds sigmoid(proposals) as (x, y, w, h); DAB-DETR orders its
    anchors (y, x, w, h) - callers pick the order.
    """
    dim_t = _frequencies(num_feats, temperature, coords.device, coords.dtype)
    pos = _interleave_sin_cos((coords * scale)[..., None] / dim_t)
    return pos.flatten(-2)


def build_position_encoding(kind: str, hidden_dim: int, temperature: float = 10000.0, normalize: bool = True,
                            scale: float = 2 * math.pi, offset: float = -0.5) -> nn.Module:
    """'sine' or 'learned' encoding with hidden_dim // 2 features per axis."""
    if kind == "sine":
        return PositionEmbeddingSine(hidden_dim // 2, temperature, normalize, scale, offset)
    if kind == "learned":
        return PositionEmbeddingLearned(hidden_dim // 2)
    raise ValueError(f"position encoding must be 'sine' or 'learned', got {kind!r}")
