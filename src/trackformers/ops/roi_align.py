"""RoIAlign (He et al., Mask R-CNN) in plain torch, equal to mmcv / torchvision `roi_align`.

Conventions (mmcv `RoIAlign(output_size, spatial_scale, sampling_ratio, aligned=True)`):
- a RoI is (batch index, x1, y1, x2, y2) in image pixels; times `spatial_scale` it is in
  feature pixels, and `aligned` shifts it by -0.5 so that pixel centres sit at integers;
- each of the `out_h x out_w` bins averages `gh x gw` bilinear samples placed at the centres of
  a regular sub-grid; with `sampling_ratio` 0 the grid is adaptive, `ceil(roi_h / out_h)`
  rows (so it differs between RoIs);
- a sample further than one pixel outside the map is 0; one within a pixel of the border is
  clamped onto it.

Vectorised over RoIs: the samples of all RoIs are laid out as one ragged list (each RoI has
out_h * out_w * gh * gw of them), interpolated with four gathers on the flattened map, and
summed into their bins with `index_add_`. Gradients flow to the features (not to the boxes,
as in mmcv). Samples are processed in chunks so big RoIs at fine levels stay within memory.
"""
from __future__ import annotations

import torch
from torch import Tensor

CHUNK = 1 << 16  # samples interpolated at once: CHUNK * channels floats per temporary


def _ragged(counts: Tensor) -> tuple[Tensor, Tensor]:
    """For counts (K,): (owner (S,), position within owner (S,)), S = counts.sum()."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(len(owner), device=counts.device) - starts[owner]


def _axis(start: Tensor, size: Tensor, bins: int, grid: Tensor, bin_idx: Tensor, sample_idx: Tensor,
          length: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sample coordinates along one axis -> (low index, high index, high weight, inside)."""
    step = size / bins
    p = start + bin_idx * step + (sample_idx + 0.5) * step / grid.clamp(min=1)
    inside = (p >= -1.0) & (p <= length)
    p = p.clamp(min=0)
    low = p.floor().long()
    at_end = low >= length - 1
    low = torch.where(at_end, torch.full_like(low, length - 1), low)
    p = torch.where(at_end, low.to(p.dtype), p)
    high = torch.where(at_end, low, low + 1)
    return low, high, p - low, inside


def roi_align(features: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float = 1.0,
              sampling_ratio: int = 0, aligned: bool = True) -> Tensor:
    """features (B, C, H, W), rois (K, 5) [batch index, x1, y1, x2, y2] -> (K, C, out_h, out_w)."""
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    b, c, h, w = features.shape
    k = rois.shape[0]
    if k == 0:
        return features.new_zeros(0, c, out_h, out_w)
    rois = rois.detach().to(features.dtype)
    offset = 0.5 if aligned else 0.0
    x1, y1 = rois[:, 1] * spatial_scale - offset, rois[:, 2] * spatial_scale - offset
    rw, rh = rois[:, 3] * spatial_scale - offset - x1, rois[:, 4] * spatial_scale - offset - y1
    if not aligned:  # the legacy mode forces RoIs to at least one pixel
        rw, rh = rw.clamp(min=1), rh.clamp(min=1)
    if sampling_ratio > 0:
        gh = torch.full((k,), sampling_ratio, dtype=torch.long, device=rois.device)
        gw = gh.clone()
    else:  # ceil, as a float ceil cast to int: empty and negative RoIs get no samples
        gh = torch.ceil(rh / out_h).long().clamp(min=0)
        gw = torch.ceil(rw / out_w).long().clamp(min=0)
    count = (gh * gw).clamp(min=1).to(features.dtype)

    # Sample s of RoI r: index ((bin_y * out_w + bin_x) * gh + iy) * gw + ix.
    r, local = _ragged(out_h * out_w * gh * gw)
    gw_r, gh_r = gw[r], gh[r]
    ix = local % gw_r.clamp(min=1)
    iy = (local // gw_r.clamp(min=1)) % gh_r.clamp(min=1)
    bin_flat = local // (gw_r * gh_r).clamp(min=1)
    by, bx = bin_flat // out_w, bin_flat % out_w
    y_lo, y_hi, ly, in_y = _axis(y1[r], rh[r], out_h, gh_r, by, iy, h)
    x_lo, x_hi, lx, in_x = _axis(x1[r], rw[r], out_w, gw_r, bx, ix, w)
    base = rois[r, 0].long() * (h * w)
    weight = (in_y & in_x).to(features.dtype)
    target = r * (out_h * out_w) + bin_flat

    flat = features.permute(1, 0, 2, 3).reshape(c, b * h * w)
    out = features.new_zeros(c, k * out_h * out_w)
    for s in range(0, len(r), CHUNK):
        sl = slice(s, s + CHUNK)
        hy, hx = 1 - ly[sl], 1 - lx[sl]
        val = (flat[:, base[sl] + y_lo[sl] * w + x_lo[sl]] * (hy * hx)
               + flat[:, base[sl] + y_lo[sl] * w + x_hi[sl]] * (hy * lx[sl])
               + flat[:, base[sl] + y_hi[sl] * w + x_lo[sl]] * (ly[sl] * hx)
               + flat[:, base[sl] + y_hi[sl] * w + x_hi[sl]] * (ly[sl] * lx[sl]))
        out = out.index_add(1, target[sl], val * weight[sl])
    out = out.view(c, k, out_h, out_w).permute(1, 0, 2, 3)
    return out / count[:, None, None, None]
