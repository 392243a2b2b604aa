"""Quasi-dense similarity learning (Pang et al., QDTrack, CVPR 2021): the embedding head and
its two losses, shared by QDTrack on Faster R-CNN and on Deformable DETR.

- `QuasiDenseEmbedHead`: RoI features (N, C, 7, 7) -> 4 x [conv3x3 (no bias) + GroupNorm + ReLU]
  -> flatten -> FC 1024 + ReLU -> `fc_embed` 256 (mmtracking's names: convs.i.conv, convs.i.gn,
  fcs.0, fc_embed). With `num_convs=0, roi_size=1` it embeds vectors (DETR decoder queries).
- `pair_targets`: 1 where a key RoI and a reference RoI belong to the same object.
- `multi_pos_cross_entropy`: log(1 + sum_{k+} sum_{k-} exp(v.k- - v.k+)) per key RoI (weight 0.25).
- `l2_aux_loss`: squared error of cosine similarities to the 0/1 targets, negatives shifted
  by the margin 0.1 and clamped to [0, 1], hardest negatives up to 3x the positives (weight 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvGN(nn.Module):
    """mmcv ConvModule(conv3x3 without bias, GroupNorm, ReLU): keys `conv`, `gn`."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.gn = nn.GroupNorm(groups, c_out)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.gn(self.conv(x)))


class QuasiDenseEmbedHead(nn.Module):
    def __init__(self, in_channels: int = 256, num_convs: int = 4, conv_channels: int = 256, roi_size: int = 7,
                 fc_channels: int = 1024, embed_channels: int = 256, gn_groups: int = 32):
        super().__init__()
        self.convs = nn.ModuleList(ConvGN(in_channels if i == 0 else conv_channels, conv_channels, gn_groups)
                                   for i in range(num_convs))
        flat = (conv_channels if num_convs else in_channels) * roi_size * roi_size
        self.fcs = nn.ModuleList([nn.Linear(flat, fc_channels)])
        self.fc_embed = nn.Linear(fc_channels, embed_channels)
        nn.init.xavier_uniform_(self.fcs[0].weight)
        nn.init.zeros_(self.fcs[0].bias)
        nn.init.normal_(self.fc_embed.weight, std=0.01)
        nn.init.zeros_(self.fc_embed.bias)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = conv(x)
        x = x.flatten(1)
        for fc in self.fcs:
            x = F.relu(fc(x))
        return self.fc_embed(x)


def pair_targets(key_ids: Tensor, ref_ids: Tensor) -> Tensor:
    """(K, R) float: 1 where key RoI k and reference RoI r have the same object id (ids < 0:
    background / no object, never a match)."""
    return ((key_ids[:, None] == ref_ids[None, :]) & (key_ids[:, None] >= 0)).float()


def multi_pos_cross_entropy(sim: Tensor, targets: Tensor) -> Tensor:
    """Mean over key rows with at least one positive of log(1 + sum_{p, n} exp(s_n - s_p))
    = logsumexp over [s_n - s_p for all positive p, negative n] + [0]. 0 without valid rows."""
    pos, neg = targets > 0, targets <= 0
    valid = pos.any(1)
    if not bool(valid.any()):
        return sim.sum() * 0
    sim, pos, neg = sim[valid], pos[valid], neg[valid]
    # (k, p, n) pairwise differences, masked to positive p and negative n
    diff = sim[:, None, :] - sim[:, :, None]
    mask = pos[:, :, None] & neg[:, None, :]
    diff = diff.masked_fill(~mask, float("-inf")).flatten(1)
    diff = torch.cat([diff, diff.new_zeros(len(diff), 1)], 1)
    return torch.logsumexp(diff, 1).mean()


def l2_aux_loss(cos: Tensor, targets: Tensor, neg_margin: float = 0.1, neg_pos_ub: int = 3) -> Tensor:
    """Mean squared error of clamp(cos - margin on negatives, 0, 1) to targets over the positives
    and the (at most neg_pos_ub x #positives) negatives with the largest errors."""
    pos = targets > 0
    pred = torch.where(pos, cos, cos - neg_margin).clamp(0, 1)
    err = (pred - targets) ** 2
    num_pos, num_neg = int(pos.sum()), int((~pos).sum())
    weight = torch.ones_like(err)
    if neg_pos_ub > 0 and num_neg / (num_pos + 1e-6) > neg_pos_ub:
        keep = num_pos * neg_pos_ub
        neg_err = torch.where(pos, torch.full_like(err, -1.0), err.detach()).flatten()
        chosen = torch.zeros_like(neg_err, dtype=torch.bool)
        chosen[neg_err.topk(keep).indices] = True
        weight = (pos.flatten() | chosen).to(err.dtype).view_as(err)
    n = weight.sum()
    return (err * weight).sum() / n.clamp(min=1)


def track_losses(key_embeds: Tensor, ref_embeds: Tensor, key_ids: Tensor, ref_ids: Tensor,
                 weight: float = 0.25, aux_weight: float = 1.0) -> dict[str, Tensor]:
    """Both losses for one key / reference pair: key_embeds (K, D) of the key frame's positive
    RoIs with their object ids, ref_embeds (R, D) of all reference RoIs (ids -1 for negatives)."""
    targets = pair_targets(key_ids, ref_ids)
    sim = key_embeds @ ref_embeds.t()
    cos = F.normalize(key_embeds, dim=1) @ F.normalize(ref_embeds, dim=1).t()
    return {"loss_track": weight * multi_pos_cross_entropy(sim, targets),
            "loss_track_aux": aux_weight * l2_aux_loss(cos, targets)}


def mean_track_losses(pairs: list[tuple[Tensor, Tensor, Tensor, Tensor]], weight: float = 0.25,
                      aux_weight: float = 1.0) -> dict[str, Tensor]:
    """`track_losses` averaged over the key / reference pairs of a batch: each pair is
    (key_embeds, ref_embeds, key_ids, ref_ids) as `track_losses` takes them."""
    total = {"loss_track": 0.0, "loss_track_aux": 0.0}
    for pair in pairs:
        for k, v in track_losses(*pair, weight, aux_weight).items():
            total[k] = total[k] + v / len(pairs)
    return total
