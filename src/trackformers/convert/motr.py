"""Official MOTR checkpoints (megvii-research/MOTR) -> a trackformers MOTR model file.

Key layout: the official Deformable DETR names under `detector.` (the ResNet's
`backbone.0.body.` becomes `detector.backbone.`), the query interaction module
`track_embed.` under `qim.`. Dropped, with their reason: `transformer.decoder.bbox_embed.*`
(the same tensors as `bbox_embed.*`, checked equal) and `track_embed.norm3.*` (created by the
original but never used in its forward).

The config is read from the shapes: the detector's as for Deformable DETR (hidden size,
queries, classes, layers, FFN width, levels, points per head assuming 8 heads unless `--set
detector.nheads=...`, backbone depth and width, box refinement), plus the extra track
attention, the QIM width and whether it updates the positional half. The rest (dropout 0,
runtime thresholds) keeps the official DanceTrack/MOT17 defaults and can be changed with `--set`
(e.g. `--set miss_tolerance=2`).
"""
from __future__ import annotations

from trackformers.config import from_dict, parse_overrides, to_dict
from trackformers.convert import deformable_detr
from trackformers.convert.common import Converted, Rules, map_state_dict, require

RULES = Rules(
    renames=[(r"backbone\.0\.body\.", "detector.backbone."),
             (r"track_embed\.", "qim."),
             (r"", "detector.")],
    drops=[(r"transformer\.decoder\.bbox_embed\.", "alias of bbox_embed.* (box refinement)", "bbox_embed."),
           (r"track_embed\.norm3\.", "unused by the official forward", None)],
)


def infer_config(sd: dict, overrides: dict | None = None) -> dict:
    """The MOTR config dict (without `method`) that the official state dict's shapes imply,
    with `overrides` (a nested dict from --set) applied."""
    overrides = dict(overrides or {})
    # The detector half has the official Deformable DETR layout; MOTR trains with dropout 0.
    detector = deformable_detr.infer_config(sd, {"dropout": 0.0, **overrides.pop("detector", {})})
    qim = {"hidden_dim": int(require(sd, "track_embed.linear1.weight").shape[0]),
           "update_query_pos": "track_embed.linear_pos1.weight" in sd, **overrides.pop("qim", {})}
    return {"detector": to_dict(detector), "qim": qim,
            "extra_track_attn": "transformer.decoder.layers.0.update_attn.in_proj_weight" in sd, **overrides}


def convert(official: dict, overrides: list[str] | None = None) -> Converted:
    """Official MOTR state dict (float32) -> our state dict + config; `overrides` as `--set`."""
    from trackformers.trackers.motr import MOTR

    cfg = from_dict(MOTR.Config, infer_config(official, parse_overrides(overrides)))
    state_dict, dropped = map_state_dict(official, MOTR(cfg).state_dict(), RULES)
    return Converted(state_dict, {"method": "motr", **to_dict(cfg)}, dropped)
