"""Official DAB-Deformable-DETR checkpoints (IDEA-Research/DAB-DETR) -> DABDeformableDETR.

    trackformers convert --from dab_deformable_detr dab_deformable_detr.pth --out models/dab_ddetr

Our names are the official ones except the backbone (`backbone.0.body.X` -> `backbone.X`) and
the anchor MLPs, which live in the decoder's `anchor_pos` (`transformer.decoder.query_scale` ->
`transformer.decoder.anchor_pos.query_scale`, same for `ref_point_head`). The box heads'
second registration under `transformer.decoder.bbox_embed.` is dropped after checking it is
identical. Shapes give the Deformable DETR options (as `--from deformable_detr`); the DAB
constants they cannot show keep the official values unless `--set` says otherwise: anchor sine
order (y, x, w, h), anchor temperature 10000, inverse-sigmoid eps 1e-3, image position
temperature 10000.
"""
from __future__ import annotations

import dataclasses

import torch

from trackformers.config import from_dict, parse_overrides, to_dict
from trackformers.convert import deformable_detr
from trackformers.convert.common import Converted, Rules, map_state_dict, require
from trackformers.models.dab import DABDeformableDETR, DABDetectorConfig
from trackformers.models.detector import DetectorConfig

RULES = Rules(
    renames=[(r"backbone\.0\.body\.", "backbone."),
             (r"transformer\.decoder\.(query_scale|ref_point_head)\.", r"transformer.decoder.anchor_pos.\1.")],
    drops=[(r"transformer\.decoder\.bbox_embed\.(\d+)\.", "box-refinement alias of bbox_embed.N", r"bbox_embed.\1.")],
)
DAB_ONLY = {f.name for f in dataclasses.fields(DABDetectorConfig)} - {f.name for f in dataclasses.fields(DetectorConfig)}


def infer_config(sd: dict, overrides: dict | None = None) -> DABDetectorConfig:
    """DABDetectorConfig from the official tensors' shapes, `overrides` (from --set) first."""
    overrides = dict(overrides or {})
    dab = {k: overrides.pop(k) for k in list(overrides) if k in DAB_ONLY}
    tgt = require(sd, "tgt_embed.weight")
    require(sd, "refpoint_embed.weight")
    # The Deformable DETR reader counts queries from `query_embed`; DAB's are `tgt_embed` rows.
    shaped = {**sd, "query_embed.weight": torch.empty(tgt.shape[0], 2 * tgt.shape[1])}
    defaults = {"dropout": DABDetectorConfig.dropout, "inverse_sigmoid_eps": DABDetectorConfig.inverse_sigmoid_eps}
    detector = deformable_detr.infer_config(shaped, {**defaults, **overrides})
    return from_dict(DABDetectorConfig, {**to_dict(detector), "with_box_refine": True, **dab})


def convert(official: dict, overrides: list[str] | None = None) -> Converted:
    """Official DAB-Deformable-DETR state dict -> Converted(state_dict, config, dropped)."""
    sd = {k: v.float() if v.is_floating_point() else v for k, v in official.items()}
    cfg = infer_config(sd, parse_overrides(overrides))
    expected = DABDeformableDETR(cfg).state_dict()
    state_dict, dropped = map_state_dict(sd, expected, RULES)
    return Converted(state_dict, {"method": "dab_deformable_detr", **to_dict(cfg)}, dropped)
