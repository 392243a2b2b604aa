"""A torchvision ResNet state dict (resnet18/34/50/101 `.pth`) -> a detector backbone.

Our backbone uses torchvision's parameter names, so the keys only gain the `backbone.`
prefix. The classifier (`fc.*`) and BatchNorm's `num_batches_tracked` counters have no place
in a frozen-BN detector backbone and are dropped. The result is a model file with only the
backbone weights and a DetectorConfig naming its depth and width: pass it as a training
run's `pretrained` (weights are copied by matching name and shape).
"""
from __future__ import annotations

from trackformers.config import from_dict, parse_overrides, to_dict
from trackformers.convert.common import Converted, Rules, map_state_dict
from trackformers.convert.deformable_detr import infer_backbone
from trackformers.models.backbone import ResNet
from trackformers.models.detector import DetectorConfig

RULES = Rules(
    renames=[(r"", "backbone.")],
    drops=[(r"fc\.", "ImageNet classifier, not part of a detector backbone", None),
           (r".*\.num_batches_tracked$", "BatchNorm step counter, meaningless for frozen BatchNorm", None)],
)


def convert(official: dict, overrides: list[str] | None = None) -> Converted:
    cfg = from_dict(DetectorConfig, {**infer_backbone(official, ""), **parse_overrides(overrides)})
    net = ResNet(cfg.backbone_depth, cfg.backbone_width, cfg.dilation)
    expected = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    state_dict, dropped = map_state_dict(official, expected, RULES)
    return Converted(state_dict, {"method": "deformable_detr", **to_dict(cfg)}, dropped)
