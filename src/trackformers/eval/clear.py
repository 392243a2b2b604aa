"""CLEAR MOT metrics (MOTA, MOTP, IDSW, Frag, MT/PT/ML, ...) as TrackEval computes them.

Each frame is matched at IoU >= 0.5, preferring to continue the previous frame's matches
(score 1000 + IoU) and then maximising IoU. Only frames with competing candidates need the
Hungarian step (see `matching`); everything else (switches, fragmentations, track coverage)
is counted for the whole sequence at once from the list of matches.
"""
from __future__ import annotations

import numpy as np

from trackformers.eval.matching import ConflictMatrices
from trackformers.eval.sequence import SeqData
from trackformers.eval.similarity import EPS

THRESHOLD = 0.5
INTS = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames")
FLOATS = ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR", "sMOTA",
          "CLR_F1", "FP_per_frame", "MOTAL", "MOTP_sum")
SUMMED = INTS + ("MOTP_sum",)


def _match(seq: SeqData, i: np.ndarray, j: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """Matched mask over candidate pairs (IoU >= threshold), frame by frame as TrackEval."""
    gid, pid = seq.gt_id[i], seq.pr_id[j]
    matched = np.ones(len(i), bool)  # right for frames without competing candidates
    conflicts = ConflictMatrices(i, j, seq.gt_frame, seq.pr_frame, seq.gt_start, seq.pr_start)
    if len(conflicts.frames) == 0:
        return matched
    # TrackEval skips frames missing either side: "previous frame" means previous active frame.
    active = np.flatnonzero((np.diff(seq.gt_start) > 0) & (np.diff(seq.pr_start) > 0))
    prev_active = np.full(seq.num_frames, -1)
    prev_active[active[1:]] = active[:-1]
    pair_start = np.searchsorted(seq.gt_frame[i], np.arange(seq.num_frames + 1))
    prev_match = np.full(seq.num_gt_ids, -1)
    for k, f in enumerate(conflicts.frames.tolist()):
        p = prev_active[f]
        before = slice(pair_start[p], pair_start[p + 1]) if p >= 0 else slice(0, 0)
        prev_g = gid[before][matched[before]]
        prev_match[prev_g] = pid[before][matched[before]]
        # Continuing the previous frame's match is worth 1000 (TrackEval: 1000 * continued + IoU).
        now = slice(conflicts.pair_lo[k], conflicts.pair_hi[k])
        score = 1000 * (prev_match[gid[now]] == pid[now]) + sim[now]
        matched[now] = conflicts.solve(k, score, EPS)
        prev_match[prev_g] = -1
    return matched


def evaluate(seq: SeqData) -> dict:
    """CLEAR fields of one sequence (TrackEval's names)."""
    res = {k: 0 for k in INTS + FLOATS}
    n_gt, n_pr = len(seq.gt_id), len(seq.pr_id)
    if n_pr == 0 or n_gt == 0:  # TrackEval's early return: final fields left at 0
        res.update(CLR_FN=n_gt, CLR_FP=n_pr if n_gt == 0 else 0, ML=seq.num_gt_ids if n_pr == 0 else 0, MLR=1.0)
        return res
    pairs = seq.pairs.select(seq.pairs.value >= THRESHOLD - EPS)
    m = _match(seq, pairs.i, pairs.j, pairs.value)
    frame, gid, pid = seq.gt_frame[pairs.i[m]], seq.gt_id[pairs.i[m]], seq.pr_id[pairs.j[m]]
    # Matches of each gt id in time order.
    order = np.argsort(gid, kind="stable")
    frame, gid, pid = frame[order], gid[order], pid[order]
    same_gt = gid[1:] == gid[:-1]
    active = np.cumsum((np.diff(seq.gt_start) > 0) & (np.diff(seq.pr_start) > 0))
    runs = len(gid) - int(np.sum(same_gt & (active[frame[1:]] == active[frame[:-1]] + 1)))
    gt_count = np.bincount(seq.gt_id, minlength=seq.num_gt_ids)
    tracked = np.bincount(gid, minlength=seq.num_gt_ids)[gt_count > 0] / gt_count[gt_count > 0]
    res.update(
        CLR_TP=len(gid), CLR_FN=n_gt - len(gid), CLR_FP=n_pr - len(gid),
        IDSW=int(np.sum(same_gt & (pid[1:] != pid[:-1]))),
        Frag=runs - len(np.unique(gid)),
        MT=int(np.sum(tracked > 0.8)), CLR_Frames=seq.length,
        MOTP_sum=float(pairs.value[m].sum()),
    )
    res["PT"] = int(np.sum(tracked >= 0.2)) - res["MT"]
    res["ML"] = seq.num_gt_ids - res["MT"] - res["PT"]
    return _final(res)


def _final(res: dict) -> dict:
    """Ratios that follow from the counts (per sequence and after combining)."""
    tp, fn, fp, idsw = res["CLR_TP"], res["CLR_FN"], res["CLR_FP"], res["IDSW"]
    num_gt_ids = res["MT"] + res["ML"] + res["PT"]
    n_gt = max(1.0, tp + fn)
    res.update(
        MTR=res["MT"] / max(1.0, num_gt_ids), MLR=res["ML"] / max(1.0, num_gt_ids),
        PTR=res["PT"] / max(1.0, num_gt_ids), CLR_Re=tp / n_gt, CLR_Pr=tp / max(1.0, tp + fp),
        MODA=(tp - fp) / n_gt, MOTA=(tp - fp - idsw) / n_gt, MOTP=res["MOTP_sum"] / max(1.0, tp),
        sMOTA=(res["MOTP_sum"] - fp - idsw) / n_gt,
        CLR_F1=tp / max(1.0, tp + 0.5 * fn + 0.5 * fp), FP_per_frame=fp / max(1.0, res["CLR_Frames"]),
        MOTAL=(tp - fp - (np.log10(idsw) if idsw > 0 else idsw)) / n_gt,
    )
    return res


def combine(results: list[dict]) -> dict:
    """Sequences (or classes, detection-weighted): counts summed, ratios recomputed."""
    return _final({k: sum(r[k] for r in results) for k in SUMMED})


def class_average(results: list[dict]) -> dict:
    """Classes with equal weight: counts summed, every ratio averaged."""
    res = {k: sum(r[k] for r in results) for k in INTS}
    res.update({k: float(np.mean([r[k] for r in results])) for k in FLOATS})
    return res
