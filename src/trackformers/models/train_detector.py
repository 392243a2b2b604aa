"""Detector training: the detector-pretraining stage the trackers start from.

`DetectorTraining` wraps a `DeformableDETR` (as `self.detector`, the attribute name the
trackers use, so its weights carry over to MOTR by name) and its `SetCriterion`, and exposes
`training_loss(clips)` like a tracker does, so `trackformers train` runs it with
`model: {method: "trackformers.models.train_detector:DetectorTraining", ...}`: every frame
of every clip is an independent image. `fit` is the same in a loop small enough to read at a
glance (tests, notebooks); `detect` and `evaluate_ap` turn a trained detector into scored
pixel boxes and AP@0.5.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from trackformers.models.ap import average_precision
from trackformers.models.criterion import LossConfig, build_criterion
from trackformers.models.detector import DeformableDETR, DetectorConfig, pad_images
from trackformers.models.postprocess import postprocess
from trackformers.ops.box_ops import box_cxcywh_to_xyxy


@dataclass
class DetectorTrainingConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    grad_checkpointing: bool = False  # recompute backbone + encoder in backward (less memory, ~1/3 more time)
    size_divisibility: int = 1        # pad batched frames to a multiple of this (64 on CPU: few kernel shapes, much faster)


class DetectorTraining(nn.Module):
    """A detector plus its loss, trainable by the engine like a tracker."""

    Config = DetectorTrainingConfig

    def __init__(self, cfg: DetectorTrainingConfig | None = None):
        super().__init__()
        self.cfg = cfg or DetectorTrainingConfig()
        self.detector = DeformableDETR(self.cfg.detector)
        self.criterion = build_criterion(self.cfg.detector.num_classes, self.cfg.loss)

    def training_loss(self, clips: list[list[tuple[Tensor, dict]]]) -> dict[str, Tensor]:
        """Losses of every frame of every clip as one batch of images.

        A frame is (normalised image (3, H, W), {"labels" (n,), "boxes" (n, 4) normalised cxcywh}).
        Returns the unweighted terms plus their weighted sum under "loss".
        """
        outputs, targets = self.frame_outputs([frame for clip in clips for frame in clip])
        losses = self.criterion(outputs, targets)
        losses["loss"] = self.criterion.total(losses)
        return losses

    def frame_outputs(self, frames: list[tuple[Tensor, dict]]) -> tuple[dict, list[dict]]:
        """The detector's outputs (see `DeformableDETR.forward`) for frames as one batch, and
        their targets as the criterion takes them."""
        images, masks = pad_images([image for image, _ in frames], self.cfg.size_divisibility)
        # Boxes are normalised by each image's own size; padding only extends the canvas, and
        # the model predicts relative to the valid region (valid ratios), so they stay as they are.
        targets = [{"labels": t["labels"].to(torch.int64), "boxes": t["boxes"].float()} for _, t in frames]
        if self.cfg.grad_checkpointing and torch.is_grad_enabled():
            enc = checkpoint(self.detector.encode, images, masks, use_reentrant=False)
        else:
            enc = self.detector.encode(images, masks)
        return self.detector.decode(enc), targets


def fit(model: DetectorTraining, frames: list[tuple[Tensor, dict]], steps: int, lr: float = 2e-4,
        lr_backbone: float = 2e-5, batch_size: int = 2, weight_decay: float = 1e-4, clip_max_norm: float = 0.1,
        seed: int = 0) -> list[float]:
    """Train on `frames` for `steps` AdamW steps (random mini-batches); returns the total losses."""
    g = torch.Generator().manual_seed(seed)
    backbone = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("detector.backbone.")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("detector.backbone.")]
    opt = torch.optim.AdamW([{"params": rest, "lr": lr}, {"params": backbone, "lr": lr_backbone}],
                            weight_decay=weight_decay)
    history = []
    model.train()
    for _ in range(steps):
        batch = torch.randperm(len(frames), generator=g)[:batch_size].tolist()
        loss = model.training_loss([[frames[i] for i in batch]])["loss"]
        opt.zero_grad()
        loss.backward()
        if clip_max_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip_max_norm)
        opt.step()
        history.append(loss.item())
    return history


@torch.no_grad()
def detect(detector: DeformableDETR, images: list[Tensor], sizes: Tensor, top_k: int = 100) -> list[dict]:
    """Normalised images (3, H, W) -> per image top-k {"scores", "labels", "boxes" xyxy in
    pixels of `sizes` (B, 2) (H, W)}."""
    detector.eval()
    batch, masks = pad_images(images)
    out = detector(batch, masks)
    return postprocess(out["pred_logits"], out["pred_boxes"], sizes, top_k)


def evaluate_ap(detector: DeformableDETR, frames: list[tuple[Tensor, dict]], iou_threshold: float = 0.5,
                top_k: int = 100, batch_size: int = 4) -> float:
    """AP@iou_threshold of the detector on (image, target) frames, in each image's pixels."""
    detections, truths = [], []
    for start in range(0, len(frames), batch_size):
        chunk = frames[start:start + batch_size]
        sizes = torch.tensor([image.shape[-2:] for image, _ in chunk])
        detections += detect(detector, [image for image, _ in chunk], sizes, top_k)
        for (image, target), (h, w) in zip(chunk, sizes.tolist()):
            boxes = box_cxcywh_to_xyxy(target["boxes"]) * torch.tensor([w, h, w, h], dtype=torch.float32)
            truths.append({"boxes": boxes, "labels": target["labels"]})
    return average_precision(detections, truths, iou_threshold)["AP"]
