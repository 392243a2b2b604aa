"""Trackers by name: the method table, the built-in models and the streaming API.

    tracker = trackformers.load_tracker("motr-synth")          # a built-in model
    tracker = trackformers.load_tracker("runs/motr/last")      # any file from save_model
    for frame in trackformers.read_frames("video.mp4"):
        tracks = tracker.step(frame)                           # FrameTracks, xyxy pixels

A model file's JSON config is `{"method": NAME, ...the method's Config as a dict...}`; NAME
is a key of `METHODS` or, for trackers living outside this package, `"package.module:Class"`.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trackformers import checkpoint
from trackformers.config import ConfigError, from_dict, replace, to_dict
from trackformers.trackers.results import FrameTracks

METHODS = {
    "motr": "trackformers.trackers.motr:MOTR",
    "memotr": "trackformers.trackers.memotr:MeMOTR",
    "sambamotr": "trackformers.trackers.sambamotr:SambaMOTR",
    "trackformer": "trackformers.trackers.trackformer:Trackformer",
    "iou_baseline": "trackformers.trackers.baseline:IoUBaseline",
    "qdtrack": "trackformers.trackers.qdtrack:QDTrack",
    "qdtrack_detr": "trackformers.trackers.qdtrack:QDTrackDETR",
}

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

# Built-in models: name -> (file stem in WEIGHTS_DIR, how to make it when it is missing).
_SYNTH = ("trackformers synth --preset simple --out data/synth/simple --seqs 12 --frames 100 --size 640x360 --seed 0 && "
          "trackformers synth --preset dance --out data/synth/dance --seqs 12 --frames 100 --size 640x360 --seed 0 && "
          "trackformers train configs/baseline/synth.yaml --out runs/detector-synth")
BUILTIN = {
    "motr-synth": ("motr-synth", f"{_SYNTH} && trackformers train configs/motr/synth.yaml --out runs/motr-synth "
                                 "--resume --set pretrained=runs/detector-synth/last --export motr-synth"),
    "memotr-synth": ("memotr-synth", f"{_SYNTH} && trackformers train configs/memotr/synth.yaml --out runs/memotr-synth "
                                     "--resume --set pretrained=runs/detector-synth/last --export memotr-synth"),
    "iou-baseline-synth": ("iou-baseline-synth", "(make motr-synth first) trackformers train configs/baseline/synth.yaml "
                           "--out runs/iou-baseline-synth --set epochs=0 --set pretrained=runs/motr-synth/last "
                           "--export iou-baseline-synth"),
}


def installed_builtins() -> list[str]:
    """The built-in model names whose files are in WEIGHTS_DIR."""
    return [name for name, (stem, _) in BUILTIN.items() if (WEIGHTS_DIR / stem).with_suffix(".safetensors").is_file()]


def method_class(method: str, trusted: bool = False) -> type[nn.Module]:
    """The tracker class of a method name (`METHODS`) or of a `"module:Class"` path.

    Importing a module can run its code, so a path outside trackformers is imported only when
    `trusted` (the user's own training config), already imported (the user imported it), or
    listed in the TRACKFORMERS_TRUSTED_MODULES environment variable (comma-separated, for the
    command line): a downloaded model file cannot make `load_tracker` import what it likes.
    """
    target = METHODS.get(method, method)
    module_name, sep, class_name = target.partition(":")
    if not sep:
        raise ConfigError(f"unknown method {method!r} (known: {', '.join(METHODS)}, or 'package.module:Class')")
    allowed = os.environ.get("TRACKFORMERS_TRUSTED_MODULES", "").split(",")
    if not (trusted or module_name.startswith("trackformers.") or module_name in sys.modules or module_name in allowed):
        raise ConfigError(f"method {method!r} lives outside trackformers: import {module_name} yourself, or list it "
                          "in TRACKFORMERS_TRUSTED_MODULES, before loading this model (model files do not import code)")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"method {method!r}: cannot import {target} ({e})") from None


def build_tracker(config: dict, overrides: dict | list[str] | None = None, trusted: bool = False) -> nn.Module:
    """A fresh tracker from `{"method": NAME, ...config...}`, with optional dotted overrides
    (`trusted`: the config is the user's own, see `method_class`)."""
    config = dict(config)
    if "method" not in config:
        raise ConfigError("model config has no 'method' key (e.g. method: motr)")
    cls = method_class(config.pop("method"), trusted)
    cfg = from_dict(cls.Config, config)
    if overrides:
        cfg = replace(cfg, overrides)
    return cls(cfg)


def tracker_config(model: nn.Module, method: str) -> dict:
    """The JSON-able config of `model` as a model file stores it."""
    return {"method": method, **to_dict(model.cfg)}


def resolve_model_path(name_or_path: str | Path) -> Path:
    """The file stem of a built-in name or of a path; a missing built-in says how to make it."""
    name = str(name_or_path)
    if name in BUILTIN:
        stem, howto = BUILTIN[name]
        path = WEIGHTS_DIR / stem
        if not path.with_suffix(".safetensors").is_file():
            raise FileNotFoundError(f"built-in model {name!r} is not installed ({path}.safetensors missing); "
                                    f"make it with: {howto}")
        return path
    path = Path(name)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    if not stem.with_suffix(".safetensors").is_file():
        known = ", ".join(BUILTIN)
        raise FileNotFoundError(f"model not found: {name} (give a model file from save_model or a built-in name: {known})")
    return stem


def export_path(name: str | Path) -> Path:
    """Where `--export NAME` writes: a bare name is a built-in (the package's weights folder), else a path."""
    name = str(name)
    return Path(name) if ("/" in name or "\\" in name) else WEIGHTS_DIR / name


def _nest(flat: dict) -> dict:
    """{'a.b': 1} -> {'a': {'b': 1}} so that keyword overrides can reach nested settings."""
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def load_model_file(name_or_path: str | Path, overrides: dict | list[str] | None = None,
                    device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(tracker in eval mode on `device`, file metadata) for a built-in name or model file."""
    stem = resolve_model_path(name_or_path)
    state_dict, meta = checkpoint.load_model(stem)
    with checkpoint.config_errors_name(stem):  # a bad config in the file: one line naming it
        model = build_tracker(meta["config"], overrides)
    checkpoint.load_weights(model, state_dict, stem)
    return model.to(device).eval(), meta


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available else cpu; asking for cuda without one is a clear error."""
    device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    return torch.device(device)


class FramePreparer:
    """RGB uint8 HxWx3 frame -> normalised float32 (3, h, w) at the model's input size.

    The resize rule and the normalisation are the training pipeline's own (data.transforms);
    `resize_rule: motr` in a model's input config reproduces the official inference resize.
    """

    def __init__(self, input_cfg):
        from trackformers.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ToTensorNormalize
        self.cfg = input_cfg
        self.normalise = ToTensorNormalize(getattr(input_cfg, "mean", IMAGENET_MEAN),
                                           getattr(input_cfg, "std", IMAGENET_STD))

    def __call__(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        from trackformers.data.transforms import resize_for_inference
        if isinstance(frame, torch.Tensor):
            frame = frame.detach().cpu().numpy()
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a frame must be an RGB uint8 HxWx3 array, got {frame.dtype} {frame.shape}")
        resized = resize_for_inference(frame, self.cfg.short_side, self.cfg.max_size,
                                       rule=getattr(self.cfg, "resize_rule", "detr"))
        images, _ = self.normalise([resized], [{"boxes": np.zeros((0, 4), np.float32)}])
        return images[0]


class StreamingTracker:
    """Frame-by-frame tracking with a trained model: `step(frame) -> FrameTracks`, `reset()`."""

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", name: str = ""):
        self.model = model.eval()
        self.device = torch.device(device)
        self.name = name
        self.prepare = FramePreparer(model.cfg.input)
        # A method may write its result files the way its official code does (results.MOT_CONVENTIONS).
        self.mot_convention = getattr(model.cfg, "mot_convention", "mot")
        self.reset()

    @property
    def cfg(self):
        return self.model.cfg

    def reset(self) -> None:
        """Forget all tracks: the next frame starts a new video."""
        self.state = self.model.new_state()
        self.frame = 0

    @torch.inference_mode()
    def step(self, frame: np.ndarray | torch.Tensor) -> FrameTracks:
        """Track one RGB uint8 HxWx3 frame; returns this frame's tracks in original pixels."""
        h, w = frame.shape[:2]
        image = self.prepare(frame).to(self.device)
        # Size-dependent filters (e.g. MOTR's minimum box area) measure the original frame.
        result, self.state = self.model.track(image, self.state, (h, w))
        self.frame += 1
        return FrameTracks.from_model_output(self.frame, result, (h, w), self.mot_convention)


def load_tracker(name_or_path: str | Path, device: str | torch.device = "cpu", weights: str | Path | None = None,
                 **overrides) -> StreamingTracker:
    """A `StreamingTracker` for a built-in model name or a model file.

    weights: a model file to load instead of the built-in one named `name_or_path`.
    overrides: settings of the model's config, e.g. `score_thresh=0.5` or `**{"input.short_side": 480}`;
    an unknown key is a ConfigError.
    """
    device = resolve_device(device)
    model, _ = load_model_file(weights or name_or_path, _nest(overrides), device)
    return StreamingTracker(model, device, name=str(name_or_path))
