"""DAB anchor-box positional queries against a computation written out by hand."""
import math

import pytest
import torch

from trackformers.models.dab import AnchorQueryPos, anchor_sine_embed


def naive_sine(box, num_feats, temperature, order):
    """One box, one channel at a time: sin/cos alternate over frequency pairs per coordinate."""
    out = []
    for c in order:
        v = box[c] * 2 * math.pi
        for i in range(num_feats):
            freq = temperature ** (2 * (i // 2) / num_feats)
            out.append(math.sin(v / freq) if i % 2 == 0 else math.cos(v / freq))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("order,perm", [("xywh", (0, 1, 2, 3)), ("yxwh", (1, 0, 2, 3))])
def test_anchor_sine_embed_matches_naive(order, perm):
    boxes = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(0))
    got = anchor_sine_embed(boxes.double(), num_feats=8, temperature=10000, order=order)
    assert got.shape == (2, 3, 32)
    for b in range(2):
        for q in range(3):
            want = naive_sine(boxes[b, q].tolist(), 8, 10000, perm)
            torch.testing.assert_close(got[b, q], want, rtol=0, atol=1e-6)


def test_sine_orders_differ_only_by_swapping_x_and_y():
    boxes = torch.tensor([[0.2, 0.7, 0.3, 0.1]])
    xy = anchor_sine_embed(boxes, 4, order="xywh")
    yx = anchor_sine_embed(boxes, 4, order="yxwh")
    torch.testing.assert_close(xy[:, :4], yx[:, 4:8])
    torch.testing.assert_close(xy[:, 4:8], yx[:, :4])
    torch.testing.assert_close(xy[:, 8:], yx[:, 8:])
    with pytest.raises(ValueError, match="order"):
        anchor_sine_embed(boxes, 4, order="whxy")


def test_anchor_query_pos_scales_after_layer_zero():
    torch.manual_seed(0)
    d = 8
    mod = AnchorQueryPos(d_model=d, temperature=20, order="xywh").double()
    tgt = torch.randn(1, 5, d, dtype=torch.float64)
    anchors = torch.rand(1, 5, 4, dtype=torch.float64)

    def mlp(layers, x):  # two linear layers with a ReLU between them
        h = torch.relu(x @ layers[0].weight.T + layers[0].bias)
        return h @ layers[1].weight.T + layers[1].bias

    raw = torch.stack([mlp(mod.ref_point_head.layers, naive_sine(a.tolist(), d // 2, 20, (0, 1, 2, 3)))
                       for a in anchors[0]])[None]
    torch.testing.assert_close(mod(tgt, anchors, layer=0), raw)
    torch.testing.assert_close(mod(tgt, anchors, layer=3), mlp(mod.query_scale.layers, tgt) * raw)
