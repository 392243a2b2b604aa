"""Official QDTrack checkpoints (mmtracking / mmdet 3.x, SysCV/qdtrack) -> QDTrack.

    trackformers convert --from qdtrack qdtrack_faster-rcnn_r50_fpn_4e_mot17.pth --out models/qdtrack_mot17

Key layouts (reference §4.7), detected by prefix:
- mmtracking / mmdet 3.x: `detector.{backbone,neck,rpn_head,roi_head.bbox_head}.*`, `track_head.embed_head.*`
- SysCV, new code:        `detector.*`, `track_head.track_head.*`
- SysCV, 2021 files:      `backbone.*`, `neck.*`, `rpn_head.*`, `roi_head.bbox_head.*`, `roi_head.track_head.*`
Our modules carry mmdet's names, so only the prefixes change; BatchNorm `num_batches_tracked`
counters are dropped (our BN is frozen). The official network reads BGR images minus the
pixel mean with std 1; ours reads RGB in [0, 1] (`input.mean`, `input.std` are that same
normalisation rescaled), so conv1's input channels are reversed here.
From the shapes: ResNet depth and width, classes, FC widths, embedding size and convs. Not
in the shapes: the ResNet style (caffe, as the MOT17 configs; `--set detector.backbone_style=pytorch`
and ImageNet `input.mean`/`input.std` for the BDD100K / TAO models) and GroupNorm groups (32).
"""
from __future__ import annotations

import re

from trackformers.config import from_dict, merge, parse_overrides, to_dict
from trackformers.convert.common import ConversionError, Converted, Rules, layer_count, map_state_dict, require

LAYOUTS = {  # layout -> (detector prefix, embedding head prefix)
    "mmtracking": ("detector.", "track_head.embed_head."),
    "syscv": ("detector.", "track_head.track_head."),
    "syscv_2021": ("", "roi_head.track_head."),
}


def detect_layout(sd: dict) -> str:
    for name, (det, embed) in LAYOUTS.items():
        if f"{det}backbone.conv1.weight" in sd and any(k.startswith(embed) for k in sd):
            return name
    raise ConversionError("not a QDTrack checkpoint: expected detector.backbone.* / backbone.* and an embedding "
                          "head (track_head.embed_head.*, track_head.track_head.* or roi_head.track_head.*)")


def infer_config(sd: dict, det: str, embed: str) -> dict:
    blocks = tuple(layer_count(sd, f"{det}backbone.layer{i}.") for i in range(1, 5))
    depth = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101}.get(blocks)
    if depth is None:
        raise ConversionError(f"backbone blocks per stage {blocks}: only ResNet-50 / 101 Faster R-CNNs are supported")
    return {
        "detector": {
            "backbone_depth": depth,
            "backbone_width": int(require(sd, f"{det}backbone.conv1.weight").shape[0]),
            "fpn_channels": int(require(sd, f"{det}neck.fpn_convs.0.conv.weight").shape[0]),
            "fc_channels": int(require(sd, f"{det}roi_head.bbox_head.shared_fcs.0.weight").shape[0]),
            "num_classes": int(require(sd, f"{det}roi_head.bbox_head.fc_cls.weight").shape[0]) - 1,
        },
        "embed": {
            "num_convs": layer_count(sd, f"{embed}convs."),
            "conv_channels": int(require(sd, f"{embed}convs.0.conv.weight").shape[0]),
            "fc_channels": int(require(sd, f"{embed}fcs.0.weight").shape[0]),
            "embed_channels": int(require(sd, f"{embed}fc_embed.weight").shape[0]),
        },
    }


def convert(official: dict, overrides: list[str] | None = None) -> Converted:
    from trackformers.trackers.qdtrack import QDTrack

    sd = {k: v.float() if v.is_floating_point() else v for k, v in official.items()}
    layout = detect_layout(sd)
    det, embed = LAYOUTS[layout]
    cfg = from_dict(QDTrack.Config, merge(infer_config(sd, det, embed), parse_overrides(overrides)))
    conv1 = f"{det}backbone.conv1.weight"
    sd[conv1] = sd[conv1].flip(1)  # BGR -> RGB input channels
    rules = Rules(renames=[(re.escape(embed), "embed_head."),
                           (re.escape(det) + r"(backbone|neck|rpn_head|roi_head\.bbox_head)\.", r"detector.\1.")],
                  drops=[(r".*num_batches_tracked$", "BatchNorm step counter (our BN is frozen)", None)])
    expected = QDTrack(cfg).state_dict()
    state_dict, dropped = map_state_dict(sd, expected, rules)
    return Converted(state_dict, {"method": "qdtrack", **to_dict(cfg)}, dropped)
