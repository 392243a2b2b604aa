"""Official MeMOTR checkpoints (MCG-NJU/MeMOTR, DAB and Deformable-DETR variants) -> MeMOTR.

    trackformers convert --from memotr memotr_dancetrack.pth --out models/memotr_dancetrack

Inferred from the shapes: DAB or not (`det_anchor` present), hidden size, queries, classes,
FFN width, encoder/decoder depth, feature levels, sampling points per head, backbone depth
and width. Not visible in the shapes, and set to the official values unless `--set` says
otherwise: attention heads (8), image position-encoding temperature (20), anchor sine order
(x, y, w, h) and temperature (10000), inverse-sigmoid eps (1e-5), the detection-only first
decoder layer (1), the runtime thresholds (DanceTrack: 0.5 / 0.5 / 0.5, miss tolerance 30).

Given a COCO DAB-Deformable-DETR (or Deformable DETR) checkpoint instead, it writes the
MeMOTR that the original's training starts from (`init_from_detector`), e.g. for a config's
`pretrained:`.
"""
from __future__ import annotations

import re

import torch

from trackformers.config import from_dict, merge, parse_overrides, to_dict
from trackformers.convert.common import Converted, Rules, layer_count, map_state_dict, require
from trackformers.convert.deformable_detr import infer_backbone


def rules(use_dab: bool) -> Rules:
    """Official MeMOTR names -> ours: the detector half under `detector.` with Deformable DETR
    names (MeMOTR's detect queries are the DAB detector's `tgt_embed`/`refpoint_embed`, or the
    Deformable DETR detector's `query_embed`), the anchor MLPs under the decoder's `anchor_pos`."""
    queries = "detector.tgt_embed.weight" if use_dab else "detector.query_embed.weight"
    return Rules(
        renames=[
            (r"det_query_embed$", queries),
            (r"det_anchor$", "detector.refpoint_embed.weight"),
            (r"backbone\.backbone\.backbone\.", "detector.backbone."),
            (r"feature_projs\.", "detector.input_proj."),
            (r"transformer\.decoder\.(query_scale|ref_point_head)\.", r"detector.transformer.decoder.anchor_pos.\1."),
            (r"transformer\.", "detector.transformer."),
            (r"(class_embed|bbox_embed)\.", r"detector.\1."),
            (r"query_updater\.confidence_weight_net\.0\.", "query_updater.confidence_weight."),
        ],
        drops=[
            (r"transformer\.decoder\.bbox_embed\.", "box-refinement alias of bbox_embed (the same tensors)",
             "bbox_embed."),
        ],
    )


def infer_config(sd: dict, nheads: int = 8) -> dict:
    """The MeMOTR config (as a dict) that the official state dict's shapes imply."""
    use_dab = "det_anchor" in sd
    queries = require(sd, "det_query_embed")
    hidden = int(queries.shape[1]) // (1 if use_dab else 2)
    levels = int(require(sd, "transformer.level_embed").shape[0])
    per_head = lambda key: int(require(sd, key).shape[0]) // (nheads * levels)  # noqa: E731
    detector = {
        **infer_backbone(sd, "backbone.backbone.backbone."),
        "hidden_dim": hidden, "nheads": nheads, "num_feature_levels": levels,
        "enc_layers": layer_count(sd, "transformer.encoder.layers."),
        "dec_layers": layer_count(sd, "transformer.decoder.layers."),
        "dim_feedforward": int(require(sd, "transformer.encoder.layers.0.linear1.weight").shape[0]),
        "enc_n_points": per_head("transformer.encoder.layers.0.self_attn.attention_weights.weight"),
        "dec_n_points": per_head("transformer.decoder.layers.0.cross_attn.attention_weights.weight"),
        "num_queries": int(queries.shape[0]),
        "num_classes": int(require(sd, "class_embed.0.weight").shape[0]),
        "with_box_refine": True, "two_stage": False, "dropout": 0.0, "pos_temperature": 20.0,
    }
    return {"use_dab": use_dab, "detector": detector}


def convert(official: dict, overrides: list[str] | None = None) -> Converted:
    """Official MeMOTR state dict (float16 or 32) -> our state dict, config and dropped keys.

    A COCO DAB-Deformable-DETR / Deformable DETR checkpoint (what the official training starts
    from) gives instead a MeMOTR initialisation: see `init_from_detector`.
    """
    from trackformers.trackers.memotr import MeMOTR

    sd = {k: v.float() if v.is_floating_point() else v for k, v in official.items()}
    extra = parse_overrides(overrides)
    if "det_query_embed" not in sd and any(k.startswith("backbone.0.body.") for k in sd):
        return init_from_detector(sd, extra)
    nheads = int(extra.get("detector", {}).get("nheads", 8))
    cfg = from_dict(MeMOTR.Config, merge(infer_config(sd, nheads), extra))
    expected = MeMOTR(cfg).state_dict()
    state_dict, dropped = map_state_dict(sd, expected, rules(cfg.use_dab))
    return Converted(state_dict, {"method": "memotr", **to_dict(cfg)}, dropped)


def init_from_detector(sd: dict, extra: dict, method: str = "memotr") -> Converted:
    """A MeMOTR to train, initialised as the original's `load_pretrained_model` does from a COCO
    detector checkpoint (DAB-Deformable-DETR, or Deformable DETR for `use_dab: false`):
    every detector tensor by name, the COCO class head reduced to its first 1-3 foreground
    rows (person, ...) for 1-3 classes and left at its initialisation otherwise (BDD100K), the
    query updater at its initialisation. The MeMOTR constants (position temperature 20,
    inverse-sigmoid eps 1e-5, anchor order x, y, w, h) are MeMOTR's, as the original's
    fine-tuning uses them; `--set` gives the rest (e.g. detector.num_classes=8). `method`: a
    MeMOTR-family tracker of the registry with the same detector (e.g. sambamotr)."""
    from trackformers.convert import dab_deformable_detr, deformable_detr
    from trackformers.trackers.registry import method_class
    tracker = method_class(method)

    use_dab = "tgt_embed.weight" in sd
    reader = dab_deformable_detr if use_dab else deformable_detr
    shaped = reader.infer_config(sd, {"nheads": int(extra.get("detector", {}).get("nheads", 8))})
    keep = ("backbone_depth", "backbone_width", "hidden_dim", "nheads", "num_feature_levels", "enc_layers",
            "dec_layers", "dim_feedforward", "enc_n_points", "dec_n_points", "num_queries")
    inferred = {"use_dab": use_dab, "detector": {"with_box_refine": True, "two_stage": False, "dropout": 0.0,
                                                 "pos_temperature": 20.0, "num_classes": 1,
                                                 **{k: getattr(shaped, k) for k in keep}}}
    cfg = from_dict(tracker.Config, merge(inferred, extra))
    torch.manual_seed(0)  # the parts the detector does not provide start from MeMOTR's own init
    fresh = tracker(cfg).state_dict()
    renames = [(r"backbone\.0\.body\.", "detector.backbone."),
               (r"transformer\.decoder\.(query_scale|ref_point_head)\.", r"detector.transformer.decoder.anchor_pos.\1."),
               (r"", "detector.")]
    drops = [(r"transformer\.decoder\.bbox_embed\.(\d+)\.", "box-refinement alias of bbox_embed.N", r"bbox_embed.\1.")]
    K = cfg.detector.num_classes
    sd = dict(sd)
    for key in [k for k in sd if k.startswith("class_embed.")]:
        if K <= 3:  # the original keeps COCO rows 1..K (person, bicycle, car)
            sd[key] = sd[key][1:1 + K]
        else:
            drops.append((re.escape(key), f"COCO class head not used for {K} classes (initialised)", None))
    expected = {k: v for k, v in fresh.items() if k.startswith("detector.")
                and not (K > 3 and k.startswith("detector.class_embed."))}
    state_dict, dropped = map_state_dict(sd, expected, Rules(renames, drops))
    state_dict = {**fresh, **state_dict}  # query updater (and an unused class head) at init
    return Converted(state_dict, {"method": method, **to_dict(cfg)}, dropped)
