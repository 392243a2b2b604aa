"""Samba (Segu et al., ICLR 2025): a set of selective state-space models, one per tracklet,
advanced one step per frame together, with hidden states synchronised across the set.

Shapes for the K sequences (tracklets) of one video, d = d_model, D = expand * d, N = d_state:
    x (K, d) this step's input; h (K, D, N) hidden state; history (K, d_conv, D) the last
    d_conv conv inputs (oldest first). The whole stack carries h (K, L, D, N) and history
    (K, L, d_conv, D) for its L layers.

Parameter names are those of the official `models/query_updaters/samba.py` (mattiasegu/
SambaMOTR), so its checkpoints load by name. The numerics follow that code step by step,
including its zero-order-hold A / Euler B discretisation and its head split (see
`SyncAttention`). Nothing here loops over tracklets: every step is a batched tensor op.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trackformers.models.heads import FFN


class SyncAttention(nn.Module):
    """Multi-head attention over a set, with separate q/k/v projection weights (the official
    `MultiheadAttention` names `{q,k,v}_proj_weight`, `{q,k,v}_proj_bias`, `out_proj`).

    Heads are split as the official code splits them: the projected (B, T, E) tensor is
    *reshaped* (`view`) to (B, H, T, E/H), not transposed, and the (B, H, T, E/H) result is
    transposed back to (B, T, H, E/H). For T > 1 a "head" therefore sees chunks of E/H
    channels of several set members. The released checkpoints were trained with it, so it
    is reproduced, not corrected.
    """

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"SyncAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        for name in ("q", "k", "v"):
            self.register_parameter(f"{name}_proj_weight", nn.Parameter(torch.empty(embed_dim, embed_dim)))
            self.register_parameter(f"{name}_proj_bias", nn.Parameter(torch.zeros(embed_dim)))
            nn.init.xavier_uniform_(getattr(self, f"{name}_proj_weight"))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        B, T, E = query.shape
        H = self.num_heads
        q = F.linear(query, self.q_proj_weight, self.q_proj_bias).reshape(B, H, T, E // H)
        k = F.linear(key, self.k_proj_weight, self.k_proj_bias).reshape(B, H, T, E // H)
        v = F.linear(value, self.v_proj_weight, self.v_proj_bias).reshape(B, H, T, E // H)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, E))


class SambaBlock(nn.Module):
    """One synchronised selective SSM layer (the official `SambaBlock`, the Mamba mixer):

        x, z    = in_proj(u)                                   (K, D) each
        history = [history[1:], x]                             causal conv over the last d_conv steps
        x       = input_layernorm(silu(conv1d(history)))
        delta, B, C = x_proj(x);  delta = softplus(dt_proj(delta));  A = -exp(A_log)
        h       = exp(delta A) h + delta B x                   zero-order hold A, Euler B
        h       = h + exp(sync_scaling) Sync(h)                synchronisation across the K tracklets
        y       = out_proj((C h + D x) * silu(z))
    (`with_self_attn_prior`: the synchronisation acts on exp(delta A) h before delta B x is added.)
    """

    def __init__(self, d_model: int = 256, d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 num_heads: int = 4, d_ffn: int = 128, num_attn_layers: int = 1, with_self_attn: bool = True,
                 with_self_attn_prior: bool = False):
        super().__init__()
        D = expand * d_model
        self.d_inner, self.d_state, self.d_conv = D, d_state, d_conv
        self.dt_rank = math.ceil(d_model / 16)
        self.with_self_attn, self.with_self_attn_prior = with_self_attn, with_self_attn_prior
        self.in_proj = nn.Linear(d_model, 2 * D, bias=False)
        self.conv1d = nn.Conv1d(D, D, kernel_size=d_conv, groups=D, bias=True)
        self.x_proj = nn.Linear(D, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, D, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1.0, d_state + 1)).repeat(D, 1))
        self.D = nn.Parameter(torch.ones(D))
        self.out_proj = nn.Linear(D, d_model, bias=False)
        if with_self_attn:  # the synchronisation: one set of weights shared by the D channels
            self.self_attn_layers = nn.ModuleList(SyncAttention(d_state, num_heads) for _ in range(num_attn_layers))
            self.ffn_layers = nn.ModuleList(FFN(d_state, d_ffn) for _ in range(num_attn_layers))
            self.pre_norms = nn.ModuleList(nn.LayerNorm(d_state) for _ in range(num_attn_layers))
            self.norms = nn.ModuleList(nn.LayerNorm(d_state) for _ in range(num_attn_layers))
        self.input_layernorm = nn.LayerNorm(D)
        self.pos_emb_scaling = nn.Parameter(torch.zeros(1))
        self.sync_scaling = nn.Parameter(torch.zeros(1))
        self.position_embedding = nn.Parameter(torch.randn(D, d_state))  # which channel a token is

    def sync_hidden_states(self, h: Tensor) -> Tensor:
        """(K, D, N) -> (K, D, N): per channel, the K tracklets' N-dim states attend to each other."""
        x = h.transpose(0, 1)  # (D, K, N): channels are the batch, tracklets the set
        pos = (self.position_embedding * self.pos_emb_scaling.exp())[:, None, :]
        for attn, ffn, pre_norm, norm in zip(self.self_attn_layers, self.ffn_layers, self.pre_norms, self.norms):
            q = pre_norm(x) + pos
            x = ffn(norm(attn(q, q, x) + x))
        return x.transpose(0, 1)

    def forward(self, u: Tensor, h: Tensor, history: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """u (K, d), h (K, D, N), history (K, d_conv, D) -> output (K, d), next h, next history."""
        x, z = self.in_proj(u).split(self.d_inner, dim=-1)
        history = torch.cat((history[:, 1:], x[:, None]), 1)
        x = F.conv1d(history.transpose(1, 2), self.conv1d.weight, self.conv1d.bias, groups=self.d_inner)[..., 0]
        x = self.input_layernorm(F.silu(x))

        delta, B, C = self.x_proj(x).split((self.dt_rank, self.d_state, self.d_state), dim=-1)
        delta = F.softplus(self.dt_proj(delta))                           # (K, D)
        A = -torch.exp(self.A_log)                                        # (D, N)
        decay = torch.exp(delta[..., None] * A)                           # (K, D, N)
        drive = delta[..., None] * B[:, None, :] * x[..., None]           # (K, D, N)
        if self.with_self_attn and self.with_self_attn_prior:
            h = decay * h
            h = h + self.sync_scaling.exp() * self.sync_hidden_states(h) + drive
        else:
            h = decay * h + drive
            if self.with_self_attn:
                h = h + self.sync_scaling.exp() * self.sync_hidden_states(h)
        y = (h * C[:, None, :]).sum(-1) + x * self.D
        return self.out_proj(y * F.silu(z)), h, history


class SambaLayer(nn.Module):
    """Pre-norm residual wrapper (the official `ResidualBlock`): u + mixer(norm(u))."""

    def __init__(self, d_model: int, **block):
        super().__init__()
        self.mixer = SambaBlock(d_model, **block)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, u: Tensor, h: Tensor, history: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, h, history = self.mixer(self.norm(u), h, history)
        return u + y, h, history


class Samba(nn.Module):
    """The stack: before each of the L layers the position is added again, then a residual
    Samba layer; a final LayerNorm `norm_f`. One step for all K tracklets at once."""

    def __init__(self, num_layers: int = 4, d_model: int = 256, d_state: int = 16, expand: int = 2,
                 d_conv: int = 4, num_heads: int = 4, d_ffn: int = 128, num_attn_layers: int = 1,
                 with_self_attn: bool = True, with_self_attn_prior: bool = False):
        super().__init__()
        self.num_layers, self.d_inner, self.d_state, self.d_conv = num_layers, expand * d_model, d_state, d_conv
        self.layers = nn.ModuleList(
            SambaLayer(d_model, d_state=d_state, expand=expand, d_conv=d_conv, num_heads=num_heads, d_ffn=d_ffn,
                       num_attn_layers=num_attn_layers, with_self_attn=with_self_attn,
                       with_self_attn_prior=with_self_attn_prior)
            for _ in range(num_layers))
        self.norm_f = nn.LayerNorm(d_model)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-tracklet state shapes: a newborn tracklet starts from zeros of these."""
        L, D = self.num_layers, self.d_inner
        return {"hidden_state": (L, D, self.d_state), "conv_history": (L, self.d_conv, D)}

    def forward(self, x: Tensor, pos: Tensor, h: Tensor, history: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x, pos (K, d); h (K, L, D, N); history (K, L, d_conv, D) -> y (K, d), next h, next history."""
        hs, hists = [], []
        for i, layer in enumerate(self.layers):
            x, h_i, hist_i = layer(x + pos, h[:, i], history[:, i])
            hs.append(h_i)
            hists.append(hist_i)
        return self.norm_f(x), torch.stack(hs, 1), torch.stack(hists, 1)
