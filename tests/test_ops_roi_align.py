"""RoIAlign against a per-RoI, per-sample loop of the mmcv formula written here."""
import math

import torch

from trackformers.ops.roi_align import roi_align


def _bilinear(f, y, x):
    h, w = f.shape[-2:]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(f.shape[0], dtype=f.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    yl, xl = int(y), int(x)
    if yl >= h - 1:
        yh = yl = h - 1
        y = float(yl)
    else:
        yh = yl + 1
    if xl >= w - 1:
        xh = xl = w - 1
        x = float(xl)
    else:
        xh = xl + 1
    ly, lx = y - yl, x - xl
    hy, hx = 1 - ly, 1 - lx
    return hy * hx * f[:, yl, xl] + hy * lx * f[:, yl, xh] + ly * hx * f[:, yh, xl] + ly * lx * f[:, yh, xh]


def _loop(features, rois, out, scale, ratio, aligned=True):
    res = torch.zeros(len(rois), features.shape[1], out, out, dtype=features.dtype)
    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = ratio if ratio > 0 else max(math.ceil(rh / out), 0)
        gw = ratio if ratio > 0 else max(math.ceil(rw / out), 0)
        bh, bw = rh / out, rw / out
        for ph in range(out):
            for pw in range(out):
                acc = torch.zeros(features.shape[1], dtype=features.dtype)
                for iy in range(gh):
                    y = sy + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + pw * bw + (ix + 0.5) * bw / gw
                        acc += _bilinear(features[int(b)], y, x)
                res[k, :, ph, pw] = acc / max(gh * gw, 1)
    return res


def _rois(g, n, batch, size):
    xy = torch.rand(n, 2, generator=g) * size * 1.2 - size * 0.1
    wh = torch.rand(n, 2, generator=g) * size * 0.6
    return torch.cat([torch.randint(0, batch, (n, 1), generator=g).double(), xy, xy + wh], 1)


def test_roi_align_equals_loop_adaptive_and_fixed():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 9, 13, generator=g, dtype=torch.float64)
    rois = _rois(g, 12, 2, 52.0)
    rois = torch.cat([rois, torch.tensor([[1, -30.0, -30.0, -10.0, -12.0],    # fully outside the image
                                          [0, 40.0, 20.0, 70.0, 60.0],       # over the right/bottom border
                                          [1, 8.0, 8.0, 8.0, 8.0],           # empty
                                          [0, 20.0, 20.0, 10.0, 12.0]], dtype=torch.float64)])  # inverted
    for ratio in (0, 2):
        got = roi_align(feats, rois, 3, spatial_scale=0.25, sampling_ratio=ratio)
        torch.testing.assert_close(got, _loop(feats, rois, 3, 0.25, ratio), rtol=1e-10, atol=1e-10)
    got = roi_align(feats, rois, 2, spatial_scale=0.25, sampling_ratio=0, aligned=False)
    torch.testing.assert_close(got, _loop(feats, rois, 2, 0.25, 0, aligned=False), rtol=1e-10, atol=1e-10)


def test_roi_align_hand_worked_and_empty():
    # a linear ramp f(y, x) = x: a 2x2-pixel RoI at scale 1 averages to the RoI centre's x - 0.5 (aligned)
    feats = torch.arange(8.0).repeat(8, 1)[None, None]
    out = roi_align(feats, torch.tensor([[0, 2.0, 2.0, 6.0, 6.0]]), 1)
    assert out.shape == (1, 1, 1, 1) and abs(out.item() - 3.5) < 1e-6
    assert roi_align(feats, torch.zeros(0, 5), 7).shape == (0, 1, 7, 7)


def test_roi_align_gradient_matches_loop():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(1, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    rois = _rois(g, 5, 1, 28.0)
    w = torch.randn(5, 2, 2, 2, generator=g, dtype=torch.float64)
    (roi_align(feats, rois, 2, 0.25) * w).sum().backward()
    ref = feats.detach().clone().requires_grad_(True)
    (_loop(ref, rois, 2, 0.25, 0) * w).sum().backward()
    torch.testing.assert_close(feats.grad, ref.grad)
