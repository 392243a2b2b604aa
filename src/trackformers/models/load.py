"""A detector from a model file: plain or DAB Deformable DETR, or a tracker's detector."""
from __future__ import annotations

from torch import nn

from trackformers.checkpoint import load_model
from trackformers.config import ConfigError, from_dict
from trackformers.models.dab import DABDeformableDETR, DABDetectorConfig
from trackformers.models.detector import DeformableDETR, DetectorConfig


def load_detector(path, device="cpu") -> nn.Module:
    """A DeformableDETR (or DABDeformableDETR) in eval mode from a model file.

    Accepts a detector file (`trackformers convert --from deformable_detr`: config
    `{"method": "deformable_detr", ...DetectorConfig...}`; `--from dab_deformable_detr`: a
    DABDeformableDETR with its DABDetectorConfig) and any model file whose config has
    a `detector` section and whose weights hold exactly the detector under `detector.` (one
    trained with `models.train_detector`, e.g. by `configs/baseline/synth.yaml`)."""
    state_dict, meta = load_model(path)
    config = dict(meta["config"])
    method = config.pop("method", None)
    if method == "dab_deformable_detr":
        model = DABDeformableDETR(from_dict(DABDetectorConfig, config))
    elif method == "deformable_detr":
        model = DeformableDETR(from_dict(DetectorConfig, config))
    elif isinstance(config.get("detector"), dict):
        model = DeformableDETR(from_dict(DetectorConfig, config["detector"]))
        state_dict = {k[len("detector."):]: v for k, v in state_dict.items() if k.startswith("detector.")}
    else:
        raise ConfigError(f"{path}: holds a {method!r} model with no detector section")
    model.load_state_dict(state_dict)
    return model.to(device).eval()
