"""MOTR's query interaction module (QIM): which rows become next frame's track queries, and how
their queries are updated (the temporal aggregation network, TAN).

Selection (`select_tracks`): at inference every row with an id; in training only rows whose
prediction overlaps their target (IoU > 0.5), then each is dropped with probability
`random_drop` and, with probability `fp_ratio` per surviving track, the unassigned row that
overlaps it most is inserted as a false-positive track query (it keeps id -1, so next frame it
is again a candidate for new objects or background).

Update (`QueryInteraction`): the selected rows attend to each other (q = k = positional half +
last decoder output, v = output), an FFN follows, and two residual branches update the
positional half and the content half of each 2C-wide query. The next reference point is the
predicted box centre (inverse sigmoid, detached).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from trackformers.ops.box_ops import inverse_sigmoid
from trackformers.trackers.base import TrackState, insert_false_positives  # noqa: F401 (re-exported)


class QueryInteraction(nn.Module):
    """The TAN update of track queries. Parameter names as the official `track_embed`
    (its unused `norm3` is not created; the converter drops it)."""

    def __init__(self, dim: int = 256, hidden_dim: int = 1024, nheads: int = 8, dropout: float = 0.0,
                 update_query_pos: bool = True, inverse_sigmoid_eps: float = 1e-5):
        super().__init__()
        self.update_query_pos = update_query_pos
        self.inverse_sigmoid_eps = inverse_sigmoid_eps
        self.self_attn = nn.MultiheadAttention(dim, nheads, dropout)
        self.linear1 = nn.Linear(dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        if update_query_pos:
            self.linear_pos1 = nn.Linear(dim, hidden_dim)
            self.linear_pos2 = nn.Linear(hidden_dim, dim)
            self.dropout_pos1, self.dropout_pos2 = nn.Dropout(dropout), nn.Dropout(dropout)
            self.norm_pos = nn.LayerNorm(dim)
        self.linear_feat1 = nn.Linear(dim, hidden_dim)
        self.linear_feat2 = nn.Linear(hidden_dim, dim)
        self.dropout_feat1, self.dropout_feat2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_feat = nn.LayerNorm(dim)
        for p in self.parameters():  # as the original: Xavier for every matrix
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, queries: Tensor, embeds: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """queries (n, 2C) [positional | content], embeds (n, C), boxes (n, 4) cxcywh
        -> (next queries (n, 2C), next 2-d reference logits (n, 2))."""
        refs = inverse_sigmoid(boxes[:, :2].detach(), self.inverse_sigmoid_eps)
        if len(queries) == 0:
            return queries, refs
        pos, feat = queries.chunk(2, dim=1)
        q = (pos + embeds)[:, None]  # (n, 1, C): the tracks of one frame are the sequence
        attn = self.self_attn(q, q, embeds[:, None], need_weights=False)[0][:, 0]
        t = self.norm1(embeds + self.dropout1(attn))
        t = self.norm2(t + self.dropout2(self.linear2(self.dropout(torch.relu(self.linear1(t))))))
        if self.update_query_pos:
            pos = self.norm_pos(pos + self.dropout_pos2(self.linear_pos2(self.dropout_pos1(torch.relu(self.linear_pos1(t))))))
        feat = self.norm_feat(feat + self.dropout_feat2(self.linear_feat2(self.dropout_feat1(torch.relu(self.linear_feat1(t))))))
        return torch.cat((pos, feat), dim=1), refs


def select_tracks(frame: TrackState, training: bool, random_drop: float = 0.0, fp_ratio: float = 0.0,
                  iou_gate: float = 0.5) -> Tensor:
    """Indices of the rows of this frame that become next frame's track queries, in order:
    the kept tracks in row order, then any inserted false positives."""
    if not training:
        return torch.nonzero(frame.ids >= 0).flatten()
    keep = (frame.ids >= 0) & (frame.iou > iou_gate)
    if random_drop > 0:
        keep &= torch.rand(len(frame), device=keep.device) > random_drop
    tracks = torch.nonzero(keep).flatten()
    if fp_ratio > 0:
        tracks = torch.cat((tracks, insert_false_positives(frame, tracks, fp_ratio)))
    return tracks
