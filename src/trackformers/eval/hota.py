"""HOTA (Luiten et al., IJCV 2020) as TrackEval computes it, vectorised over frames and alphas.

Per sequence: a global alignment score between every gt id and predicted id (their soft
co-occurrence Jaccard), one Hungarian matching per frame on alignment x IoU, then detection
and association scores at every localisation threshold alpha = 0.05, 0.10, ..., 0.95.
"""
from __future__ import annotations

import numpy as np

from trackformers.eval.matching import match_frames
from trackformers.eval.sequence import SeqData
from trackformers.eval.similarity import EPS

ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's grid, float values included
INT_ARRAYS = ("HOTA_TP", "HOTA_FN", "HOTA_FP")
FLOAT_ARRAYS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "OWTA")
FLOATS = ("HOTA(0)", "LocA(0)", "HOTALocA(0)")


def _empty(seq: SeqData) -> dict:
    """TrackEval's early return when either side has no detections (final fields not computed)."""
    res = {k: np.zeros(len(ALPHAS)) for k in FLOAT_ARRAYS + INT_ARRAYS}
    res.update({k: 0.0 for k in FLOATS})
    if len(seq.pr_id) == 0:
        res["HOTA_FN"] = np.full(len(ALPHAS), float(len(seq.gt_id)))
    else:
        res["HOTA_FP"] = np.full(len(ALPHAS), float(len(seq.pr_id)))
    res["LocA"] = np.ones(len(ALPHAS))
    res["LocA(0)"] = 1.0
    return res


def _group(code: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Dense group index of each code: the code itself when the code space is small, else
    its rank among the distinct codes (avoids a huge gt-ids x predicted-ids array)."""
    if size <= 4 * len(code) + (1 << 20):
        return code, size
    uniq, inverse = np.unique(code, return_inverse=True)
    return inverse, len(uniq)


def _above_each_alpha(hist: np.ndarray) -> np.ndarray:
    """hist[..., level] (level 0..len(ALPHAS)) -> for each alpha a, the total over levels > a."""
    return hist[..., ::-1].cumsum(-1)[..., ::-1][..., 1:]


def evaluate(seq: SeqData) -> dict:
    """HOTA fields of one sequence (TrackEval's names; arrays over ALPHAS)."""
    if len(seq.pr_id) == 0 or len(seq.gt_id) == 0:
        return _empty(seq)
    i, j, sim = seq.pairs.i, seq.pairs.j, seq.pairs.value
    gid, pid = seq.gt_id[i], seq.pr_id[j]
    # Global alignment: per frame, IoU over the "soft union" of the two detections' overlaps.
    denom = np.bincount(j, sim, len(seq.pr_id))[j] + np.bincount(i, sim, len(seq.gt_id))[i] - sim
    sim_iou = np.divide(sim, denom, out=np.zeros_like(sim), where=denom > EPS)
    group, n_groups = _group(gid * seq.num_pr_ids + pid, seq.num_gt_ids * seq.num_pr_ids)
    potential = np.bincount(group, sim_iou, n_groups)[group]
    gt_count = np.bincount(seq.gt_id, minlength=seq.num_gt_ids).astype(float)
    pr_count = np.bincount(seq.pr_id, minlength=seq.num_pr_ids).astype(float)
    alignment = potential / (gt_count[gid] + pr_count[pid] - potential)
    matched = match_frames(i, j, alignment * sim, seq.gt_frame, seq.pr_frame, seq.gt_start, seq.pr_start)
    # Alpha thresholds are nested: a match counts for the first `levels` alphas.
    m_sim, m_group = sim[matched], group[matched]
    levels = np.searchsorted(ALPHAS - EPS, m_sim, side="right")
    tp = _above_each_alpha(np.bincount(levels, minlength=len(ALPHAS) + 1)).astype(float)
    loc = _above_each_alpha(np.bincount(levels, m_sim, minlength=len(ALPHAS) + 1))
    # Association: matches per (gt id, predicted id) at each alpha.
    pair_ids, first, pair_of_match = np.unique(m_group, return_index=True, return_inverse=True)
    counts = _above_each_alpha(np.bincount(pair_of_match * (len(ALPHAS) + 1) + levels,
                                  minlength=len(pair_ids) * (len(ALPHAS) + 1)).reshape(len(pair_ids), len(ALPHAS) + 1))
    gt_n = gt_count[gid[matched][first]][:, None]
    pr_n = pr_count[pid[matched][first]][:, None]
    n_tp = np.maximum(1, tp)
    res = {
        "HOTA_TP": tp, "HOTA_FN": len(seq.gt_id) - tp, "HOTA_FP": len(seq.pr_id) - tp,
        "AssA": (counts * (counts / np.maximum(1, gt_n + pr_n - counts))).sum(0) / n_tp,
        "AssRe": (counts * (counts / np.maximum(1, gt_n))).sum(0) / n_tp,
        "AssPr": (counts * (counts / np.maximum(1, pr_n))).sum(0) / n_tp,
        "LocA": np.maximum(1e-10, loc) / np.maximum(1e-10, tp),
    }
    return _final(res)


def _final(res: dict) -> dict:
    """Fields that follow from the counts and association scores (also after combining)."""
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    res["DetRe"] = tp / np.maximum(1, tp + fn)
    res["DetPr"] = tp / np.maximum(1, tp + fp)
    res["DetA"] = tp / np.maximum(1, tp + fn + fp)
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    res["OWTA"] = np.sqrt(res["DetRe"] * res["AssA"])
    res["HOTA(0)"] = float(res["HOTA"][0])
    res["LocA(0)"] = float(res["LocA"][0])
    res["HOTALocA(0)"] = res["HOTA(0)"] * res["LocA(0)"]
    return res


def combine(results: list[dict]) -> dict:
    """Sequences (or classes, detection-weighted): counts summed, association scores and LocA
    weighted by true positives, then the rest recomputed."""
    res = {k: sum(r[k] for r in results) for k in INT_ARRAYS}
    weight = np.maximum(1.0, res["HOTA_TP"])
    for k in ("AssRe", "AssPr", "AssA"):
        res[k] = sum(r[k] * r["HOTA_TP"] for r in results) / weight
    loc = sum(r["LocA"] * r["HOTA_TP"] for r in results)
    res["LocA"] = np.maximum(1e-10, loc) / np.maximum(1e-10, res["HOTA_TP"])
    return _final(res)


def class_average(results: list[dict]) -> dict:
    """Classes averaged with equal weight (TrackEval: counts summed, every score averaged)."""
    res = {k: sum(r[k] for r in results) for k in INT_ARRAYS}
    for k in FLOAT_ARRAYS + FLOATS:
        res[k] = np.mean([r[k] for r in results], axis=0)
    return res
