"""What a tracker reports for one frame, in the user's units.

Inside models boxes are normalised cxcywh; `FrameTracks` holds them the way users want them:
absolute pixel `xyxy` boxes of the original frame, with ids as they are written to MOT files
(starting at 1: trackers number ids from 0, and `from_model_output` shifts them by one).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trackformers.data.mot import format_mot


# How a method's result files write a box: (added to x, y, w, h), conf column (None: the score).
# "mot": plain pixels and the score. "trackformer": the official TrackFormer writer (x1 + 1,
# y1 + 1, w + 1, h + 1, conf -1), so result files compare with the published ones.
MOT_CONVENTIONS = {"mot": (0.0, None), "trackformer": (1.0, -1.0)}


def _empty(cols: int | None = None, dtype=np.float64) -> np.ndarray:
    return np.zeros((0, cols) if cols else (0,), dtype=dtype)


@dataclass
class FrameTracks:
    """The tracks of one frame.

    frame: 1-based frame number (the first column of a MOT file).
    boxes: (n, 4) float64 xyxy in pixels of the original frame.
    scores: (n,) float64; labels: (n,) int64 class indices; ids: (n,) int64 track ids (>= 1).
    """

    frame: int
    boxes: np.ndarray = field(default_factory=lambda: _empty(4))
    scores: np.ndarray = field(default_factory=_empty)
    labels: np.ndarray = field(default_factory=lambda: _empty(dtype=np.int64))
    ids: np.ndarray = field(default_factory=lambda: _empty(dtype=np.int64))
    convention: str = "mot"  # a key of MOT_CONVENTIONS: how `to_mot_rows` writes boxes

    def __post_init__(self) -> None:
        if self.convention not in MOT_CONVENTIONS:
            raise ValueError(f"mot_convention must be one of {', '.join(MOT_CONVENTIONS)}, got {self.convention!r}")
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        n = len(self.boxes)
        if not (len(self.scores) == len(self.labels) == len(self.ids) == n):
            raise ValueError(f"FrameTracks: boxes/scores/labels/ids lengths differ "
                             f"({n}, {len(self.scores)}, {len(self.labels)}, {len(self.ids)})")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_model_output(cls, frame: int, result: dict, orig_size: tuple[int, int],
                          convention: str = "mot") -> FrameTracks:
        """Build from a tracker's `result` dict (tensors; boxes normalised cxcywh).

        orig_size: (height, width) of the original frame. The tracker contract numbers ids from
        0; they are shifted by one so that every MOT file starts at id 1. `convention` (a key of
        MOT_CONVENTIONS) says how `to_mot_rows` writes the boxes.
        """
        h, w = orig_size
        cxcywh = result["boxes"].detach().cpu().double().numpy().reshape(-1, 4)
        scale = np.array([w, h, w, h], dtype=np.float64)
        half = cxcywh[:, 2:] / 2
        xyxy = np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1) * scale
        return cls(frame=frame, boxes=xyxy,
                   scores=result["scores"].detach().cpu().double().numpy(),
                   labels=result["labels"].detach().cpu().numpy(),
                   ids=result["ids"].detach().cpu().numpy() + 1, convention=convention)

    def to_mot_rows(self) -> np.ndarray:
        """(n, 7) float64: frame, id, x, y, w, h, score (MOT result columns before the -1s),
        written by the frame's `convention`."""
        shift, conf = MOT_CONVENTIONS[self.convention]
        xywh = np.concatenate([self.boxes[:, :2], self.boxes[:, 2:] - self.boxes[:, :2]], axis=1) + shift
        frame = np.full((len(self), 1), self.frame, dtype=np.float64)
        scores = self.scores[:, None] if conf is None else np.full((len(self), 1), conf)
        return np.concatenate([frame, self.ids[:, None].astype(np.float64), xywh, scores], axis=1)

    def to_mot_lines(self) -> str:
        """MOTChallenge result lines `frame,id,x,y,w,h,score,-1,-1,-1`, one per track."""
        return format_mot(self.to_mot_rows(), kind="result") if len(self) else ""

    def draw(self, image: np.ndarray, trails: dict | None = None) -> np.ndarray:
        """A copy of `image` (RGB uint8 HxWx3) with the boxes drawn, coloured by id."""
        from trackformers.viz import draw_tracks
        return draw_tracks(image, self, trails=trails)
