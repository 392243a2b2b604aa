"""Official Deformable DETR checkpoints (fundamentalvision/Deformable-DETR) -> DeformableDETR.

Our parameter names are the official ones except the backbone (`backbone.0.body.X` ->
`backbone.X`). Box refinement and two-stage store the per-layer heads twice (as
`class_embed.N` / `bbox_embed.N` and again under `transformer.decoder.`): the second copy is
dropped after checking it is identical. Layer counts, widths, levels, points, queries, classes,
box refinement and two-stage are read from the tensor shapes; what shapes cannot tell (heads,
dilation, position-encoding constants, two-stage query count) comes from `--set` or defaults
to the official values.
"""
from __future__ import annotations

from trackformers.config import ConfigError, from_dict, parse_overrides, to_dict
from trackformers.convert.common import ConversionError, Converted, Rules, layer_count, map_state_dict, require
from trackformers.models.detector import DeformableDETR, DetectorConfig

RULES = Rules(
    renames=[(r"backbone\.0\.body\.", "backbone.")],
    drops=[(r"transformer\.decoder\.bbox_embed\.(\d+)\.", "box-refinement alias of bbox_embed.N", r"bbox_embed.\1."),
           (r"transformer\.decoder\.class_embed\.(\d+)\.", "two-stage alias of class_embed.N", r"class_embed.\1.")],
)

# (block kind, blocks per stage) -> depth
RESNET_DEPTHS = {("basic", (2, 2, 2, 2)): 18, ("basic", (3, 4, 6, 3)): 34,
                 ("bottleneck", (3, 4, 6, 3)): 50, ("bottleneck", (3, 4, 23, 3)): 101}


def infer_backbone(sd: dict, prefix: str) -> dict:
    """ResNet depth and width from a torchvision-named state dict under `prefix`."""
    width = require(sd, prefix + "conv1.weight").shape[0]
    blocks = tuple(layer_count(sd, f"{prefix}layer{i}.") for i in range(1, 5))
    kind = "bottleneck" if f"{prefix}layer1.0.conv3.weight" in sd else "basic"
    if (kind, blocks) not in RESNET_DEPTHS:
        raise ConversionError(f"{prefix}layer*: unsupported ResNet layout ({kind} blocks {blocks})")
    return {"backbone_depth": RESNET_DEPTHS[kind, blocks], "backbone_width": int(width)}


def infer_config(sd: dict, overrides: dict | None = None) -> DetectorConfig:
    """DetectorConfig from the official tensors' shapes, `overrides` (a nested dict from --set)
    taking precedence."""
    overrides = dict(overrides or {})
    level_embed = require(sd, "transformer.level_embed")
    levels, hidden = level_embed.shape
    enc = "transformer.encoder.layers.0."
    dec = "transformer.decoder.layers.0."
    nheads = int(overrides.get("nheads", DetectorConfig.nheads))

    def points(prefix: str) -> int:
        n = require(sd, prefix + "attention_weights.weight").shape[0]
        if n % (nheads * levels):
            raise ConversionError(f"{prefix}attention_weights.weight: {n} rows do not split into "
                                  f"{nheads} heads x {levels} levels (set nheads with --set nheads=M)")
        return n // (nheads * levels)

    two_stage = "transformer.enc_output.weight" in sd
    inferred = dict(
        infer_backbone(sd, "backbone.0.body."),
        hidden_dim=int(hidden), nheads=nheads, num_feature_levels=int(levels),
        enc_layers=layer_count(sd, "transformer.encoder.layers."),
        dec_layers=layer_count(sd, "transformer.decoder.layers."),
        dim_feedforward=int(require(sd, enc + "linear1.weight").shape[0]),
        enc_n_points=points(enc + "self_attn."), dec_n_points=points(dec + "cross_attn."),
        num_classes=int(require(sd, "class_embed.0.weight").shape[0]),
        with_box_refine=any(k.startswith("transformer.decoder.bbox_embed.") for k in sd),
        two_stage=two_stage,
    )
    if not two_stage:
        inferred["num_queries"] = int(require(sd, "query_embed.weight").shape[0])
    for key, value in overrides.items():
        if key in inferred and key != "nheads" and value != inferred[key]:
            raise ConfigError(f"--set {key}={value} contradicts the checkpoint, whose shapes give {inferred[key]}")
    return from_dict(DetectorConfig, {**inferred, **overrides})


def convert(official: dict, overrides: list[str] | None = None) -> Converted:
    """Official Deformable DETR state dict -> Converted(state_dict, config, dropped)."""
    cfg = infer_config(official, parse_overrides(overrides))
    expected = DeformableDETR(cfg).state_dict()
    state_dict, dropped = map_state_dict(official, expected, RULES)
    return Converted(state_dict, {"method": "deformable_detr", **to_dict(cfg)}, dropped)
