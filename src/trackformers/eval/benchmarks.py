"""What each benchmark evaluates: its classes and TrackEval's preprocessing for it.

- mot17 / mot20: pedestrians only. Predictions matched (IoU >= 0.5, Hungarian per frame) to a
  distractor box are removed: person on vehicle, static person, distractor, reflection
  (classes 2, 7, 8, 12), plus non-motorised vehicle (6) for MOT20. Then every gt box that is
  not a pedestrian or has conf 0 ("zero-marked") is dropped. Predictions must be class 1 or
  unlabelled (-1); gt classes must be 1..13.
- dancetrack / sportsmot: TrackEval's MOTChallenge evaluation without preprocessing: gt
  boxes with conf 0 are ignored (TrackEval always does), predictions must be class <= 1.
- generic: as dancetrack, and the class column is not looked at.
- bdd100k (MOT-style layout with BDD class ids in the class column, 1 pedestrian, 2 rider,
  3 other person, 4 car, 5 bus, 6 truck, 7 train, 8 trailer, 9 other vehicle, 10 motorcycle,
  11 bicycle; a gt row with conf 0 is a crowd box): eight classes evaluated separately. Gt
  boxes of classes 3, 8, 9 and crowd boxes are ignore regions; a prediction not matched
  (IoU >= 0.5) to a gt box of its class and more than half inside an ignore region is removed
  (TrackEval's BDD100K preprocessing).
"""
from __future__ import annotations

import numpy as np

from trackformers.eval.matching import match_frames
from trackformers.eval.sequence import Locate, SeqData
from trackformers.eval.similarity import EPS, Pairs, frame_offsets, ioa, overlapping_pairs

BENCHMARKS = ("mot17", "mot20", "dancetrack", "sportsmot", "bdd100k", "generic")
MOT_DISTRACTORS = {"mot17": (2, 7, 8, 12), "mot20": (2, 6, 7, 8, 12)}
MOT_CLASSES = range(1, 14)
BDD_CATEGORIES = {1: "pedestrian", 2: "rider", 3: "other person", 4: "car", 5: "bus", 6: "truck", 7: "train",
                  8: "trailer", 9: "other vehicle", 10: "motorcycle", 11: "bicycle"}  # TrackEval's ids
BDD_IGNORE_CLASSES = (3, 8, 9)
BDD_CLASSES = {name: k for k, name in BDD_CATEGORIES.items() if k not in BDD_IGNORE_CLASSES}  # evaluated
BDD_SUPER_CATEGORIES = {"HUMAN": ("pedestrian", "rider"), "VEHICLE": ("car", "truck", "bus", "train"),
                        "BIKE": ("motorcycle", "bicycle")}
MATCH_THRESHOLD = 0.5


def classes(benchmark: str) -> tuple[str, ...]:
    return tuple(BDD_CLASSES) if benchmark == "bdd100k" else ("pedestrian",)


def _zero_marked(conf: np.ndarray) -> np.ndarray:
    return np.trunc(conf) == 0  # TrackEval reads the conf column of gt files as int


def _check_classes(locate: Locate, cls: np.ndarray, bad: np.ndarray, what: str) -> None:
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(f"{locate(r)}: class {cls[r]:g} {what}")


def _sequence(num_frames: int, gt: np.ndarray, pr: np.ndarray) -> SeqData:
    """SeqData over all given (frame-sorted) rows, with their overlapping pairs."""
    gt_frame, pr_frame = gt[:, 0].astype(np.int64) - 1, pr[:, 0].astype(np.int64) - 1
    gt_start, pr_start = frame_offsets(gt_frame, num_frames), frame_offsets(pr_frame, num_frames)
    pairs = overlapping_pairs(gt_start, gt[:, 2:6], pr_start, pr[:, 2:6])
    return SeqData.build(num_frames, gt_frame, gt[:, 1].astype(np.int64), pr_frame, pr[:, 1].astype(np.int64), pairs)


def _preprocessing_matches(seq: SeqData, frames: np.ndarray) -> Pairs:
    """Pairs that TrackEval's preprocessing matches (IoU >= 0.5, Hungarian per frame), solved
    only in the given frames."""
    in_frames = np.isin(seq.gt_frame[seq.pairs.i], frames)
    cand = seq.pairs.select((seq.pairs.value >= MATCH_THRESHOLD - EPS) & in_frames)
    hit = match_frames(cand.i, cand.j, cand.value, seq.gt_frame, seq.pr_frame, seq.gt_start, seq.pr_start, EPS)
    return cand.select(hit)


def prepare(benchmark: str, num_frames: int, gt: np.ndarray, pr: np.ndarray, locate_gt: Locate,
            locate_pr: Locate) -> dict[str, SeqData]:
    """Per evaluated class, the sequence after the benchmark's preprocessing. `gt`/`pr` are
    frame-sorted rows as `read_rows` gives them but with corner boxes (x0, y0, x1, y1) in
    columns 2:6; `locate_*` name the file and line of a row in errors."""
    if benchmark == "bdd100k":
        return _prepare_bdd(num_frames, gt, pr, locate_gt, locate_pr)
    if benchmark != "generic":
        _check_classes(locate_pr, pr[:, 7], pr[:, 7] > 1, f"in a prediction: {benchmark} evaluates pedestrians "
                                                        "only (class 1, or -1 for unlabelled)")
    keep_gt = ~_zero_marked(gt[:, 6])
    if benchmark not in MOT_DISTRACTORS:
        return {"pedestrian": _sequence(num_frames, gt[keep_gt], pr)}
    _check_classes(locate_gt, gt[:, 7], ~np.isin(gt[:, 7], MOT_CLASSES), "is not a MOTChallenge class (1..13)")
    seq = _sequence(num_frames, gt, pr)
    distractor = np.isin(gt[:, 7], MOT_DISTRACTORS[benchmark])
    near = distractor[seq.pairs.i] & (seq.pairs.value >= MATCH_THRESHOLD - EPS)
    matches = _preprocessing_matches(seq, np.unique(seq.gt_frame[seq.pairs.i[near]]))
    keep_pr = np.ones(len(pr), bool)
    keep_pr[matches.j[distractor[matches.i]]] = False
    return {"pedestrian": seq.subset(keep_gt & (gt[:, 7] == 1), keep_pr)}


def _prepare_bdd(num_frames: int, gt: np.ndarray, pr: np.ndarray, locate_gt: Locate,
                 locate_pr: Locate) -> dict[str, SeqData]:
    valid = list(BDD_CLASSES.values()) + list(BDD_IGNORE_CLASSES)
    _check_classes(locate_gt, gt[:, 7], ~np.isin(gt[:, 7], valid), "is not a BDD100K class (1..11)")
    _check_classes(locate_pr, pr[:, 7], ~np.isin(pr[:, 7], valid), "is not a BDD100K class (1..11)")
    ignore = np.isin(gt[:, 7], BDD_IGNORE_CLASSES) | _zero_marked(gt[:, 6])
    regions, gt = gt[ignore], gt[~ignore]
    # Predictions more than half inside any ignore region (intersection over their own area).
    pr_frame, reg_frame = pr[:, 0].astype(np.int64) - 1, regions[:, 0].astype(np.int64) - 1
    inside = overlapping_pairs(frame_offsets(pr_frame, num_frames), pr[:, 2:6],
                               frame_offsets(reg_frame, num_frames), regions[:, 2:6], ioa)
    in_crowd = np.zeros(len(pr), bool)
    in_crowd[inside.i[inside.value > 0.5 + EPS]] = True
    seq = _sequence(num_frames, gt, pr)
    out = {}
    for name, cls in BDD_CLASSES.items():
        of_class = seq.subset(gt[:, 7] == cls, pr[:, 7] == cls)
        crowd = in_crowd[pr[:, 7] == cls]
        matched = np.zeros(len(crowd), bool)
        matched[_preprocessing_matches(of_class, np.unique(of_class.pr_frame[crowd])).j] = True
        remove = crowd & ~matched
        out[name] = of_class.subset(np.ones(len(of_class.gt_id), bool), ~remove)
    return out
