"""Quasi-dense losses against their formulas written as loops."""
import math

import torch

from trackformers.models.quasi_dense import (QuasiDenseEmbedHead, l2_aux_loss, multi_pos_cross_entropy,
                                             pair_targets)


def test_pair_targets():
    t = pair_targets(torch.tensor([3, 5, 3]), torch.tensor([5, 3, -1, 3]))
    assert t.tolist() == [[0, 1, 0, 1], [1, 0, 0, 0], [0, 1, 0, 1]]
    assert pair_targets(torch.tensor([-1]), torch.tensor([-1])).tolist() == [[0]]


def test_multi_pos_cross_entropy_equals_formula():
    g = torch.Generator().manual_seed(0)
    sim = torch.randn(5, 7, generator=g) * 3
    t = (torch.rand(5, 7, generator=g) < 0.3).float()
    t[2] = 0  # a row without positives does not count
    rows = []
    for k in range(5):
        ps = [j for j in range(7) if t[k, j] > 0]
        ns = [j for j in range(7) if t[k, j] == 0]
        if ps:
            rows.append(math.log(1 + sum(math.exp(sim[k, n] - sim[k, p]) for p in ps for n in ns)))
    assert abs(multi_pos_cross_entropy(sim, t).item() - sum(rows) / len(rows)) < 1e-5
    assert multi_pos_cross_entropy(sim, torch.zeros_like(sim)).item() == 0


def test_l2_aux_loss_equals_formula_with_hard_mining():
    g = torch.Generator().manual_seed(1)
    cos = torch.rand(4, 10, generator=g) * 2 - 1
    t = torch.zeros(4, 10)
    t[0, 1] = t[2, 3] = 1  # 2 positives, 38 negatives -> the 6 hardest negatives
    errs_pos = [(min(max(cos[0, 1].item(), 0), 1) - 1) ** 2, (min(max(cos[2, 3].item(), 0), 1) - 1) ** 2]
    errs_neg = sorted((min(max(cos[i, j].item() - 0.1, 0), 1)) ** 2 for i in range(4) for j in range(10)
                      if t[i, j] == 0)[::-1][:6]
    expected = (sum(errs_pos) + sum(errs_neg)) / 8
    assert abs(l2_aux_loss(cos, t).item() - expected) < 1e-6


def test_embed_head_shapes_and_keys():
    head = QuasiDenseEmbedHead(in_channels=16, conv_channels=16, fc_channels=32, embed_channels=8, gn_groups=4)
    assert head(torch.randn(3, 16, 7, 7)).shape == (3, 8)
    keys = set(head.state_dict())
    assert {"convs.0.conv.weight", "convs.3.gn.bias", "fcs.0.weight", "fc_embed.bias"} <= keys
    assert "convs.0.conv.bias" not in keys
