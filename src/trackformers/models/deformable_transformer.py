"""The Deformable DETR transformer, split into pieces trackers can call on their own.

- `DeformableTransformerEncoderLayer` / `DeformableTransformerEncoder`: deformable
  self-attention over the flattened multi-level memory.
- `DeformableTransformerDecoderLayer`: self-attention -> deformable cross-attention -> FFN
  (post-norm; official names: `norm2` after self-attention, `norm1` after cross-attention).
  Its three steps are separate methods so a tracker can subclass it and insert its own.
- `DeformableTransformerDecoder`: runs the layers over any number of queries (detect queries
  plus a tracker's track queries, with an optional self-attention mask), with optional
  iterative box refinement, and returns every layer's hidden states and references.
- `DeformableTransformer`: level embeddings, input flattening, the encoder, and the
  single-stage (learned queries) or two-stage (encoder proposals) query preparation.

Parameter names follow the official implementation, so its checkpoints load with
(almost) identity key mapping.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trackformers.ops.box_ops import inverse_sigmoid
from trackformers.ops.msda import MSDeformAttn
from trackformers.models.position_encoding import sine_embed

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _clones(module: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList(copy.deepcopy(module) for _ in range(n))


def with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    """x + pos, or x when there is no positional embedding."""
    return x if pos is None else x + pos


class DeformableTransformerEncoderLayer(nn.Module):
    """Deformable self-attention over the memory, then FFN; post-norm.

    `forward(src, pos, reference_points (B, S, L, 2), spatial_shapes, level_start_index,
    padding_mask)` -> (B, S, C)."""

    def __init__(self, d_model: int = 256, d_ffn: int = 1024, dropout: float = 0.1, activation: str = "relu",
                 n_levels: int = 4, n_heads: int = 8, n_points: int = 4, offset_normalizer_hw: bool = False):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points, offset_normalizer_hw)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = ACTIVATIONS[activation]
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor | None, reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        src2 = self.self_attn(with_pos(src, pos), reference_points, src, spatial_shapes, level_start_index, padding_mask)
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout2(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout3(src2))


class DeformableTransformerEncoder(nn.Module):
    """`num_layers` copies of an encoder layer over the flattened levels."""

    def __init__(self, encoder_layer: DeformableTransformerEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers

    @staticmethod
    def get_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor, device=None) -> Tensor:
        """Pixel centres of every level, normalised by the valid extent, seen from every level.

        Returns (B, S, L, 2): token s's centre (x, y) in each level's [0, 1] coordinates.
        """
        refs = []
        for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
            ref_y, ref_x = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                                          torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                                          indexing="ij")
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
            refs.append(torch.stack((ref_x, ref_y), -1))
        return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]

    def forward(self, src: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, valid_ratios: Tensor,
                pos: Tensor | None = None, padding_mask: Tensor | None = None) -> Tensor:
        """src (B, S, C) flattened levels -> memory (B, S, C)."""
        reference_points = self.get_reference_points(spatial_shapes, valid_ratios, src.device)
        for layer in self.layers:
            src = layer(src, pos, reference_points, spatial_shapes, level_start_index, padding_mask)
        return src


class DeformableTransformerDecoderLayer(nn.Module):
    """Self-attention -> deformable cross-attention -> FFN, each followed by add & LayerNorm."""

    def __init__(self, d_model: int = 256, d_ffn: int = 1024, dropout: float = 0.1, activation: str = "relu",
                 n_levels: int = 4, n_heads: int = 8, n_points: int = 4, offset_normalizer_hw: bool = False):
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points, offset_normalizer_hw)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = ACTIVATIONS[activation]
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def self_attention(self, tgt: Tensor, query_pos: Tensor | None, attn_mask: Tensor | None = None,
                       key_padding_mask: Tensor | None = None) -> Tensor:
        """Queries attend to each other (q = k = tgt + pos, v = tgt). attn_mask: (Q, Q) or
        (B * heads, Q, Q), True where attention is NOT allowed; key_padding_mask (B, Q)."""
        q = k = with_pos(tgt, query_pos)
        tgt2 = self.self_attn(q, k, tgt, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                              need_weights=False)[0]
        return self.norm2(tgt + self.dropout2(tgt2))

    def cross_attention(self, tgt: Tensor, query_pos: Tensor | None, reference_points: Tensor, memory: Tensor,
                        spatial_shapes: Tensor, level_start_index: Tensor,
                        memory_padding_mask: Tensor | None = None) -> Tensor:
        tgt2 = self.cross_attn(with_pos(tgt, query_pos), reference_points, memory, spatial_shapes,
                               level_start_index, memory_padding_mask)
        return self.norm1(tgt + self.dropout1(tgt2))

    def ffn(self, tgt: Tensor) -> Tensor:
        tgt2 = self.linear2(self.dropout3(self.activation(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(tgt2))

    def forward(self, tgt: Tensor, query_pos: Tensor | None, reference_points: Tensor, memory: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor, memory_padding_mask: Tensor | None = None,
                self_attn_mask: Tensor | None = None, query_padding_mask: Tensor | None = None) -> Tensor:
        """tgt, query_pos (B, Q, C); reference_points (B, Q, L, 2|4) per level -> (B, Q, C)."""
        tgt = self.self_attention(tgt, query_pos, self_attn_mask, query_padding_mask)
        tgt = self.cross_attention(tgt, query_pos, reference_points, memory, spatial_shapes, level_start_index,
                                   memory_padding_mask)
        return self.ffn(tgt)


def refine_boxes(delta: Tensor, reference: Tensor, eps: float = 1e-5) -> Tensor:
    """Apply a box head's output `delta` (logit space) to sigmoid-space references.

    4-d references shift all four coordinates; 2-d references (points) shift only the
    centre, and w, h come from `delta` alone. Returns sigmoid-space boxes (.., 4).
    """
    ref = inverse_sigmoid(reference, eps)
    if reference.shape[-1] == 4:
        return (delta + ref).sigmoid()
    return torch.cat((delta[..., :2] + ref, delta[..., 2:]), -1).sigmoid()


class DeformableTransformerDecoder(nn.Module):
    """Stack of decoder layers over an arbitrary set of queries.

    `forward` returns the hidden states and the references after every layer. With
    `bbox_embed` (one box head per layer), references are refined after each layer
    (iterative box refinement) and detached before the next one, as in the original.
    Subclasses change the positional query per layer by overriding `layer_query_pos`
    (DAB-style anchor queries).
    """

    def __init__(self, decoder_layer: DeformableTransformerDecoderLayer, num_layers: int,
                 inverse_sigmoid_eps: float = 1e-5):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.inverse_sigmoid_eps = inverse_sigmoid_eps

    @staticmethod
    def level_references(reference_points: Tensor, valid_ratios: Tensor) -> Tensor:
        """(B, Q, 2|4) references in valid-image coordinates -> (B, Q, L, 2|4) per level."""
        if reference_points.shape[-1] == 4:
            valid_ratios = torch.cat((valid_ratios, valid_ratios), -1)
        return reference_points[:, :, None] * valid_ratios[:, None]

    def layer_query_pos(self, lid: int, output: Tensor, reference_points_input: Tensor,
                        query_pos: Tensor | None) -> Tensor | None:
        """Positional query for layer `lid`; the plain decoder uses the given one throughout."""
        return query_pos

    def next_references(self, lid: int, refined: Tensor, reference_points: Tensor) -> Tensor:
        """References for layer `lid + 1` from layer `lid`'s refined boxes (detached, as the
        original); subclasses may keep some rows' references (MeMOTR's detection-only layer)."""
        return refined.detach()

    def forward(self, tgt: Tensor, reference_points: Tensor, memory: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, valid_ratios: Tensor, query_pos: Tensor | None = None,
                memory_padding_mask: Tensor | None = None, self_attn_mask: Tensor | None = None,
                query_padding_mask: Tensor | None = None,
                bbox_embed: nn.ModuleList | None = None) -> tuple[Tensor, Tensor]:
        """Decode queries against the encoder memory.

        Args:
            tgt: (B, Q, C) content queries (detect and/or track queries, any Q).
            reference_points: (B, Q, 2) points or (B, Q, 4) boxes, sigmoid space.
            memory, spatial_shapes, level_start_index, valid_ratios, memory_padding_mask:
                from `DeformableTransformer.encode`.
            query_pos: (B, Q, C) positional queries (or None).
            self_attn_mask: (Q, Q) or (B * heads, Q, Q) bool, True = not allowed.
            query_padding_mask: (B, Q) True on padded queries (batched clips of unequal size).
            bbox_embed: per-layer box heads for iterative refinement (None: references fixed).
        Returns:
            hs (num_layers, B, Q, C) and references (num_layers, B, Q, 2|4) after each layer.
        """
        output = tgt
        hs, refs = [], []
        for lid, layer in enumerate(self.layers):
            reference_points_input = self.level_references(reference_points, valid_ratios)
            pos = self.layer_query_pos(lid, output, reference_points_input, query_pos)
            output = layer(output, pos, reference_points_input, memory, spatial_shapes, level_start_index,
                           memory_padding_mask, self_attn_mask, query_padding_mask)
            if bbox_embed is not None:
                new = refine_boxes(bbox_embed[lid](output), reference_points, self.inverse_sigmoid_eps)
                reference_points = self.next_references(lid, new, reference_points)
            hs.append(output)
            refs.append(reference_points)
        return torch.stack(hs), torch.stack(refs)


@dataclass
class EncoderOutput:
    """The flattened encoder memory and what the decoder needs to read it."""
    memory: Tensor              # (B, S, C)
    padding_mask: Tensor        # (B, S) True on padding
    spatial_shapes: Tensor      # (L, 2) (H, W)
    level_start_index: Tensor   # (L,)
    valid_ratios: Tensor        # (B, L, 2) (w, h) fraction of each level that is image


def valid_ratio(mask: Tensor) -> Tensor:
    """(B, H, W) padding mask -> (B, 2) fraction (w, h) of the map that is not padding."""
    _, H, W = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1)
    valid_w = (~mask[:, 0, :]).sum(1)
    return torch.stack((valid_w.float() / W, valid_h.float() / H), -1)


class DeformableTransformer(nn.Module):
    """Level embeddings + encoder + decoder, with single-stage or two-stage queries.

    Single-stage: queries come as `query_embed` (Q, 2C) = [positional | content], and the
    initial 2-d reference points are sigmoid(`reference_points`(positional)). Two-stage:
    every encoder token proposes a box; the top `two_stage_num_proposals` become 4-d
    references and, through `pos_trans`, the queries.

    `decoder` replaces the plain decoder (a subclass: DAB anchors, MOTR's track attention);
    `reference_points_head=False` leaves out the 2-d reference Linear (anchor-box queries
    carry their own references).
    """

    def __init__(self, d_model: int = 256, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 1024, dropout: float = 0.1, activation: str = "relu",
                 num_feature_levels: int = 4, dec_n_points: int = 4, enc_n_points: int = 4,
                 two_stage: bool = False, two_stage_num_proposals: int = 300, inverse_sigmoid_eps: float = 1e-5,
                 offset_normalizer_hw: bool = False, decoder: DeformableTransformerDecoder | None = None,
                 reference_points_head: bool = True):
        super().__init__()
        self.d_model, self.nhead = d_model, nhead
        self.two_stage, self.two_stage_num_proposals = two_stage, two_stage_num_proposals
        self.inverse_sigmoid_eps = inverse_sigmoid_eps
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        enc_layer = DeformableTransformerEncoderLayer(d_model, dim_feedforward, dropout, activation,
                                                      num_feature_levels, nhead, enc_n_points, offset_normalizer_hw)
        self.encoder = DeformableTransformerEncoder(enc_layer, num_encoder_layers)
        if decoder is None:
            dec_layer = DeformableTransformerDecoderLayer(d_model, dim_feedforward, dropout, activation,
                                                          num_feature_levels, nhead, dec_n_points, offset_normalizer_hw)
            decoder = DeformableTransformerDecoder(dec_layer, num_decoder_layers, inverse_sigmoid_eps)
        self.decoder = decoder
        if two_stage:
            self.enc_output = nn.Linear(d_model, d_model)
            self.enc_output_norm = nn.LayerNorm(d_model)
            self.pos_trans = nn.Linear(2 * d_model, 2 * d_model)
            self.pos_trans_norm = nn.LayerNorm(2 * d_model)
        elif reference_points_head:
            self.reference_points = nn.Linear(d_model, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        if hasattr(self, "reference_points"):
            nn.init.xavier_uniform_(self.reference_points.weight, gain=1.0)
            nn.init.constant_(self.reference_points.bias, 0.0)
        nn.init.normal_(self.level_embed)

    def flatten(self, srcs: list[Tensor], masks: list[Tensor], pos_embeds: list[Tensor]):
        """Levels (B, C, H_l, W_l) -> src (B, S, C), mask (B, S), pos + level embedding (B, S, C),
        spatial_shapes (L, 2), level_start_index (L,), valid_ratios (B, L, 2)."""
        src_flat, mask_flat, pos_flat, shapes = [], [], [], []
        for lvl, (src, mask, pos) in enumerate(zip(srcs, masks, pos_embeds)):
            shapes.append(src.shape[-2:])
            src_flat.append(src.flatten(2).transpose(1, 2))
            mask_flat.append(mask.flatten(1))
            pos_flat.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=srcs[0].device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(1), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([valid_ratio(m) for m in masks], 1)
        return (torch.cat(src_flat, 1), torch.cat(mask_flat, 1), torch.cat(pos_flat, 1), spatial_shapes,
                level_start_index, valid_ratios)

    def encode(self, srcs: list[Tensor], masks: list[Tensor], pos_embeds: list[Tensor]) -> EncoderOutput:
        """Run the encoder over the projected levels (their masks and position encodings)."""
        src, mask, pos, shapes, starts, valid_ratios = self.flatten(srcs, masks, pos_embeds)
        memory = self.encoder(src, shapes, starts, valid_ratios, pos, mask)
        return EncoderOutput(memory, mask, shapes, starts, valid_ratios)

    def single_stage_queries(self, query_embed: Tensor, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
        """query_embed (Q, 2C) -> tgt (B, Q, C), query_pos (B, Q, C), 2-d references (B, Q, 2)."""
        query_pos, tgt = torch.split(query_embed, self.d_model, dim=1)
        query_pos = query_pos.unsqueeze(0).expand(batch_size, -1, -1)
        tgt = tgt.unsqueeze(0).expand(batch_size, -1, -1)
        return tgt, query_pos, self.reference_points(query_pos).sigmoid()

    def encoder_proposals(self, enc: EncoderOutput) -> tuple[Tensor, Tensor]:
        """Two-stage: one box proposal per token (logit space, +inf where invalid) and the
        memory transformed for the proposal heads."""
        memory, mask = enc.memory, enc.padding_mask
        B = memory.shape[0]
        proposals, start = [], 0
        for lvl, (h, w) in enumerate(enc.spatial_shapes.tolist()):
            level_mask = mask[:, start:start + h * w].view(B, h, w)
            valid_h = (~level_mask[:, :, 0]).sum(1)
            valid_w = (~level_mask[:, 0, :]).sum(1)
            grid_y, grid_x = torch.meshgrid(torch.linspace(0, h - 1, h, dtype=torch.float32, device=memory.device),
                                            torch.linspace(0, w - 1, w, dtype=torch.float32, device=memory.device),
                                            indexing="ij")
            grid = torch.stack((grid_x, grid_y), -1)
            scale = torch.stack((valid_w, valid_h), -1).view(B, 1, 1, 2)
            grid = (grid.unsqueeze(0).expand(B, -1, -1, -1) + 0.5) / scale
            wh = torch.ones_like(grid) * 0.05 * (2.0 ** lvl)
            proposals.append(torch.cat((grid, wh), -1).view(B, -1, 4))
            start += h * w
        proposals = torch.cat(proposals, 1)
        valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1, keepdim=True)
        proposals = torch.log(proposals / (1 - proposals))
        invalid = mask.unsqueeze(-1) | ~valid
        proposals = proposals.masked_fill(invalid, float("inf"))
        memory = memory.masked_fill(invalid, 0.0)
        return self.enc_output_norm(self.enc_output(memory)), proposals

    def two_stage_queries(self, enc: EncoderOutput, class_embed: nn.Module, bbox_embed: nn.Module):
        """Top-scoring encoder proposals -> tgt, query_pos, 4-d references, and the proposal
        logits / unactivated boxes for the encoder loss."""
        output_memory, proposals = self.encoder_proposals(enc)
        enc_class = class_embed(output_memory)
        enc_coord_unact = bbox_embed(output_memory) + proposals
        topk = torch.topk(enc_class[..., 0], self.two_stage_num_proposals, dim=1)[1]
        topk_coords = torch.gather(enc_coord_unact, 1, topk.unsqueeze(-1).repeat(1, 1, 4)).detach()
        pos_trans = self.pos_trans_norm(self.pos_trans(sine_embed(topk_coords.sigmoid(), self.d_model // 2)))
        query_pos, tgt = torch.split(pos_trans, self.d_model, dim=2)
        return tgt, query_pos, topk_coords.sigmoid(), enc_class, enc_coord_unact

    def decode(self, enc: EncoderOutput, query_embed: Tensor | None = None, class_embed: nn.ModuleList | None = None,
               bbox_embed: nn.ModuleList | None = None, refine: bool = False) -> dict:
        """Decoder on the detector's own queries over an encoder output.

        `class_embed` / `bbox_embed` are the detector's per-layer heads: with `refine` the
        box heads refine the references layer by layer; two-stage uses the extra head at
        index num_decoder_layers for the proposals.
        Returns dict(hs, init_reference, inter_references[, enc_outputs_class, enc_outputs_coord_unact]).
        """
        out = {}
        if self.two_stage:
            n = self.decoder.num_layers
            tgt, query_pos, reference_points, out["enc_outputs_class"], out["enc_outputs_coord_unact"] = \
                self.two_stage_queries(enc, class_embed[n], bbox_embed[n])
        else:
            tgt, query_pos, reference_points = self.single_stage_queries(query_embed, enc.memory.shape[0])
        hs, inter_references = self.decoder(tgt, reference_points, enc.memory, enc.spatial_shapes,
                                            enc.level_start_index, enc.valid_ratios, query_pos, enc.padding_mask,
                                            bbox_embed=bbox_embed if refine else None)
        out.update(hs=hs, init_reference=reference_points, inter_references=inter_references)
        return out

    def forward(self, srcs: list[Tensor], masks: list[Tensor], pos_embeds: list[Tensor],
                query_embed: Tensor | None = None, class_embed: nn.ModuleList | None = None,
                bbox_embed: nn.ModuleList | None = None, refine: bool = False) -> dict:
        """`encode` then `decode`; the result also holds the EncoderOutput under "encoder"."""
        enc = self.encode(srcs, masks, pos_embeds)
        return dict(self.decode(enc, query_embed, class_embed, bbox_embed, refine), encoder=enc)
