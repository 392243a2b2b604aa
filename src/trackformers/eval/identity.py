"""Identity metrics (IDF1, IDP, IDR; Ristani et al. 2016) as TrackEval computes them.

The best one-to-one assignment of gt ids to predicted ids maximises the number of frames
in which the two overlap with IoU >= 0.5 (IDTP). TrackEval solves it on a (gt + pred)^2
cost matrix; its optimum is the maximum-weight matching of the co-occurrence counts, which
is solved here on the (usually far smaller) ids that co-occur at all. Only the optimal
value enters the metrics, so ties cannot change them.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from trackformers.eval.sequence import SeqData

THRESHOLD = 0.5
INTS = ("IDTP", "IDFN", "IDFP")
FLOATS = ("IDF1", "IDR", "IDP")


def evaluate(seq: SeqData) -> dict:
    """Identity fields of one sequence (TrackEval's names)."""
    n_gt, n_pr = len(seq.gt_id), len(seq.pr_id)
    if n_gt == 0 or n_pr == 0:  # TrackEval's early return: ratios left at 0
        return {"IDTP": 0, "IDFN": n_gt, "IDFP": n_pr if n_gt == 0 else 0, "IDF1": 0, "IDR": 0, "IDP": 0}
    hit = seq.pairs.value >= THRESHOLD
    gid, pid = seq.gt_id[seq.pairs.i[hit]], seq.pr_id[seq.pairs.j[hit]]
    idtp = 0
    if len(gid):
        pairs, counts = np.unique(gid * seq.num_pr_ids + pid, return_counts=True)
        rows, row = np.unique(pairs // seq.num_pr_ids, return_inverse=True)
        cols, col = np.unique(pairs % seq.num_pr_ids, return_inverse=True)
        overlap = np.zeros((len(rows), len(cols)))
        overlap[row, col] = counts
        r, c = linear_sum_assignment(overlap, maximize=True)
        idtp = int(overlap[r, c].sum())
    return _final({"IDTP": idtp, "IDFN": n_gt - idtp, "IDFP": n_pr - idtp})


def _final(res: dict) -> dict:
    tp, fn, fp = res["IDTP"], res["IDFN"], res["IDFP"]
    res.update(IDR=tp / max(1.0, tp + fn), IDP=tp / max(1.0, tp + fp), IDF1=tp / max(1.0, tp + 0.5 * fp + 0.5 * fn))
    return res


def combine(results: list[dict]) -> dict:
    """Sequences (or classes, detection-weighted): counts summed, ratios recomputed."""
    return _final({k: sum(r[k] for r in results) for k in INTS})


def class_average(results: list[dict]) -> dict:
    """Classes with equal weight: counts summed, ratios averaged."""
    res = {k: sum(r[k] for r in results) for k in INTS}
    res.update({k: float(np.mean([r[k] for r in results])) for k in FLOATS})
    return res
