"""Multi-scale deformable attention (Zhu et al., Deformable DETR) in plain PyTorch.

`ms_deform_attn` is the core: every query gathers, per head, `L x P` bilinear samples of the
value maps (L levels, P points) and sums them with its attention weights. It uses one
`grid_sample` per level over all heads and queries at once (autograd for free, no compiled
extension) and the reference sampling convention: locations in [0, 1] over the padded
map, pixel centres at (i + 0.5) / size (`align_corners=False`), zeros outside the map.

`MSDeformAttn` is the module around it (offsets, weights, value and output projections),
with Deformable DETR's parameter names and initialisation.
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _corners(coord: Tensor, size: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel coordinates (centres at i) -> (..., 2) the two neighbouring indices (clamped into
    the map) and their bilinear weights, 0 for a neighbour outside (grid_sample's zero padding)."""
    c0 = coord.floor()
    f = coord - c0
    c0 = c0.to(torch.int32)
    c1 = c0 + 1
    w0 = (1 - f) * ((c0 >= 0) & (c0 < size))
    w1 = f * ((c1 >= 0) & (c1 < size))
    idx = torch.stack((c0.clamp(min=0).minimum(size - 1), c1.clamp(min=0).minimum(size - 1)), -1)
    return idx, torch.stack((w0, w1), -1)


def ms_deform_attn_gather(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                          sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """`ms_deform_attn` as one weighted gather: every output row is the sum of its 4 bilinear
    neighbours x L levels x P points of the value rows, weighted by bilinear x attention weight,
    i.e. one `embedding_bag` over the (N * S * M, D) value rows (channels contiguous), instead
    of per-level grid_sample on channels-first maps: about 2x faster on CPU. Same sampling
    convention (align_corners=False, zeros outside); equal to float32 rounding."""
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    dev, dt = value.device, sampling_locations.dtype
    hw = spatial_shapes.to(device=dev, dtype=torch.int32)
    H, W = hw[:, 0].view(L, 1), hw[:, 1].view(L, 1)
    xi, wx = _corners(sampling_locations[..., 0] * W.to(dt) - 0.5, W)
    yi, wy = _corners(sampling_locations[..., 1] * H.to(dt) - 0.5, H)
    wy = wy * attention_weights[..., None]
    # row of value (n, s, m) in the flat (N * S * M, D) table: (n * S + s) * M + m
    base = (torch.arange(N, device=dev, dtype=torch.int32) * (S * M)).view(N, 1, 1, 1, 1, 1) \
        + torch.arange(M, device=dev, dtype=torch.int32).view(1, 1, M, 1, 1, 1)
    rows = (level_start_index.to(device=dev, dtype=torch.int32).view(L, 1, 1) + yi * W[..., None]) * M + base
    idx = rows[..., :, None] + (xi * M)[..., None, :]
    weights = wy[..., :, None] * wx[..., None, :]
    out = F.embedding_bag(idx.view(N * Lq * M, L * P * 4), value.reshape(N * S * M, D),
                          per_sample_weights=weights.reshape(N * Lq * M, L * P * 4).to(value.dtype), mode="sum")
    return out.view(N, Lq, M * D)


def ms_deform_attn(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                   sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Deformable attention over multi-level value maps.

    Per-level grid_sample (the reference form, whose gradients grid_sample computes). With the
    environment variable TRACKFORMERS_MSDA=gather, CPU inference (no autograd) runs
    `ms_deform_attn_gather` instead: about 2x faster on CPU, equal within float32 rounding
    (it sums the samples in another order, which moves pixel boxes by up to ~0.01 px), so it is
    opt-in and the default keeps results bit-identical across versions.

    Args:
        value: (N, S, M, D) flattened maps of all levels, S = sum(H_l * W_l), M heads.
        spatial_shapes: (L, 2) int, (H_l, W_l) of each level.
        level_start_index: (L,) int, offset of each level in S (exclusive cumsum of H*W); implied
            by spatial_shapes (levels are contiguous), kept for the reference signature.
        sampling_locations: (N, Lq, M, L, P, 2) as (x, y) normalised to [0, 1].
        attention_weights: (N, Lq, M, L, P), normally softmax-ed over (L, P).
    Returns:
        (N, Lq, M * D).
    """
    if value.device.type == "cpu" and not torch.is_grad_enabled() and os.environ.get("TRACKFORMERS_MSDA") == "gather":
        return ms_deform_attn_gather(value, spatial_shapes, level_start_index, sampling_locations,
                                     attention_weights)
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    # split (not slicing) so that backward concatenates the levels' gradients once instead of
    # adding L zero-padded full-size copies
    levels = value.split([h * w for h, w in shapes], dim=1)
    # grid_sample wants [-1, 1] grids with (x, y) order: exactly the [0, 1] locations rescaled.
    # unbind (not indexing) per level, for the same reason: backward stacks once.
    grids = (2 * sampling_locations - 1).transpose(1, 2).flatten(0, 1).unbind(2)  # L x (N*M, Lq, P, 2)
    weights = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L, P).unbind(3)  # L x (N*M, 1, Lq, P)
    out = value.new_zeros(N * M, D, Lq)
    for (h, w), v, grid, weight in zip(shapes, levels, grids, weights):
        # (N, H*W, M, D) -> (N*M, D, H, W): all heads of the level in one grid_sample call.
        v = v.permute(0, 2, 3, 1).reshape(N * M, D, h, w)
        sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (N*M, D, Lq, P)
        # Accumulating per level keeps peak memory at one level's samples, not all L.
        out = out + (sampled * weight).sum(-1)
    return out.view(N, M * D, Lq).transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module (Deformable DETR's `MSDeformAttn`).

    Args:
        d_model: channels C of queries and values.
        n_levels: number of feature levels L.
        n_heads: heads M (C must divide by M).
        n_points: sampling points P per head and level.
        offset_normalizer_hw: divide x offsets by H and y by W, the pre-fix behaviour kept by
            TrackFormer checkpoints; Deformable DETR, MOTR and DAB divide x by W and y by H.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4,
                 offset_normalizer_hw: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.offset_normalizer_hw = offset_normalizer_hw
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: offsets start on a ring of M directions at radius 1..P, uniform weights."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        theta = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]  # each direction onto the unit square
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.constant_(proj.bias, 0.0)

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Attend from `query` around `reference_points` into the flattened multi-level `value`.

        Args:
            query: (N, Lq, C), content + positional embedding.
            reference_points: (N, Lq, L, 2) points (x, y) or (N, Lq, L, 4) boxes (cx, cy, w, h),
                normalised to [0, 1] per level (already multiplied by the valid ratios).
            value: (N, S, C) flattened maps of all levels (before `value_proj`).
            spatial_shapes, level_start_index: as in `ms_deform_attn`.
            padding_mask: (N, S) True on padded positions (their values are zeroed).
        Returns:
            (N, Lq, C).
        """
        N, Lq, _ = query.shape
        S = value.shape[1]
        M, L, P = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(value)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(N, S, M, self.d_model // M)
        offsets = self.sampling_offsets(query).view(N, Lq, M, L, P, 2)
        weights = self.attention_weights(query).view(N, Lq, M, L * P).softmax(-1).view(N, Lq, M, L, P)
        if reference_points.shape[-1] == 2:
            hw = spatial_shapes.to(offsets.dtype)
            normalizer = hw if self.offset_normalizer_hw else hw.flip(-1)  # (W, H) for (x, y)
            locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            # Box references: offsets are in units of half the box size, shared out over P points.
            locations = (reference_points[:, :, None, :, None, :2]
                         + offsets / P * reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError(f"reference_points must end in 2 or 4, got {tuple(reference_points.shape)}")
        out = ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights)
        return self.output_proj(out)
