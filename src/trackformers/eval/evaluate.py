"""`trackformers.evaluate`: HOTA, CLEAR, Identity and Count for a folder of result files.

Layout (TrackEval's MOTChallenge one): `GT_ROOT/<seq>/gt/gt.txt`, `GT_ROOT/<seq>/seqinfo.ini`
and `PRED_ROOT/<seq>.txt`. For bdd100k either that layout with BDD class ids in the class
column (see `benchmarks`) or BDD100K's own JSON, `GT_ROOT/<video>.json` and
`PRED_ROOT/<video>.json` (see `bdd_json`). Numbers are TrackEval's (same definitions,
thresholds, tie-breaking and combination rules); see `benchmarks` for each benchmark's
preprocessing.

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
from trackformers.eval.bdd_json import frame_locator, read_bdd_json
from trackformers.eval.sequence import Locate, line_locator, read_rows
from trackformers.eval.similarity import xywh_to_corners

METRICS = {"HOTA": hota, "CLEAR": clear, "Identity": identity, "Count": count}


def find_sequences(gt_root: str | os.PathLike, seqmap: str | os.PathLike | None = None,
                   json_layout: bool = False) -> list[str]:
    """Sequence names: the seqmap's, else every sub-folder of gt_root with gt/gt.txt (with
    `json_layout`: every <seq>.json), sorted. Without a seqmap, a sequence folder (one with
    seqinfo.ini or gt/) that lacks gt/gt.txt is an error: TrackEval fails on it too when it
    is listed, and dropping it silently would report the other sequences as the whole."""
    gt_root = Path(gt_root)
    if not gt_root.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt_root}")
    def expected(name: str) -> Path:
        return gt_root / f"{name}.json" if json_layout else gt_root / name / "gt" / "gt.txt"

    if seqmap is not None:
        names = read_seqmap(seqmap)
        if not names:
            raise ValueError(f"{seqmap}: the seqmap lists no sequences")
        for name in names:
            if not expected(name).is_file():
                raise FileNotFoundError(f"{seqmap}: sequence {name!r} has no {expected(name)}")
    elif json_layout:
        names = [p.stem for p in gt_root.glob("*.json")]
    else:
        names = []
        for p in sorted(gt_root.iterdir()):
            if expected(p.name).is_file():
                names.append(p.name)
            elif (p / "seqinfo.ini").is_file() or (p / "gt").is_dir():
                raise FileNotFoundError(f"sequence {p.name} has no ground truth: {expected(p.name)} is missing "
                                        "(give --seqmap to evaluate only some sequences)")
    if not names:
        raise FileNotFoundError(f"no sequences in {gt_root} (expected {expected('<seq>').relative_to(gt_root)})")
    return sorted(set(names))


def check_no_orphans(pred_root: Path, names: list[str], suffix: str, gt_root: Path) -> None:
    """A result file whose sequence has no ground truth is an error (TrackEval ignores it
    silently): it is usually a misnamed sequence or the wrong --gt folder."""
    orphans = sorted(p for p in pred_root.glob(f"*{suffix}") if p.is_file() and p.stem not in set(names))
    if orphans:
        more = f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""
        raise FileNotFoundError(f"{orphans[0]}: result file without ground truth in {gt_root}{more} "
                                "(give --seqmap to evaluate only some sequences)")


def _is_json_layout(gt_root: Path) -> bool:
    """BDD100K's own layout: one <video>.json per sequence, no <seq>/gt/gt.txt folders."""
    return gt_root.is_dir() and any(gt_root.glob("*.json")) and not any(gt_root.glob("*/gt/gt.txt"))


def _read_sequence(gt_root: Path, pred_root: Path, name: str, json_layout: bool,
                   allow_missing: bool) -> tuple[int, np.ndarray, np.ndarray, Locate, Locate]:
    """(frames, gt rows, predicted rows, where a gt row is, where a predicted row is); boxes as
    corners, rows sorted by frame."""
    suffix = ".json" if json_layout else ".txt"
    pr_path = str(pred_root / f"{name}{suffix}")
    has_pred = os.path.isfile(pr_path)
    if not has_pred and not allow_missing:
        raise FileNotFoundError(f"no prediction file for sequence {name}: {pr_path} "
                                "(--allow-missing counts it as empty)")
    if json_layout:
        gt_path = str(gt_root / f"{name}.json")
        gt, num_frames = read_bdd_json(gt_path)
        pr = read_bdd_json(pr_path, num_frames)[0] if has_pred else np.zeros((0, 9))
        return num_frames, gt, pr, frame_locator(gt_path, gt), frame_locator(pr_path, pr)
    num_frames = read_seqinfo(gt_root / name / "seqinfo.ini")["seqLength"]
    gt_path = str(gt_root / name / "gt" / "gt.txt")
    gt, gt_order = read_rows(gt_path, num_frames, columns=8)
    pr, pr_order = read_rows(pr_path, num_frames, columns=6) if has_pred else (np.zeros((0, 9)), np.zeros(0, int))
    gt[:, 2:6], pr[:, 2:6] = xywh_to_corners(gt[:, 2:6]), xywh_to_corners(pr[:, 2:6])
    return num_frames, gt, pr, line_locator(gt_path, gt_order), line_locator(pr_path, pr_order)


def _frames_with_data(gt: np.ndarray, pr: np.ndarray) -> int:
    """The last frame that holds a box: frames after it change no metric, so per-frame arrays
    stop there however long seqinfo.ini says the sequence is."""
    return int(max(gt[:, 0].max(initial=1), pr[:, 0].max(initial=1)))


def evaluate_sequence(gt_root: Path, pred_root: Path, name: str, benchmark: str, allow_missing: bool,
                      json_layout: bool = False) -> dict:
    """{class: {metric: TrackEval-style fields}} for one sequence."""
    num_frames, gt, pr, locate_gt, locate_pr = _read_sequence(gt_root, pred_root, name, json_layout, allow_missing)
    per_class = benchmarks.prepare(benchmark, _frames_with_data(gt, pr), gt, pr, locate_gt, locate_pr)
    for seq in per_class.values():
        seq.length = num_frames  # what CLEAR reports as CLR_Frames
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
    json_layout = benchmark == "bdd100k" and _is_json_layout(gt_root)
    names = find_sequences(gt_root, seqmap, json_layout)
    if seqmap is None:
        check_no_orphans(pred_root, names, ".json" if json_layout else ".txt", gt_root)
    raw = {name: evaluate_sequence(gt_root, pred_root, name, benchmark, allow_missing, json_layout) for name in names}
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
