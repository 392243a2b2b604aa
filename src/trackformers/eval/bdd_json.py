"""BDD100K box-tracking JSON (one file per video) as rows for the evaluator.

The files are read by `trackformers.data.bdd` (the official scalabel export and TrackEval's
spelling). As TrackEval does, frames are ordered by index and numbered by position, the ground
truth fixes the video's length and a prediction file must have the same number of frames; ids
are integers written as strings.
"""
from __future__ import annotations

import numpy as np

from trackformers.data.bdd import read_bdd_video
from trackformers.eval.benchmarks import BDD_CATEGORIES
from trackformers.eval.sequence import Locate, duplicate

CLASS_IDS = {name: k for k, name in BDD_CATEGORIES.items()}


def read_bdd_json(path: str, num_frames: int | None = None) -> tuple[np.ndarray, int]:
    """(rows, number of frames): rows (N, 9) frame (1-based), id, x0, y0, x1, y1 (corners),
    conf (0 for a crowd box, else 1), class id (`benchmarks.BDD_CATEGORIES`), -1; sorted by frame.
    `num_frames`: the length the file must have (predictions)."""
    frames = read_bdd_video(path)
    if num_frames is not None and len(frames) != num_frames:
        raise ValueError(f"{path}: {len(frames)} frames, the ground truth has {num_frames}")
    rows = []
    for t, frame in enumerate(frames, 1):
        for tid, category, box, crowd in zip(frame.ids, frame.categories, frame.boxes, frame.crowd):
            if category not in CLASS_IDS:
                raise ValueError(f"{path}: frame {t}: unknown category {category!r}")
            try:
                tid = int(tid)
            except ValueError:
                raise ValueError(f"{path}: frame {t}: id {tid!r} is not an integer") from None
            rows.append((t, tid, *box, 0.0 if crowd else 1.0, CLASS_IDS[category], -1.0))
    out = np.array(rows, dtype=np.float64).reshape(-1, 9)
    if not np.isfinite(out).all():
        raise ValueError(f"{path}: frame {int(out[~np.isfinite(out).all(1)][0, 0])}: box value is NaN or infinite")
    if (out[:, 1] < 0).any():
        raise ValueError(f"{path}: frame {int(out[out[:, 1] < 0][0, 0])}: negative id")
    dup = duplicate(out)
    if dup is not None:
        raise ValueError(f"{path}: frame {int(out[dup[0], 0])}: id {int(out[dup[0], 1])} appears twice")
    return out, len(frames)


def frame_locator(path: str, rows: np.ndarray) -> Locate:
    """Locate rows of `read_bdd_json` by file and frame (JSON has no meaningful lines)."""
    return lambda row: f"{path}: frame {int(rows[row, 0])}"
