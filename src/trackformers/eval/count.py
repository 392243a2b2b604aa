"""Detection and id counts (TrackEval's Count metric)."""
from __future__ import annotations

from trackformers.eval.sequence import SeqData

INTS = ("Dets", "GT_Dets", "IDs", "GT_IDs")


def evaluate(seq: SeqData) -> dict:
    return {"Dets": len(seq.pr_id), "GT_Dets": len(seq.gt_id), "IDs": seq.num_pr_ids, "GT_IDs": seq.num_gt_ids}


def combine(results: list[dict]) -> dict:
    """Sums; classes combine the same way whether averaged by class or by detection."""
    return {k: sum(r[k] for r in results) for k in INTS}


class_average = combine
