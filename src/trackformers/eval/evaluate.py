"""`trackformers.evaluate`: HOTA, CLEAR, Identity and Count for a folder of result files.

Layout (TrackEval's MOTChallenge one): `GT_ROOT/<seq>/gt/gt.txt`, `GT_ROOT/<seq>/seqinfo.ini`
and `PRED_ROOT/<seq>.txt`. Numbers are TrackEval's (same definitions, thresholds, tie-breaking
and combination rules); see `benchmarks` for each benchmark's preprocessing.

Result: `{seq: metrics, ..., "COMBINED": metrics}`; for bdd100k every entry is
`{class: metrics}` and COMBINED also holds TrackEval's class combinations: `cls_comb_cls_av`
(classes averaged with equal weight), `cls_comb_det_av` (all detections together) and the
super-categories HUMAN, VEHICLE, BIKE. `metrics` is flat: TrackEval's field names, ratios as
fractions, counts as ints, HOTA family fields as the mean over alpha, plus `per_alpha` with
`alpha` and every HOTA array.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trackformers.data.mot import read_seqinfo, read_seqmap
from trackformers.eval import benchmarks, clear, count, hota, identity
from trackformers.eval.sequence import read_rows

METRICS = {"HOTA": hota, "CLEAR": clear, "Identity": identity, "Count": count}


def find_sequences(gt_root: str | os.PathLike, seqmap: str | os.PathLike | None = None) -> list[str]:
    """Sequence names: the seqmap's, else every sub-folder of gt_root with gt/gt.txt (sorted)."""
    gt_root = Path(gt_root)
    if not gt_root.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt_root}")
    if seqmap is not None:
        names = read_seqmap(seqmap)
        for name in names:
            if not (gt_root / name / "gt" / "gt.txt").is_file():
                raise FileNotFoundError(f"{seqmap}: sequence {name!r} has no {gt_root / name / 'gt' / 'gt.txt'}")
    else:
        names = [p.name for p in gt_root.iterdir() if (p / "gt" / "gt.txt").is_file()]
    if not names:
        raise FileNotFoundError(f"no sequences in {gt_root} (expected <seq>/gt/gt.txt)")
    return sorted(names)


def evaluate_sequence(gt_root: Path, pred_root: Path, name: str, benchmark: str, allow_missing: bool) -> dict:
    """{class: {metric: TrackEval-style fields}} for one sequence."""
    num_frames = read_seqinfo(gt_root / name / "seqinfo.ini")["seqLength"]
    gt_path, pr_path = str(gt_root / name / "gt" / "gt.txt"), str(pred_root / f"{name}.txt")
    gt, _ = read_rows(gt_path, num_frames, columns=8)
    if os.path.isfile(pr_path):
        pr, _ = read_rows(pr_path, num_frames, columns=6)
    elif allow_missing:
        pr = np.zeros((0, 9))
    else:
        raise FileNotFoundError(f"no prediction file for sequence {name}: {pr_path} "
                                "(--allow-missing counts it as empty)")
    per_class = benchmarks.prepare(benchmark, num_frames, gt, pr, gt_path, pr_path)
    return {cls: {m: module.evaluate(seq) for m, module in METRICS.items()} for cls, seq in per_class.items()}


def _combine_classes(per_class: dict[str, dict], how: str) -> dict:
    return {m: getattr(module, how)([per_class[c][m] for c in per_class]) for m, module in METRICS.items()}


def evaluate(gt_root: str | os.PathLike, pred_root: str | os.PathLike, benchmark: str = "generic",
             seqmap: str | os.PathLike | None = None, allow_missing: bool = False) -> dict:
    """Evaluate `pred_root/<seq>.txt` against `gt_root/<seq>/gt/gt.txt` (see module docstring)."""
    if benchmark not in benchmarks.BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r} (choose from {', '.join(benchmarks.BENCHMARKS)})")
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    if not pred_root.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_root}")
    names = find_sequences(gt_root, seqmap)
    raw = {name: evaluate_sequence(gt_root, pred_root, name, benchmark, allow_missing) for name in names}
    classes = benchmarks.classes(benchmark)
    combined = {c: {m: module.combine([raw[s][c][m] for s in names]) for m, module in METRICS.items()}
                for c in classes}
    if benchmark == "bdd100k":
        combined["cls_comb_cls_av"] = _combine_classes({c: combined[c] for c in classes}, "class_average")
        combined["cls_comb_det_av"] = _combine_classes({c: combined[c] for c in classes}, "combine")
        for cat, members in benchmarks.BDD_SUPER_CATEGORIES.items():
            combined[cat] = _combine_classes({c: combined[c] for c in members}, "combine")
        out = {s: {c: flatten(r) for c, r in raw[s].items()} for s in names}
        out["COMBINED"] = {c: flatten(r) for c, r in combined.items()}
        return out
    out = {s: flatten(raw[s]["pedestrian"]) for s in names}
    out["COMBINED"] = flatten(combined["pedestrian"])
    return out


def flatten(result: dict) -> dict:
    """{metric: fields} -> one JSON-ready dict: HOTA arrays averaged over alpha (the arrays
    themselves under `per_alpha`), counts as int, ratios as float."""
    hota_res = result["HOTA"]
    flat = {k: float(np.mean(hota_res[k])) for k in hota.FLOAT_ARRAYS}
    flat.update({k: float(hota_res[k]) for k in hota.FLOATS})
    for module, name in ((clear, "CLEAR"), (identity, "Identity")):
        flat.update({k: float(result[name][k]) for k in module.FLOATS})
        flat.update({k: int(result[name][k]) for k in module.INTS})
    flat.update({k: int(result["Count"][k]) for k in count.INTS})
    flat["per_alpha"] = {"alpha": [round(float(a), 2) for a in hota.ALPHAS],
                         **{k: [float(v) for v in hota_res[k]] for k in hota.FLOAT_ARRAYS},
                         **{k: [int(v) for v in hota_res[k]] for k in hota.INT_ARRAYS}}
    return flat
