"""Box overlaps of every (ground truth, prediction) pair that shares a frame.

The arithmetic is TrackEval's, operation for operation (xywh -> corners by one addition, areas
from the corners, the same epsilon guards), so every IoU is bit-identical to TrackEval's and
no threshold decision can differ. Pairs are enumerated for many frames at once (vectorised
over chunks of frames) and only those with a non-zero overlap are kept: the metrics never
need the zeros.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = np.finfo("float").eps
_MAX_PAIRS_PER_CHUNK = 1 << 15  # grid cells per chunk: cache-sized temporaries, bounded memory


def xywh_to_corners(xywh: np.ndarray) -> np.ndarray:
    """(N, 4) x, y, w, h -> x0, y0, x1, y1 (x1 = x + w, as TrackEval converts)."""
    out = np.array(xywh, dtype=np.float64, copy=True).reshape(-1, 4)
    out[:, 2] += out[:, 0]
    out[:, 3] += out[:, 1]
    return out


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    return w * h


def _area(a: np.ndarray) -> np.ndarray:
    return (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of corner boxes a (..., 4) and b (..., 4), broadcast; a box without positive
    area overlaps nothing."""
    inter = _intersection(a, b)
    area_a, area_b = _area(a), _area(b)
    union = area_a + area_b - inter
    inter = np.where((area_a <= EPS) | (area_b <= EPS) | (union <= EPS), 0.0, inter)
    return inter / np.where(union <= EPS, 1.0, union)


def ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of a and b over the area of a (0 where a has no area), broadcast."""
    inter = _intersection(a, b)
    area_a = _area(a)
    valid = area_a > EPS
    return np.where(valid, inter, 0.0) / np.where(valid, area_a, 1.0)


@dataclass
class Pairs:
    """Row pairs (i into the first set, j into the second) in the same frame with overlap > 0,
    ordered by frame, then i, then j (the row-major order of TrackEval's per-frame matrices)."""
    i: np.ndarray  # (M,) int64
    j: np.ndarray  # (M,) int64
    value: np.ndarray  # (M,) float64

    def select(self, mask: np.ndarray) -> "Pairs":
        return Pairs(self.i[mask], self.j[mask], self.value[mask])


def frame_offsets(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """Start of each frame's rows in frame-sorted `frames` (0-based), plus the end: (T+1,)."""
    return np.searchsorted(frames, np.arange(num_frames + 1))


def overlapping_pairs(starts_a: np.ndarray, boxes_a: np.ndarray, starts_b: np.ndarray, boxes_b: np.ndarray,
                      measure=iou) -> Pairs:
    """Every pair of rows of A and B in the same frame with `measure` > 0. Rows are sorted by
    frame and given by their frame offsets (`frame_offsets`); corner boxes.

    Frames are processed in chunks as padded (frames, rows of A, rows of B) grids on which a
    horizontal-overlap test is plain broadcasting (padding boxes overlap nothing); the measure
    itself is computed only for pairs that pass it."""
    n_a, n_b = np.diff(starts_a), np.diff(starts_b)
    frames = np.flatnonzero((n_a > 0) & (n_b > 0))
    # Frames of similar size share a chunk (little padding); pairs are put back in frame order.
    frames = frames[np.lexsort((n_b[frames], n_a[frames]))]
    out = [Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))]
    padded_a, padded_b = (np.concatenate([boxes, np.zeros((1, 4))]) for boxes in (boxes_a, boxes_b))
    x0_a, x1_a, x0_b, x1_b = (np.ascontiguousarray(p[:, k]) for p in (padded_a, padded_b) for k in (0, 2))
    lo = 0
    while lo < len(frames):
        count = max(1, _MAX_PAIRS_PER_CHUNK // int(n_a[frames[lo]] * n_b[frames[lo]]))
        chunk = frames[lo:lo + count]
        # Sizes grow along `frames`: shrink the chunk until its largest grid fits the budget.
        while len(chunk) > 1 and len(chunk) * n_a[chunk].max() * n_b[chunk].max() > 2 * _MAX_PAIRS_PER_CHUNK:
            chunk = chunk[:len(chunk) // 2]
        lo += len(chunk)
        rows_a = _padded_rows(starts_a[chunk], n_a[chunk], len(padded_a) - 1)
        rows_b = _padded_rows(starts_b[chunk], n_b[chunk], len(padded_b) - 1)
        # Boxes that do not overlap horizontally cannot overlap at all.
        width = (np.minimum(x1_a[rows_a][:, :, None], x1_b[rows_b][:, None, :])
                 - np.maximum(x0_a[rows_a][:, :, None], x0_b[rows_b][:, None, :]))
        f, a, b = np.unravel_index(np.flatnonzero(width > 0), width.shape)
        i, j = rows_a[f, a], rows_b[f, b]
        value = measure(padded_a[i], padded_b[j])
        keep = value > 0
        out.append(Pairs(i[keep], j[keep], value[keep]))
    pairs = Pairs(*(np.concatenate([getattr(p, k) for p in out]) for k in ("i", "j", "value")))
    # Back to frame order: each frame's pairs are one ordered block; move the blocks.
    frame = np.searchsorted(starts_a, pairs.i, side="right") - 1
    per_frame = np.bincount(frame, minlength=len(n_a))
    natural = np.cumsum(per_frame) - per_frame  # block starts in frame order
    processed = np.zeros(len(n_a), np.int64)
    processed[frames] = np.cumsum(per_frame[frames]) - per_frame[frames]  # ... in chunk order
    order = np.empty(len(frame), np.int64)
    order[natural[frame] + np.arange(len(frame)) - processed[frame]] = np.arange(len(frame))
    return pairs.select(order)


def _padded_rows(starts: np.ndarray, counts: np.ndarray, pad: int) -> np.ndarray:
    """Row numbers (frames, max count) of each frame's rows, padded with row `pad`."""
    slot = np.arange(counts.max())
    return np.where(slot < counts[:, None], starts[:, None] + slot, pad)
