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


class ConflictMatrices:
    """The dense score matrices of all conflict frames in one buffer, filled by one scatter.

    Built from candidate pairs (i, j) sorted by frame; rows and columns are frame-sorted with
    frame offsets `starts_*`. Matrices hold the negated scores (TrackEval minimises -score),
    with -0.0 for non-candidates exactly as `-score_mat` has.
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
        # Pairs of conflict frames and their place in the buffer.
        counts = self.pair_hi - self.pair_lo
        k = np.repeat(np.arange(len(self.frames)), counts)
        self.pairs = np.arange(counts.sum()) + np.repeat(self.pair_lo - (np.cumsum(counts) - counts), counts)
        rows = i[self.pairs] - starts_i[self.frames][k]
        cols = j[self.pairs] - starts_j[self.frames][k]
        self.place = self.offset[k] + rows * self.n_j[k] + cols  # ascending
        self._shapes = list(zip(self.offset[:-1].tolist(), self.n_i.tolist(), self.n_j.tolist()))

    def buffer(self, score: np.ndarray) -> np.ndarray:
        """All matrices, flat: -score at the candidates, -0.0 elsewhere."""
        buf = np.full(self.offset[-1], -0.0)
        buf[self.place] = -score[self.pairs]
        return buf

    def solve(self, buf: np.ndarray, k: int) -> np.ndarray:
        """Hungarian solution of matrix k of `buf`: buffer positions of its assigned cells."""
        off, n_i, n_j = self._shapes[k]
        rows, cols = linear_sum_assignment(buf[off:off + n_i * n_j].reshape(n_i, n_j))
        return off + rows * n_j + cols

    def solve_all(self, buf: np.ndarray) -> np.ndarray:
        """Hungarian solutions of every matrix (independent frames): assigned buffer positions."""
        rows, cols = [], []
        for off, n_i, n_j in self._shapes:
            r, c = linear_sum_assignment(buf[off:off + n_i * n_j].reshape(n_i, n_j))
            rows.append(r)
            cols.append(c)
        k = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        return self.offset[k] + np.concatenate(rows) * self.n_j[k] + np.concatenate(cols)

    def matched_pairs(self, buf: np.ndarray, cells: np.ndarray, min_score: float) -> np.ndarray:
        """Pair indices of assigned cells whose score exceeds min_score (those are candidates)."""
        cells = cells[-buf[cells] > min_score]
        return self.pairs[np.searchsorted(self.place, cells)]


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
    buf = conflicts.buffer(score)
    cells = conflicts.solve_all(buf)
    matched[conflicts.pairs] = False
    matched[conflicts.matched_pairs(buf, cells, min_score)] = True
    return matched
