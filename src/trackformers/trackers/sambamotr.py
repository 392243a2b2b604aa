"""SambaMOTR (Segu et al., ICLR 2025): MeMOTR with its query updater replaced by Samba.

What SambaMOTR changes in MeMOTR (trackers/memotr.py), and nothing else:
- the query updater (`SambaQueryUpdater`): each tracklet is one selective state-space model
  (models/samba.py), all advanced one step per frame as a set, their hidden states
  synchronised across tracklets; the output updates the track query residually;
- MaskObs: a track whose score is at most `update_thresh` advances its state from a zeroed
  observation and position and keeps its reference box (it is still updated, from its memory
  and the other tracklets);
- the per-row memory: the SSM state `hidden_state` (L, D, N) and `conv_history` (L, d_conv, D)
  of every track row, zeros at birth, carried, masked and dropped with the row;
- training on longer clips whose first `no_grad_frames` frames run without gradient.
Defaults: the official DanceTrack DAB config
(configs/sambamotr/dancetrack/dab_detr/train_residual_masking_sync_longer.yaml).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trackformers.models.dab import anchor_sine_embed
from trackformers.models.heads import FFN, MLP
from trackformers.models.samba import Samba
from trackformers.ops.box_ops import inverse_sigmoid
from trackformers.trackers.memotr import MeMOTR, MeMOTRConfig
from trackformers.trackers.query_tracker import FrameOutput
from trackformers.trackers.state import TrackState

SAMBA_STATE = ("hidden_state", "conv_history")


class SambaQueryUpdater(nn.Module):
    """This frame's decoder outputs -> next frame's track queries, through Samba (the
    official `UnifiedQueryUpdater` with RESIDUAL, MASKING, no REF_PTS_RESIDUAL / DETACH /
    UPDATE_ONLY_POS). For the K tracks of one video:
        keep   = score > update_thresh
        ref    = inverse_sigmoid(box) where keep, else the old reference
        p      = query_pos_head(sine(ref))
        u, p   = keep * O, keep * p                               MaskObs (`masking`)
        y, h', c' = Samba(u, p, h, c)
        E'     = norm_emb(E + query_feat_ffn(y))                  every track, confident or not
        P'     = norm_pos(P + linear_pos2(relu(linear_pos1(y))))  Deformable-DETR variant only
    In training, `samba_dropout` zeroes whole observations with that probability (no rescale,
    only where gradients are on, as the original's BatchDropout).
    """

    def __init__(self, d_model: int = 256, d_ffn: int = 128, num_heads: int = 4, state_dim: int = 16,
                 expand: int = 2, num_layers: int = 4, num_attn_layers: int = 1, conv_dim: int = 4,
                 with_self_attn: bool = True, with_self_attn_prior: bool = False, masking: bool = True,
                 dropout: float = 0.0, update_thresh: float = 0.5, learned_query_pos: bool = False,
                 eps: float = 1e-5):
        super().__init__()
        self.d_model, self.update_thresh, self.masking, self.dropout, self.eps = (
            d_model, update_thresh, masking, dropout, eps)
        self.learned_query_pos = learned_query_pos
        self.sequence_model = Samba(num_layers, d_model, state_dim, expand, conv_dim, num_heads, d_ffn,
                                    num_attn_layers, with_self_attn, with_self_attn_prior)
        self.query_pos_head = MLP(2 * d_model, d_model, d_model, 2)
        self.query_feat_ffn = FFN(d_model, d_ffn)
        self.norm_emb = nn.LayerNorm(d_model)
        if learned_query_pos:
            self.linear_pos1 = nn.Linear(d_model, d_model)
            self.linear_pos2 = nn.Linear(d_model, d_model)
            self.norm_pos = nn.LayerNorm(d_model)
        for p in self.parameters():  # official init, A_log and position_embedding included
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.sequence_model.state_shapes()

    def forward(self, scores: Tensor, boxes: Tensor, ref_pts: Tensor, query_embed: Tensor, output_embed: Tensor,
                hidden_state: Tensor, conv_history: Tensor) -> dict[str, Tensor]:
        """One video's K tracks -> their `ref_pts`, `query_embed`, `hidden_state`, `conv_history`.

        scores (K,) max class probability; boxes (K, 4) this frame's boxes; ref_pts (K, 4) logit
        boxes; query_embed (K, C) or (K, 2C) with a learned positional half first; output_embed
        (K, C) the last decoder layer's outputs; hidden_state / conv_history as `state_shapes`.
        """
        if len(scores) == 0:
            return dict(ref_pts=ref_pts, query_embed=query_embed, hidden_state=hidden_state,
                        conv_history=conv_history)
        keep = (scores > self.update_thresh)[:, None]
        ref_pts = torch.where(keep, inverse_sigmoid(boxes.detach(), self.eps), ref_pts)
        pos = self.query_pos_head(anchor_sine_embed(ref_pts.sigmoid(), self.d_model // 2))
        obs = output_embed
        if self.training and self.dropout > 0 and torch.is_grad_enabled():
            obs = obs * (torch.rand(len(obs), 1, device=obs.device) > self.dropout).to(obs.dtype)
        if self.masking:  # multiplied (not replaced) by 0, as the original: the same gradients
            obs, pos = obs * keep.to(obs.dtype), pos * keep.to(pos.dtype)
        y, hidden_state, conv_history = self.sequence_model(obs, pos, hidden_state, conv_history)

        content = query_embed[:, -self.d_model:]
        query = self.norm_emb(content + self.query_feat_ffn(y))
        if self.learned_query_pos:
            old_pos = query_embed[:, :self.d_model]
            query = torch.cat((self.norm_pos(old_pos + self.linear_pos2(F.relu(self.linear_pos1(y)))), query), -1)
        return dict(ref_pts=ref_pts, query_embed=query, hidden_state=hidden_state, conv_history=conv_history)


@dataclass
class SambaMOTRConfig(MeMOTRConfig):
    """MeMOTR's config with the Samba updater's settings (the official keys in lower case)."""
    state_dim: int = 16                # STATE_DIM: N, the state size per channel
    expand: int = 2                    # EXPAND: D = expand * hidden_dim channels
    conv_dim: int = 4                  # CONV_DIM: causal conv kernel = steps of history kept
    samba_num_layers: int = 4          # SAMBA_NUM_LAYERS
    samba_num_attn_layers: int = 1     # SAMBA_NUM_ATTN_LAYERS: synchronisation blocks per layer
    samba_num_heads: int = 4           # SAMBA_NUM_HEADS (of the synchronisation, width state_dim)
    samba_ffn_dim: int = 128           # SAMBA_FFN_DIM: synchronisation FFN and query_feat_ffn width
    with_self_attn: bool = True        # WITH_SELF_ATTN: synchronise hidden states across tracklets
    with_self_attn_prior: bool = False  # WITH_SELF_ATTN_PRIOR: synchronise exp(dA) h before adding dB x
    masking: bool = True               # MASKING: MaskObs for tracks with score <= update_thresh
    samba_dropout: float = 0.0         # SAMBA_DROPOUT: training, drop whole observations
    no_grad_frames: int = 5            # NO_GRAD_FRAMES: training, the first frames of a clip run without grad
    miss_tolerance: int = 50           # MISS_TOLERANCE (DanceTrack DAB; D-DETR 45, SportsMOT 50, BFT 20)


class SambaMOTR(MeMOTR):
    """MeMOTR with the Samba query updater. Track rows carry in `memory`: `labels`,
    `hidden_state` (L, D, N) and `conv_history` (L, d_conv, D) (MeMOTR's last output and
    long-term memory are not used by Samba and not carried)."""

    Config = SambaMOTRConfig

    def __init__(self, cfg: SambaMOTRConfig):
        super().__init__(cfg)
        d = cfg.detector
        if cfg.no_grad_frames < 0:
            raise ValueError(f"no_grad_frames must be >= 0, got {cfg.no_grad_frames}")
        self.query_updater = SambaQueryUpdater(
            d.hidden_dim, cfg.samba_ffn_dim, cfg.samba_num_heads, cfg.state_dim, cfg.expand, cfg.samba_num_layers,
            cfg.samba_num_attn_layers, cfg.conv_dim, cfg.with_self_attn, cfg.with_self_attn_prior, cfg.masking,
            cfg.samba_dropout, cfg.update_thresh, learned_query_pos=not cfg.use_dab, eps=d.inverse_sigmoid_eps)

    # -- state ------------------------------------------------------------------------
    updater_memory = ("hidden_state", "conv_history")

    def _memory(self, n: int, like: Tensor) -> dict[str, Tensor]:
        """Per-row memory of n fresh rows: a zero SSM state (a newborn's) and the label."""
        state = {k: like.new_zeros(n, *s) for k, s in self.query_updater.state_shapes().items()}
        return {"labels": torch.zeros(n, dtype=torch.long, device=like.device), **state}

    def newborn(self, out: FrameOutput, rows: Tensor) -> TrackState:
        """MeMOTR's newborn (query, reference, label) with a zero Samba state."""
        r = super().newborn(out, rows)
        return r.replace(memory={**self._memory(len(r), r.embeds), "labels": r.memory["labels"]})

    @property
    def no_grad_frames(self) -> int:
        """Training: the first frames of every clip run without gradient (official NO_GRAD_FRAMES)."""
        return self.cfg.no_grad_frames
