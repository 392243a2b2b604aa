"""Clip-consistent augmentation: every random choice is made once per clip.

A clip is `(images, targets)`: RGB uint8 (H, W, 3) arrays and, per frame, a dict with
`boxes` float32 (n, 4) xyxy pixels plus per-object arrays of the same length (`ids`,
`labels`, ...). Geometric transforms move the boxes with the pixels; an object whose box
vanishes (cropped away) is dropped from the frames where it vanishes only, and ids are never
renumbered, so the same object keeps its id across the clip. `ToTensorNormalize` ends a
pipeline with the model's inputs: float32 (3, H, W) ImageNet-normalised tensors and boxes as
cxcywh normalised to [0, 1] of the transformed image.

The recipes follow MOTR / MeMOTR: flip; then resize to a random short side (max long side),
or resize -> random crop -> resize; HSV jitter; normalise.
"""
from __future__ import annotations

import random

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOTR_SCALES = tuple(range(608, 993, 32))  # 608, 640, ..., 992

Clip = tuple[list[np.ndarray], list[dict]]
_NOT_PER_OBJECT = ("size", "orig_size", "frame_index")


def _select(target: dict, keep: np.ndarray) -> dict:
    """The target restricted to the objects in `keep` (every per-object array follows)."""
    n = len(target["boxes"])
    return {k: (v[keep] if k not in _NOT_PER_OBJECT and hasattr(v, "__len__") and len(v) == n else v)
            for k, v in target.items()}


# -------------------------------------------------------------------------------- resize rule


def resized_size(width: int, height: int, size: int, max_size: int | None = None) -> tuple[int, int]:
    """(new_height, new_width) by the Deformable DETR rule: the short side becomes `size`,
    unless the long side would then exceed `max_size`, in which case the short side is
    reduced (rounded) so that the long side is about `max_size`; the long side is truncated."""
    if max_size is not None:
        short, long = min(width, height), max(width, height)
        if long / short * size > max_size:
            size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def _resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    # INTER_AREA when shrinking avoids aliasing (as PIL's bilinear does); linear when enlarging.
    shrink = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def tracker_inference_size(width: int, height: int, size: int = 800, max_size: int = 1536) -> tuple[int, int]:
    """(new_height, new_width) as the MOTR / MeMOTR inference scripts compute it: one scale
    `size / short side`, lowered to `max_size / long side` if the long side would exceed it,
    and both sides truncated (may differ by a pixel from `resized_size`)."""
    scale = size / min(width, height)
    if max(width, height) * scale > max_size:
        scale = max_size / max(width, height)
    return int(height * scale), int(width * scale)


def _resize_pil(image: np.ndarray, height: int, width: int) -> np.ndarray:
    # PIL's bilinear filter is what torchvision's F.resize runs on PIL images, i.e. exactly the
    # official Deformable DETR preprocessing (cv2 differs by up to 1 grey level).
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BILINEAR))


def resize_for_inference(image: np.ndarray, size: int = 800, max_size: int | None = 1536,
                         rule: str = "detr") -> np.ndarray:
    """Resize an RGB frame for the model, bit-exact with the official preprocessing.
    rule='detr': Deformable DETR's (`resized_size`, PIL bilinear); rule='motr': the MOTR /
    MeMOTR inference scripts' (`tracker_inference_size`, cv2 bilinear); rule='mmdet' the mmdet /
    mmtracking test pipeline's keep-ratio `Resize` to scale (max_size, size). Training uses the
    'detr' size rule with OpenCV resampling (faster; within one grey level)."""
    if rule == "motr":
        h, w = tracker_inference_size(image.shape[1], image.shape[0], size, max_size or 10**9)
        return image if (h, w) == image.shape[:2] else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if rule == "mmdet":  # mmcv imrescale, keep_ratio: long side <= max_size and short side <= size
        h0, w0 = image.shape[:2]
        s = min((max_size or size) / max(h0, w0), size / min(h0, w0))
        w, h = int(w0 * s + 0.5), int(h0 * s + 0.5)
        return image if (h, w) == (h0, w0) else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if rule != "detr":
        raise ValueError(f"resize rule must be 'detr', 'motr' or 'mmdet', got {rule!r}")
    h, w = resized_size(image.shape[1], image.shape[0], size, max_size)
    return image if (h, w) == image.shape[:2] else _resize_pil(image, h, w)


def resize_clip(images: list[np.ndarray], targets: list[dict], size: int, max_size: int | None) -> Clip:
    out_images, out_targets = [], []
    for image, target in zip(images, targets):
        h0, w0 = image.shape[:2]
        h, w = resized_size(w0, h0, size, max_size)
        scale = np.array([w / w0, h / h0, w / w0, h / h0], np.float32)
        out_images.append(_resize_image(image, h, w))
        out_targets.append({**target, "boxes": target["boxes"] * scale})
    return out_images, out_targets


def crop_clip(images: list[np.ndarray], targets: list[dict], top: int, left: int, height: int, width: int,
              overflow: bool = False) -> Clip:
    """Crop every frame to the same region. Boxes are clipped to it (or, with `overflow`,
    left unclipped as MOTR does); objects with nothing left inside are dropped."""
    shift = np.array([left, top, left, top], np.float32)
    out_images, out_targets = [], []
    for image, target in zip(images, targets):
        boxes = target["boxes"] - shift
        clipped = np.concatenate([np.clip(boxes[:, :2], 0, [width, height]), np.clip(boxes[:, 2:], 0, [width, height])], 1)
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        out_images.append(np.ascontiguousarray(image[top:top + height, left:left + width]))
        out_targets.append(_select({**target, "boxes": boxes if overflow else clipped}, keep))
    return out_images, out_targets


# --------------------------------------------------------------------------------- transforms


class Compose:
    def __init__(self, transforms: list):
        self.transforms = list(transforms)

    def __call__(self, images: list[np.ndarray], targets: list[dict], rng: random.Random = random) -> Clip:
        for t in self.transforms:
            images, targets = t(images, targets, rng)
        return images, targets


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, images, targets, rng=random) -> Clip:
        if rng.random() >= self.p:
            return images, targets
        out_targets = []
        for image, target in zip(images, targets):
            w = image.shape[1]
            boxes = target["boxes"][:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1], np.float32) + np.array([w, 0, w, 0], np.float32)
            out_targets.append({**target, "boxes": boxes})
        return [np.ascontiguousarray(im[:, ::-1]) for im in images], out_targets


class RandomResize:
    """Short side to one of `scales` (same for the whole clip), long side <= `max_size`."""

    def __init__(self, scales, max_size: int | None = None):
        self.scales, self.max_size = list(scales), max_size

    def __call__(self, images, targets, rng=random) -> Clip:
        return resize_clip(images, targets, rng.choice(self.scales), self.max_size)


class RandomCrop:
    """A crop of fixed (height, width) at a random position, the same for the whole clip."""

    def __init__(self, height: int, width: int, overflow: bool = False):
        self.height, self.width, self.overflow = height, width, overflow

    def __call__(self, images, targets, rng=random) -> Clip:
        H, W = images[0].shape[:2]
        h, w = min(self.height, H), min(self.width, W)
        return crop_clip(images, targets, rng.randint(0, H - h), rng.randint(0, W - w), h, w, self.overflow)


class RandomSizeCrop:
    """Crop width and height drawn in [min_size, min(image side, max_size)] (MOTR's
    `FixedMotRandomCrop`, MeMOTR's `MultiRandomCrop`), one region for the whole clip."""

    def __init__(self, min_size: int, max_size: int, overflow: bool = False):
        self.min_size, self.max_size, self.overflow = min_size, max_size, overflow

    def __call__(self, images, targets, rng=random) -> Clip:
        H, W = images[0].shape[:2]
        hi_w, hi_h = min(W, self.max_size), min(H, self.max_size)
        w = rng.randint(min(self.min_size, hi_w), hi_w)
        h = rng.randint(min(self.min_size, hi_h), hi_h)
        return crop_clip(images, targets, rng.randint(0, H - h), rng.randint(0, W - w), h, w, self.overflow)


class RandomSelect:
    """`first` with probability p, else `second`."""

    def __init__(self, first, second, p: float = 0.5):
        self.first, self.second, self.p = first, second, p

    def __call__(self, images, targets, rng=random) -> Clip:
        return (self.first if rng.random() < self.p else self.second)(images, targets, rng)


class HSVJitter:
    """YOLOX-style colour jitter, one draw per clip: hue += U(-1,1)*hgain (OpenCV hue units,
    wrapping), saturation / value += U(-1,1)*gain (clipped); each of the three is switched
    off with probability 1/2. Applied with lookup tables."""

    def __init__(self, hgain: float = 5, sgain: float = 30, vgain: float = 30):
        self.gains = (hgain, sgain, vgain)

    def __call__(self, images, targets, rng=random) -> Clip:
        shifts = [int(rng.uniform(-1, 1) * g) * rng.randint(0, 1) for g in self.gains]
        if not any(shifts):
            return images, targets
        v = np.arange(256, dtype=np.int16)
        luts = [((v + shifts[0]) % 180).astype(np.uint8),
                np.clip(v + shifts[1], 0, 255).astype(np.uint8),
                np.clip(v + shifts[2], 0, 255).astype(np.uint8)]
        out = []
        for image in images:
            h, s, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
            hsv = cv2.merge([cv2.LUT(h, luts[0]), cv2.LUT(s, luts[1]), cv2.LUT(val, luts[2])])
            out.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
        return out, targets


class ToTensorNormalize:
    """RGB uint8 -> float32 (3, H, W) normalised; boxes -> cxcywh in [0, 1]; numpy per-object
    arrays -> tensors; adds `size` = (h, w) of the transformed image."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        # One float32 lookup table per channel, (v / 255 - mean) / std: normalising is then a
        # single pass that also writes the channels-first layout (~6x faster than torch ops).
        # Computed in float32 step by step, so the values are bit-identical to torchvision's
        # to_tensor + normalize.
        v = np.arange(256, dtype=np.float32) / np.float32(255)
        self.luts = [((v - np.float32(m)) / np.float32(s)).reshape(1, 256) for m, s in zip(mean, std)]

    def __call__(self, images, targets, rng=random):
        out_images, out_targets = [], []
        for image, target in zip(images, targets):
            h, w = image.shape[:2]
            chw = np.empty((3, h, w), np.float32)
            for c, plane in enumerate(cv2.split(np.ascontiguousarray(image))):
                cv2.LUT(plane, self.luts[c], dst=chw[c])
            out_images.append(torch.from_numpy(chw))
            b = torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4)
            cxcywh = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
            new = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in target.items()}
            new["boxes"] = cxcywh / torch.tensor([w, h, w, h], dtype=torch.float32)
            new["size"] = torch.tensor([h, w])
            out_targets.append(new)
        return out_images, out_targets


# -------------------------------------------------------------------------- static -> clip


def pseudo_clip(image: np.ndarray, target: dict, length: int, rng: random.Random = random,
                max_shift: int = 50) -> Clip:
    """A clip from one static image, as MOTR does for CrowdHuman: one shift (dx, dy), each
    1..max_shift pixels with a random sign, is drawn per clip; frame k is frame k-1 with a
    band of |dx| columns and |dy| rows cut from one side and stretched back to the full size,
    so objects drift and grow consistently. Frame k is warped from the original in one step
    (the composed affine map) instead of resampling k times."""
    H, W = image.shape[:2]
    dx = rng.randint(1, max_shift) * rng.choice((-1, 1))
    dy = rng.randint(1, max_shift) * rng.choice((-1, 1))
    dx, dy = max(-(W - 2), min(W - 2, dx)), max(-(H - 2), min(H - 2, dy))
    step_scale = np.array([W / (W - abs(dx)), H / (H - abs(dy))])
    step_origin = np.array([max(dx, 0), max(dy, 0)], np.float64)
    scale, offset = np.ones(2), np.zeros(2)  # frame coordinate = original * scale + offset
    images, targets = [], []
    for k in range(length):
        if k == 0:
            frame, boxes = image, target["boxes"]
        else:
            # x_k = s * (x_{k-1} - o), composed with x_{k-1} = scale * x + offset
            scale, offset = step_scale * scale, step_scale * (offset - step_origin)
            M = np.array([[scale[0], 0, offset[0]], [0, scale[1], offset[1]]])
            # Sample pixel centres: the continuous map x' = s x + t becomes (s, t + (s - 1) / 2).
            M_px = M.copy()
            M_px[:, 2] += (scale - 1) / 2
            frame = cv2.warpAffine(image, M_px, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            boxes = (target["boxes"] * np.tile(scale, 2) + np.tile(offset, 2)).astype(np.float32)
        clipped = np.concatenate([np.clip(boxes[:, :2], 0, [W, H]), np.clip(boxes[:, 2:], 0, [W, H])], 1).astype(np.float32)
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        images.append(frame)
        targets.append(_select({**target, "boxes": clipped}, keep))
    return images, targets


# ------------------------------------------------------------------------------------ recipes


def train_transforms(scales=MOTR_SCALES, max_size: int = 1536, crop_scales=(800, 1000, 1200),
                     crop_size=(800, 1200), overflow: bool = False, hsv: bool = True) -> Compose:
    """The MOTR / MeMOTR training pipeline (DanceTrack defaults; MOT17 uses
    `crop_scales=(400, 500, 600), crop_size=(384, 600)`). Scale everything down together for
    small images (e.g. the synthetic benchmark)."""
    steps = [RandomHorizontalFlip(),
             RandomSelect(RandomResize(scales, max_size),
                          Compose([RandomResize(crop_scales), RandomSizeCrop(*crop_size, overflow=overflow),
                                   RandomResize(scales, max_size)]))]
    if hsv:
        steps.append(HSVJitter())
    return Compose(steps + [ToTensorNormalize()])


def eval_transforms(size: int = 800, max_size: int = 1333) -> Compose:
    return Compose([RandomResize([size], max_size), ToTensorNormalize()])


def scaled_train_transforms(short_side: int, **options) -> Compose:
    """`train_transforms` with every size scaled by short_side / 800 (rounded to 8 pixels)."""
    f = short_side / 800
    r = lambda v: max(8, int(round(v * f / 8)) * 8)  # noqa: E731
    return train_transforms(scales=[r(s) for s in MOTR_SCALES], max_size=r(1536),
                            crop_scales=[r(s) for s in (800, 1000, 1200)],
                            crop_size=(r(800), r(1200)), **options)

