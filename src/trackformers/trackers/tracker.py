"""The tracker contract: the one thing engine/, the registry, `tune`, `bench` and the CLI know.

A tracker is an `nn.Module` with
- `Config`: its dataclass config (saved in every model file and checkpoint, so loading needs
  no flags); `cfg.input` is the inference preprocessing (`InputConfig`);
- `new_state()`: the state of a new sequence (no tracks);
- `track(image, state, orig_size) -> (result, state)`: one inference frame. `image` is the
  normalised (3, H, W) frame at the model's input size, `orig_size` the (h, w) of the
  original frame (size-dependent filters measure it). `result` is a dict of tensors for the
  tracks reported this frame: `ids` (n,) int64 counting from 0 in each sequence (result files
  show id + 1), `boxes` (n, 4) normalised cxcywh, `scores` (n,), `labels` (n,) int64;
- `training_loss(clips) -> {"loss": ..., terms...}`: clips are lists of (normalised image,
  target) with target {"ids", "labels", "boxes" normalised cxcywh}; clips may differ in length
  and image size.
Query-propagation trackers implement it through `QueryTracker` (query_tracker.py); a
tracking-by-detection method (the IoU baseline, QDTrack) implements it directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

Result = dict[str, Tensor]
"""One frame's reported tracks: ids (n,), boxes (n, 4) normalised cxcywh, scores (n,), labels (n,)."""


@dataclass
class InputConfig:
    """Inference resize: short side to `short_side`, long side at most `max_size`; normalisation.

    resize_rule 'motr' is the official MOTR / MeMOTR inference scripts' (one scale, both sides
    truncated, cv2 bilinear); 'detr' the Deformable DETR rule (see data.transforms).
    """
    short_side: int = 800
    max_size: int = 1536
    resize_rule: str = "motr"
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])


class Tracker(nn.Module):
    """Base of every tracker (see the module docstring for the contract)."""

    Config: ClassVar[type]
    cfg: Any

    def new_state(self) -> Any:
        """The state of a new sequence."""
        raise NotImplementedError

    def track(self, image: Tensor, state: Any, orig_size: tuple[int, int] | None = None) -> tuple[Result, Any]:
        """One inference frame: normalised image (3, H, W) -> (this frame's result, next state)."""
        raise NotImplementedError

    def training_loss(self, clips: list[list[tuple[Tensor, dict]]]) -> dict[str, Tensor]:
        """Weighted total under "loss" plus every term, for a batch of clips."""
        raise NotImplementedError
