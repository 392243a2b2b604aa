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


_MAX_BUFFER = 1 << 20  # cells of dense matrices built at once (bounded memory on crowded frames)


class ConflictMatrices:
    """The dense score matrices of the conflict frames, built by scatters into flat buffers.

    Built from candidate pairs (i, j) sorted by frame; rows and columns are frame-sorted with
    frame offsets `starts_*`. Matrices hold the negated scores (TrackEval minimises -score),
    with -0.0 for non-candidates exactly as `-score_mat` has. Cells are numbered across all
    conflict frames: matrix k occupies cells offset[k] .. offset[k+1]-1, row-major.
    """

    def __init__(self, i: np.ndarray, j: np.ndarray, frame_i: np.ndarray, frame_j: np.ndarray,
                 starts_i: np.ndarray, starts_j: np.ndarray):
        pair_frame = frame_i[i]
        self.frames = conflict_frames(i, j, frame_i, frame_j, len(frame_i), len(frame_j))
        self.n_i = np.diff(starts_i)[self.frames]
        self.n_j = np.diff(starts_j)[self.frames]
        self.offset = np.concatenate([[0], np.cumsum(self.n_i * self.n_j)])
        self.pair_lo = np.searchsorted(pair_frame, self.frames)
        self.pair_hi = np.searchsorted(pair_frame, self.frames, side="right")
        # Pairs of conflict frames (matrix k's are pairs[first[k]:first[k+1]]) and their cells.
        counts = self.pair_hi - self.pair_lo
        self.first = np.concatenate([[0], np.cumsum(counts)])
        k = np.repeat(np.arange(len(self.frames)), counts)
        self.pairs = np.arange(self.first[-1]) + np.repeat(self.pair_lo - self.first[:-1], counts)
        rows = i[self.pairs] - starts_i[self.frames][k]
        cols = j[self.pairs] - starts_j[self.frames][k]
        self.cell = self.offset[k] + rows * self.n_j[k] + cols  # ascending
        self._shapes = list(zip(self.offset[:-1].tolist(), self.n_i.tolist(), self.n_j.tolist()))

    def _fill(self, k0: int, k1: int, score: np.ndarray) -> np.ndarray:
        """Flat buffer of matrices k0..k1-1 (starting at cell offset[k0])."""
        buf = np.full(self.offset[k1] - self.offset[k0], -0.0)
        lo, hi = self.first[k0], self.first[k1]
        buf[self.cell[lo:hi] - self.offset[k0]] = -score[self.pairs[lo:hi]]
        return buf

    def solve(self, k: int, frame_score: np.ndarray, min_score: float) -> np.ndarray:
        """Hungarian matching of matrix k filled with `frame_score` (the scores of its pairs,
        pairs pair_lo[k]..pair_hi[k]-1); returns which of them are matched above min_score."""
        off, n_i, n_j = self._shapes[k]
        local = self.cell[self.first[k]:self.first[k + 1]] - off
        dense = np.full(n_i * n_j, -0.0)
        dense[local] = -frame_score
        rows, cols = linear_sum_assignment(dense.reshape(n_i, n_j))
        hit = rows * n_j + cols
        matched = np.zeros(len(local), bool)
        matched[np.searchsorted(local, hit[-dense[hit] > min_score])] = True
        return matched

    def solve_all(self, score: np.ndarray) -> np.ndarray:
        """Hungarian solutions of every matrix (independent frames): their assigned cells."""
        cells = []
        k0 = 0
        while k0 < len(self.frames):
            k1 = max(k0 + 1, int(np.searchsorted(self.offset, self.offset[k0] + _MAX_BUFFER, side="right")) - 1)
            buf = self._fill(k0, k1, score)
            base = self.offset[k0]
            for off, n_i, n_j in self._shapes[k0:k1]:
                rows, cols = linear_sum_assignment(buf[off - base:off - base + n_i * n_j].reshape(n_i, n_j))
                cells.append(off + rows * n_j + cols)
            k0 = k1
        return np.concatenate(cells)

    def matched_pairs(self, cells: np.ndarray, score: np.ndarray, min_score: float) -> np.ndarray:
        """Pair indices of the assigned cells that hold a candidate scoring above min_score."""
        at = np.searchsorted(self.cell, cells).clip(max=len(self.cell) - 1)
        found = self.cell[at] == cells
        pairs = self.pairs[at[found]]
        return pairs[score[pairs] > min_score]


def match_frames(i: np.ndarray, j: np.ndarray, score: np.ndarray, frame_i: np.ndarray, frame_j: np.ndarray,
                 starts_i: np.ndarray, starts_j: np.ndarray, min_score: float = 0.0) -> np.ndarray:
    """Per-frame maximum-score matching of candidate pairs (i, j) with `score` > 0, sorted by
    frame; rows/columns are frame-sorted with frame offsets `starts_*`. Returns the matched
    mask: what TrackEval's `linear_sum_assignment(-score)` + `score > min_score` keeps."""
    matched = score > min_score  # right for frames without competing candidates
    if len(i) == 0:
        return matched
    conflicts = ConflictMatrices(i, j, frame_i, frame_j, starts_i, starts_j)
    if len(conflicts.frames) == 0:
        return matched
    matched[conflicts.pairs] = False
    matched[conflicts.matched_pairs(conflicts.solve_all(score), score, min_score)] = True
    return matched
