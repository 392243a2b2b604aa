"""MeMOTR (Gao & Wang, ICCV 2023): track queries with long-term memory.

What MeMOTR adds to the shared tracker base (trackers/base.py) and detector core (models/):
- its decoder split: the first `detect_only_layers` decoder layers see the detect queries
  only ("detection decoder"); the rest see detect and track queries together;
- its query updater, the Temporal Interaction Module (`QueryUpdater`): confidence-weighted
  aggregation of this and the last confident output, attention across the frame's tracks
  against their long-term memory, and an EMA long-term memory; all gated by the track score;
- its runtime thresholds (birth / keep-alive / update / result) and its newborn
  initialisation from the penultimate decoder layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trackformers.models.dab import MLP, anchor_sine_embed
from trackformers.ops.box_ops import inverse_sigmoid


class FFN(nn.Module):
    """Residual feed-forward block followed by LayerNorm: `norm(x + linear2(relu(linear1(x))))`."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class QueryUpdater(nn.Module):
    """The Temporal Interaction Module: this frame's outputs -> next frame's track queries.

    For the K tracks of one video (all tensors have first dimension K), with O the last
    decoder layer's output, O_last the output of the last confident frame and M the long-term
    memory:
        w  = sigmoid(confidence_weight(O))                   channel-wise confidence
        S  = short_memory_fusion([w * O, O_last])            adaptive aggregation
        p  = query_pos_head(sine(box))                       position of the track
        A  = MHA(q = S + p, k = M + p, v = O)                attention across the K tracks
        E' = query_feat_ffn(LN(M + memory_ffn(LN(O + A))))   next content query
        M' = (1 - lambda) M + lambda O                       long-term memory EMA
    Only tracks with score > `update_thresh` take E', M', O_last' = O and the new reference
    box; the others keep query, box and memories (occluded tracks are frozen). In the
    Deformable-DETR variant (`learned_query_pos`), the query also carries a learned positional
    half updated by `norm_pos(P + linear_pos2(relu(linear_pos1(O))))`.
    """

    def __init__(self, d_model: int = 256, d_ffn: int = 2048, n_heads: int = 8, dropout: float = 0.0,
                 update_thresh: float = 0.5, memory_lambda: float = 0.01, learned_query_pos: bool = False,
                 eps: float = 1e-5):
        super().__init__()
        self.d_model, self.update_thresh, self.memory_lambda, self.eps = d_model, update_thresh, memory_lambda, eps
        self.learned_query_pos = learned_query_pos
        self.confidence_weight = MLP(d_model, d_model, d_model, 2)
        self.short_memory_fusion = MLP(2 * d_model, 2 * d_model, d_model, 2)
        self.memory_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.memory_norm = nn.LayerNorm(d_model)
        self.memory_ffn = FFN(d_model, d_ffn, dropout)
        self.query_feat_norm = nn.LayerNorm(d_model)
        self.query_feat_ffn = FFN(d_model, d_ffn, dropout)
        self.query_pos_head = MLP(2 * d_model, d_model, d_model, 2)
        self.dropout = nn.Dropout(dropout)
        if learned_query_pos:
            self.linear_pos1 = nn.Linear(d_model, d_model)
            self.linear_pos2 = nn.Linear(d_model, d_model)
            self.norm_pos = nn.LayerNorm(d_model)
        for p in self.parameters():  # official init
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, scores: Tensor, boxes: Tensor, ref_pts: Tensor, query_embed: Tensor,
                output_embed: Tensor, last_output: Tensor, long_memory: Tensor) -> dict[str, Tensor]:
        """One video's tracks -> their updated `ref_pts`, `query_embed`, `last_output`, `long_memory`.

        scores (K,) max class probability; boxes (K, 4) this frame's boxes; ref_pts (K, 4) logit
        boxes; query_embed (K, C) or (K, 2C) with a learned positional half first.
        """
        if len(scores) == 0:
            return dict(ref_pts=ref_pts, query_embed=query_embed, last_output=last_output, long_memory=long_memory)
        keep = (scores > self.update_thresh)[:, None]
        ref_pts = torch.where(keep, inverse_sigmoid(boxes.detach(), self.eps), ref_pts)
        memory = long_memory.detach()

        pos = self.query_pos_head(anchor_sine_embed(ref_pts.sigmoid(), self.d_model // 2))
        weight = self.confidence_weight(output_embed).sigmoid()
        short_memory = self.short_memory_fusion(torch.cat((weight * output_embed, last_output), dim=-1))
        attn = self.memory_attn((short_memory + pos)[None], (memory + pos)[None], output_embed[None],
                                need_weights=False)[0][0]
        x = self.memory_ffn(self.memory_norm(output_embed + self.dropout(attn)))
        content = self.query_feat_ffn(self.query_feat_norm(memory + self.dropout(x)))

        new_memory = (1 - self.memory_lambda) * memory + self.memory_lambda * output_embed
        if self.learned_query_pos:
            old_pos, old_content = query_embed.split(self.d_model, dim=-1)
            new_pos = self.norm_pos(old_pos + self.linear_pos2(F.relu(self.linear_pos1(output_embed))))
            query = torch.cat((new_pos, content), dim=-1)
        else:
            query = content
        return dict(ref_pts=ref_pts,
                    query_embed=torch.where(keep, query, query_embed),
                    last_output=torch.where(keep, output_embed, last_output),
                    long_memory=torch.where(keep, new_memory, long_memory))
