"""Per-frame optimal matching with TrackEval's tie-breaking, solving only where it matters.

TrackEval runs the Hungarian algorithm on every frame. When a frame's candidate pairs
(positive score) touch each row and each column at most once, every optimal assignment takes
exactly those pairs (dropping one would lower the total), so no solver is needed. The other
frames ("conflict frames") are solved on the same dense matrix TrackEval builds (same rows,
same columns, zeros for non-candidates), so ties are broken identically.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def conflict_frames(i: np.ndarray, j: np.ndarray, frame_i: np.ndarray, frame_j: np.ndarray,
                    n_i: int, n_j: int) -> np.ndarray:
    """Sorted frames where some row i or column j has two or more candidate pairs."""
    busy_i = np.flatnonzero(np.bincount(i, minlength=n_i) > 1)
    busy_j = np.flatnonzero(np.bincount(j, minlength=n_j) > 1)
    return np.union1d(frame_i[busy_i], frame_j[busy_j])


def solve_frame(li: np.ndarray, lj: np.ndarray, score: np.ndarray, n_i: int, n_j: int,
                min_score: float) -> np.ndarray:
    """Hungarian matching of one frame's dense (n_i, n_j) score matrix, filled with the given
    candidate pairs (local row li, column lj, sorted by (li, lj)) and zeros elsewhere. Returns
    a bool mask over the given pairs: matched with a score above `min_score`."""
    dense = np.zeros((n_i, n_j))
    dense[li, lj] = score
    rows, cols = linear_sum_assignment(-dense)
    keep = dense[rows, cols] > min_score
    matched = np.zeros(len(li), bool)
    matched[np.searchsorted(li * n_j + lj, rows[keep] * n_j + cols[keep])] = True
    return matched


def match_frames(i: np.ndarray, j: np.ndarray, score: np.ndarray, frame_i: np.ndarray, frame_j: np.ndarray,
                 starts_i: np.ndarray, starts_j: np.ndarray, min_score: float = 0.0) -> np.ndarray:
    """Per-frame maximum-score matching of candidate pairs (i, j) with `score` > 0, sorted by
    frame; rows/columns are frame-sorted with frame offsets `starts_*`. Returns the matched
    mask: what TrackEval's `linear_sum_assignment(-score)` + `score > min_score` keeps."""
    matched = score > min_score  # right for frames without competing candidates
    if len(i) == 0:
        return matched
    pair_frame = frame_i[i]
    conflicts = conflict_frames(i, j, frame_i, frame_j, len(frame_i), len(frame_j))
    bounds = np.searchsorted(pair_frame, conflicts)
    ends = np.searchsorted(pair_frame, conflicts, side="right")
    li, lj = i - starts_i[pair_frame], j - starts_j[pair_frame]
    sizes_i, sizes_j = np.diff(starts_i)[conflicts], np.diff(starts_j)[conflicts]
    for lo, hi, n_i, n_j in zip(bounds.tolist(), ends.tolist(), sizes_i.tolist(), sizes_j.tolist()):
        matched[lo:hi] = solve_frame(li[lo:hi], lj[lo:hi], score[lo:hi], n_i, n_j, min_score)
    return matched
