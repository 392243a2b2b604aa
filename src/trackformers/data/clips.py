"""Training clips: which frames make a clip (`ClipSampler`) and the torch `Dataset` of clips.

The sampler follows MOTR / MeMOTR: the clip length grows with the epoch (`steps` are the
epochs where the next of `lengths` starts: DanceTrack MeMOTR `steps=(6, 10, 14)`, `lengths=(2,
3, 4, 5)`), every valid start frame of every video is one item of the epoch, and the frame
stride is drawn per clip in 1..interval ('random_interval') or fixed ('fixed_interval'),
shrunk when the video is too short for it. Static images (CrowdHuman) become pseudo-clips.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from trackformers.data.datasets import Sequence
from trackformers.data.sources import read_rgb
from trackformers.data.transforms import pseudo_clip

MODES = ("random_interval", "fixed_interval")


@dataclass
class ClipSampler:
    """Clip length / stride schedule. `set_epoch(e)` picks stage = number of `steps` <= e;
    length, interval and mode are the stage's entries of `lengths`, `intervals`, `modes`
    (the last entry once the lists run out)."""

    lengths: tuple[int, ...] = (2, 3, 4, 5)
    steps: tuple[int, ...] = (6, 10, 14)
    intervals: tuple[int, ...] = (10,)
    modes: tuple[str, ...] = ("random_interval",)
    length: int = field(init=False)
    interval: int = field(init=False)
    mode: str = field(init=False)

    def __post_init__(self):
        if not self.lengths or min(self.lengths) < 1 or not self.intervals or min(self.intervals) < 1:
            raise ValueError(f"clip lengths and intervals must be >= 1, got {self.lengths} and {self.intervals}")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ValueError(f"sample mode must be one of {MODES}, got {bad or self.modes}")
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        stage = sum(epoch >= s for s in self.steps)
        self.length = self.lengths[min(stage, len(self.lengths) - 1)]
        self.interval = self.intervals[min(stage, len(self.intervals) - 1)]
        self.mode = self.modes[min(stage, len(self.modes) - 1)]

    def starts(self, num_frames: int) -> range:
        """Valid first frames (0-based) of a video with `num_frames` frames."""
        return range(max(num_frames - self.length + 1, 0))

    def frames(self, num_frames: int, start: int, rng: random.Random = random) -> list[int]:
        """0-based frame indices of the clip starting at `start`."""
        if self.length == 1:
            return [start]
        longest = (num_frames - 1 - start) // (self.length - 1)
        stride = rng.randint(1, self.interval) if self.mode == "random_interval" else self.interval
        stride = max(1, min(stride, longest))
        return [start + k * stride for k in range(self.length)]


class ClipDataset(Dataset):
    """`dataset[i]` -> list of `(image, target)`, one per frame of the clip, after `transform`
    (a `transforms.Compose` ending in `ToTensorNormalize`; None keeps numpy images and xyxy
    pixel boxes). Target keys: boxes, labels, ids, visibility, orig_size (+ size from the
    transform). Ignore-flagged objects are left out (nothing to learn from them), and boxes
    are clipped to the image at load (as DETR's loader does; MOT boxes often extend past the
    border), dropping any left empty. Sequences without ground truth (test splits) are
    skipped. Call `set_epoch(e)` at each epoch: the clip length may change."""

    def __init__(self, sequences: list[Sequence], sampler: ClipSampler | None = None, transform=None,
                 max_shift: int = 50, rng: random.Random | None = None):
        self.sequences = [s for s in sequences if s.has_gt and len(s)]
        self.sampler = sampler or ClipSampler()
        self.transform = transform
        self.max_shift = max_shift
        self.rng = rng or random  # the module: DataLoader workers reseed it per worker
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.index = [(s, start) for s, seq in enumerate(self.sequences)
                      for start in (range(1) if len(seq) == 1 else self.sampler.starts(len(seq)))]

    def __len__(self) -> int:
        return len(self.index)

    def _frame(self, seq: Sequence, k: int) -> tuple[np.ndarray, dict]:
        image = read_rgb(seq.image_paths[k])
        h, w = image.shape[:2]
        ann = seq.annotations[k]
        boxes = np.clip(ann.boxes, 0, np.array([w, h, w, h], np.float32))
        keep = ~ann.ignore & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        ann = ann.select(keep)
        target = {"boxes": boxes[keep], "labels": ann.labels, "ids": ann.ids,
                  "visibility": ann.visibility, "orig_size": torch.tensor(image.shape[:2])}
        return image, target

    def __getitem__(self, i: int) -> list[tuple]:
        s, start = self.index[i]
        seq = self.sequences[s]
        if len(seq) == 1:  # a static image: MOTR-style random-shift pseudo-clip
            image, target = self._frame(seq, 0)
            images, targets = pseudo_clip(image, target, self.sampler.length, self.rng, self.max_shift)
        else:
            images, targets = zip(*[self._frame(seq, k) for k in self.sampler.frames(len(seq), start, self.rng)])
            images, targets = list(images), list(targets)
        if self.transform is not None:
            images, targets = self.transform(images, targets, self.rng)
        return list(zip(images, targets))


def collate(batch: list) -> list:
    """Keep clips as a list of clips (clips differ in image size and object count)."""
    return list(batch)
