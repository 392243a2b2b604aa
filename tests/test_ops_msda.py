"""ms_deform_attn against a naive per-point bilinear loop, and the MSDeformAttn module."""
import math

import pytest
import torch

from trackformers.ops.msda import MSDeformAttn, ms_deform_attn, ms_deform_attn_gather


def naive_bilinear(img, x, y):
    """Sample img (D, H, W) at pixel coords (x, y) (0-d tensors, differentiable) with pixel
    centres at integers, zeros outside."""
    D, H, W = img.shape
    x0, y0 = math.floor(float(x.detach())), math.floor(float(y.detach()))
    out = img.new_zeros(D)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - abs(x - xi)) * (1 - abs(y - yi))
            if 0 <= xi < W and 0 <= yi < H:
                out = out + wgt * img[:, yi, xi]
    return out


def naive_ms_deform_attn(value, shapes, starts, loc, attn):
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = loc.shape
    out = value.new_zeros(N, Lq, M, D)
    for n in range(N):
        for q in range(Lq):
            for m in range(M):
                for lvl in range(L):
                    h, w = shapes[lvl]
                    img = value[n, starts[lvl]:starts[lvl] + h * w, m].T.reshape(D, h, w)
                    for p in range(P):
                        # [0,1] location -> pixel coords with centres at (i + 0.5) / size
                        x = loc[n, q, m, lvl, p, 0] * w - 0.5
                        y = loc[n, q, m, lvl, p, 1] * h - 0.5
                        out[n, q, m] += attn[n, q, m, lvl, p] * naive_bilinear(img, x, y)
    return out.view(N, Lq, M * D)


def make_inputs(dtype=torch.float64, N=2, Lq=3, M=2, D=3, P=2, shapes=((4, 5), (2, 3), (1, 1)), seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes_t = torch.tensor(shapes)
    starts = torch.cat([shapes_t.new_zeros(1), (shapes_t[:, 0] * shapes_t[:, 1]).cumsum(0)[:-1]])
    S = int((shapes_t[:, 0] * shapes_t[:, 1]).sum())
    L = len(shapes)
    value = torch.randn(N, S, M, D, generator=g, dtype=dtype)
    # Locations range a little outside [0, 1] so that zero padding is exercised.
    loc = torch.rand(N, Lq, M, L, P, 2, generator=g, dtype=dtype) * 1.3 - 0.15
    attn = torch.rand(N, Lq, M, L, P, generator=g, dtype=dtype)
    attn = attn / attn.sum((-1, -2), keepdim=True)
    return value, shapes_t, starts, loc, attn


def test_forward_matches_naive_loop():
    value, shapes, starts, loc, attn = make_inputs()
    ours = ms_deform_attn(value, shapes, starts, loc, attn)
    ref = naive_ms_deform_attn(value, shapes.tolist(), starts.tolist(), loc, attn)
    assert ours.shape == (2, 3, 2 * 3)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_gather_form_matches_naive_loop_and_runs_without_autograd_on_cpu(monkeypatch):
    value, shapes, starts, loc, attn = make_inputs(N=2, Lq=4, M=3, D=2, P=3, seed=3)
    ref = naive_ms_deform_attn(value, shapes.tolist(), starts.tolist(), loc, attn)
    torch.testing.assert_close(ms_deform_attn_gather(value, shapes, starts, loc, attn), ref, rtol=1e-12, atol=1e-12)
    monkeypatch.setenv("TRACKFORMERS_MSDA", "gather")
    with torch.no_grad():  # the opt-in CPU inference path of ms_deform_attn
        torch.testing.assert_close(ms_deform_attn(value, shapes, starts, loc, attn), ref, rtol=1e-12, atol=1e-12)


def test_gradients_match_naive_loop():
    value, shapes, starts, loc, attn = make_inputs(seed=1)
    grads = []
    for fn in (ms_deform_attn, lambda *a: naive_ms_deform_attn(a[0], shapes.tolist(), starts.tolist(), *a[3:])):
        v, l, a = (t.clone().requires_grad_() for t in (value, loc, attn))
        out = fn(v, shapes, starts, l, a)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads.append((v.grad, l.grad, a.grad))
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_gradcheck_float64():
    value, shapes, starts, loc, attn = make_inputs(N=1, Lq=2, M=2, D=2, P=2, shapes=((3, 4), (2, 2)), seed=2)
    inputs = tuple(t.requires_grad_() for t in (value, loc, attn))
    assert torch.autograd.gradcheck(lambda v, l, a: ms_deform_attn(v, shapes, starts, l, a), inputs)


def test_module_init_is_official_ring():
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    bias = attn.sampling_offsets.bias.view(4, 2, 3, 2)
    # head 0 points along +x, head 1 (90 deg) along +y, scaled by point index 1..P
    torch.testing.assert_close(bias[0, 1, :, 0], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(bias[1, 0, 2], torch.tensor([0.0, 3.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(bias[2, 0, 0], torch.tensor([-1.0, 0.0]), atol=1e-6, rtol=0)
    assert attn.sampling_offsets.weight.abs().sum() == 0 and attn.attention_weights.weight.abs().sum() == 0


@pytest.mark.parametrize("ref_dim,hw_normalizer", [(2, False), (4, False), (2, True)])
def test_module_sampling_locations(ref_dim, hw_normalizer):
    """The module's location rule, checked by recomputing it by hand and calling the core.
    hw_normalizer: TrackFormer's pre-fix rule (x offsets divided by H, y by W)."""
    torch.manual_seed(0)
    d, M, L, P = 8, 2, 2, 2
    attn = MSDeformAttn(d_model=d, n_levels=L, n_heads=M, n_points=P, offset_normalizer_hw=hw_normalizer).double()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    shapes = torch.tensor([[4, 6], [2, 3]])
    starts = torch.tensor([0, 24])
    N, Lq, S = 2, 5, 30
    query, value = torch.randn(N, Lq, d, dtype=torch.float64), torch.randn(N, S, d, dtype=torch.float64)
    ref = torch.rand(N, Lq, L, ref_dim, dtype=torch.float64)
    mask = torch.zeros(N, S, dtype=torch.bool)
    mask[1, 20:24] = True
    out = attn(query, ref, value, shapes, starts, mask)

    v = attn.value_proj(value).masked_fill(mask[..., None], 0).view(N, S, M, d // M)
    off = attn.sampling_offsets(query).view(N, Lq, M, L, P, 2)
    w = attn.attention_weights(query).view(N, Lq, M, L * P).softmax(-1).view(N, Lq, M, L, P)
    loc = torch.empty_like(off)
    for lvl, (h, wd) in enumerate(shapes.tolist()):
        for p in range(P):
            r = ref[:, :, None, lvl]
            if ref_dim == 2:
                nx, ny = (h, wd) if hw_normalizer else (wd, h)
                loc[:, :, :, lvl, p, 0] = r[..., 0] + off[:, :, :, lvl, p, 0] / nx
                loc[:, :, :, lvl, p, 1] = r[..., 1] + off[:, :, :, lvl, p, 1] / ny
            else:
                loc[:, :, :, lvl, p] = r[..., :2] + off[:, :, :, lvl, p] / P * r[..., 2:] * 0.5
    expected = attn.output_proj(naive_ms_deform_attn(v, shapes.tolist(), starts.tolist(), loc, w))
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
