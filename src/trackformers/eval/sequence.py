"""One evaluated sequence: validated MOT rows in, frame-sorted arrays with contiguous ids out.

Bad input is an error naming the file and line (TrackEval either raises too or silently
computes something meaningless): a non-finite value, a frame or id that is not an integer,
a frame outside 1..seqLength, a negative (or > 2**53) id, the same id twice in a frame.
Boxes with zero or negative width/height are kept and treated exactly as TrackEval treats
them: they overlap nothing (IoU 0), so they count as misses (ground truth) or false
positives (predictions).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from trackformers.data.mot import check_rows, line_number, read_mot
from trackformers.eval.similarity import Pairs, frame_offsets


def _fail(path: str, row: int, message: str) -> None:
    raise ValueError(f"{path}:{line_number(path, row)}: {message}")


Locate = Callable[[int], str]  # a row of the frame-sorted array -> where it is written ("file:line")


def line_locator(path: str, order: np.ndarray) -> Locate:
    """Locate rows that `read_rows` sorted (`order`: their rows in the file) by file and line."""
    return lambda row: f"{path}:{line_number(path, int(order[row]))}"


def read_rows(path: str, num_frames: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and check a MOT file; returns (rows sorted by frame, stable, file order kept within
    a frame; their row numbers in the file). `columns`: how many leading columns must be finite
    (6 for predictions, 8 for ground truth, whose conf and class columns are used)."""
    rows = read_mot(path)
    check_rows(path, rows, num_frames, columns)
    order = np.arange(len(rows))
    if (np.diff(rows[:, 0]) < 0).any():  # result files are usually written frame by frame
        order = np.argsort(rows[:, 0], kind="stable")
        rows = rows[order]
    dup = duplicate(rows)
    if dup is not None:
        first, second = sorted(order[list(dup)])
        _fail(path, int(second), f"id {int(rows[dup[0], 1])} appears twice in frame {int(rows[dup[0], 0])} "
                                 f"(first at line {line_number(path, int(first))})")
    return rows, order


def duplicate(rows: np.ndarray) -> tuple[int, int] | None:
    """Two rows with the same (frame, id), or None."""
    key = rows[:, 0].astype(np.int64) * (int(rows[:, 1].max(initial=0)) + 1) + rows[:, 1].astype(np.int64)
    sorted_key = np.sort(key)
    if not (sorted_key[1:] == sorted_key[:-1]).any():
        return None
    by_key = np.argsort(key, kind="stable")
    d = int(np.flatnonzero(key[by_key][1:] == key[by_key][:-1])[0])
    return int(by_key[d]), int(by_key[d + 1])


@dataclass
class SeqData:
    """What the metrics need for one sequence and one class: gt and predicted rows sorted by
    frame (0-based), their ids relabelled 0..n-1, and their overlapping pairs (IoU > 0)."""
    num_frames: int
    gt_frame: np.ndarray
    gt_id: np.ndarray
    pr_frame: np.ndarray
    pr_id: np.ndarray
    pairs: Pairs  # i: gt row, j: predicted row, value: IoU
    length: int = 0  # the sequence's length as seqinfo.ini gives it (0: num_frames)

    def __post_init__(self):
        self.length = self.length or self.num_frames
        self.gt_start = frame_offsets(self.gt_frame, self.num_frames)
        self.pr_start = frame_offsets(self.pr_frame, self.num_frames)
        self.num_gt_ids = int(self.gt_id.max(initial=-1)) + 1
        self.num_pr_ids = int(self.pr_id.max(initial=-1)) + 1

    @classmethod
    def build(cls, num_frames: int, gt_frame: np.ndarray, gt_ids: np.ndarray, pr_frame: np.ndarray,
              pr_ids: np.ndarray, pairs: Pairs) -> "SeqData":
        """From 0-based frames and raw ids (any integers); ids are relabelled in sorted order."""
        return cls(num_frames, gt_frame, _relabel(gt_ids), pr_frame, _relabel(pr_ids), pairs)

    def subset(self, keep_gt: np.ndarray, keep_pr: np.ndarray) -> "SeqData":
        """Only the kept rows (and their pairs); ids relabelled again."""
        new_gt = np.cumsum(keep_gt) - 1
        new_pr = np.cumsum(keep_pr) - 1
        p = self.pairs.select(keep_gt[self.pairs.i] & keep_pr[self.pairs.j])
        return SeqData.build(self.num_frames, self.gt_frame[keep_gt], self.gt_id[keep_gt],
                             self.pr_frame[keep_pr], self.pr_id[keep_pr],
                             Pairs(new_gt[p.i], new_pr[p.j], p.value))


def _relabel(ids: np.ndarray) -> np.ndarray:
    """Ids -> 0..n-1 in sorted order (TrackEval's relabelling); a lookup table when ids are
    small, else a sort."""
    if len(ids) == 0:
        return np.zeros(0, np.int64)
    top = int(ids.max())
    if top > 8 * len(ids) + (1 << 16):
        return np.unique(ids, return_inverse=True)[1].astype(np.int64)
    present = np.zeros(top + 1, bool)
    present[ids] = True
    return (np.cumsum(present) - 1)[ids]
