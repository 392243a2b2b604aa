"""Synthetic evaluation cases with controlled tracking errors, and a TrackEval adapter.

Used by the tests and by `benchmarks/bench_eval.py` to compare `trackformers.evaluate` with
TrackEval itself (an optional, test-only dependency imported only by `run_trackeval`).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trackformers.data.mot import write_seqinfo, write_seqmap
from trackformers.eval.benchmarks import BDD_CATEGORIES


@dataclass
class Errors:
    """Probabilities of the tracking errors a synthetic prediction contains."""
    miss: float = 0.05          # a gt box is not predicted (per box)
    jitter: float = 0.05        # box noise, as a fraction of the box size
    fp: float = 0.5             # expected false positives per frame
    switch: float = 0.003       # per track and frame: two tracks swap ids from here on
    new_id: float = 0.003       # per track and frame: the track gets a fresh id from here on
    gap: float = 0.005          # per track and frame: a gap of 1-10 frames starts
    duplicate: float = 0.02     # per box: a second, slightly moved box with another id
    distractor: float = 0.0     # per gt track: class is a MOT distractor (2, 7, 8 or 12)
    zero_marked: float = 0.0    # per gt track: conf column 0 (MOT: ignored; bdd100k: a crowd box)
    classes: tuple[int, ...] = (1,)  # gt classes drawn per track (multi-class cases)


def make_sequence(rng: np.random.Generator, num_frames: int, num_tracks: int, errors: Errors,
                  size: tuple[int, int] = (1280, 720)) -> tuple[np.ndarray, np.ndarray]:
    """One sequence: gt rows (frame,id,x,y,w,h,conf,class,vis) and predicted rows (same columns)."""
    width, height = size
    gt = []
    for tid in range(1, num_tracks + 1):
        start = int(rng.integers(1, num_frames + 1))
        end = int(min(num_frames, start + rng.integers(1, max(num_frames, 2))))
        frames = np.arange(start, end + 1)
        w0, h0 = rng.uniform(20, 120), rng.uniform(40, 240)
        xy = np.array([rng.uniform(0, width - w0), rng.uniform(0, height - h0)])
        steps = rng.normal(0, 4, size=(len(frames), 2)).cumsum(0)
        scale = np.exp(rng.normal(0, 0.01, size=len(frames)).cumsum())
        cls = int(rng.choice(errors.classes))
        if rng.random() < errors.distractor:
            cls = int(rng.choice([2, 7, 8, 12]))
        conf = 0 if rng.random() < errors.zero_marked else 1
        rows = np.column_stack([frames, np.full(len(frames), tid), xy + steps, w0 * scale, h0 * scale,
                                np.full(len(frames), conf), np.full(len(frames), cls),
                                rng.uniform(0, 1, len(frames))])
        gt.append(rows)
    gt = np.concatenate(gt) if gt else np.zeros((0, 9))
    gt[:, 2:6] = np.round(gt[:, 2:6], 2)
    return gt, _predict(rng, gt, num_frames, errors, size)


def _predict(rng, gt: np.ndarray, num_frames: int, errors: Errors, size) -> np.ndarray:
    """Corrupt the ground truth into a tracker's output with the requested errors."""
    pred = gt.copy()
    pred[:, 1] += 1000  # tracker ids are unrelated to gt ids
    track = gt[:, 1].astype(int)  # the gt track each row comes from
    tracks = np.unique(track)
    keep = np.ones(len(pred), bool)
    # Identity errors act on the rest of a track from an event's frame on; events in frame order.
    draws = rng.random((3, num_frames, len(tracks)))
    events = [(f + 1, kind, tracks[k]) for kind, p in enumerate((errors.new_id, errors.gap, errors.switch))
              for f, k in zip(*np.nonzero(draws[kind] < p))]
    next_id = 5000
    for frame, kind, k in sorted(events):
        suffix = (track == k) & (pred[:, 0] >= frame)
        if kind == 0:
            pred[suffix, 1] = next_id
            next_id += 1
        elif kind == 1:
            keep &= ~(suffix & (pred[:, 0] < frame + rng.integers(1, 11)))
        else:
            other = (track == rng.choice(tracks)) & (pred[:, 0] >= frame)
            if suffix.any() and other.any():
                pred[suffix, 1], pred[other, 1] = pred[other, 1][0], pred[suffix, 1][0]
    keep &= rng.random(len(pred)) >= errors.miss
    pred = pred[keep]
    pred[:, 2:6] += rng.normal(0, errors.jitter, size=(len(pred), 4)) * pred[:, [4, 5, 4, 5]]
    dup = pred[rng.random(len(pred)) < errors.duplicate].copy()
    dup[:, 1] += 100000
    dup[:, 2:4] += rng.normal(0, 3, size=(len(dup), 2))
    n_fp = rng.poisson(errors.fp * num_frames)
    fp = np.column_stack([rng.integers(1, num_frames + 1, n_fp), 200000 + np.arange(n_fp),
                          rng.uniform(0, size[0] - 50, n_fp), rng.uniform(0, size[1] - 100, n_fp),
                          rng.uniform(10, 100, n_fp), rng.uniform(20, 200, n_fp),
                          np.ones(n_fp), rng.choice(np.unique(gt[:, 7]) if len(gt) else [1], n_fp),
                          np.full(n_fp, -1.0)])
    pred = np.concatenate([pred, dup, fp])
    pred[:, 6] = np.round(rng.uniform(0.3, 1.0, len(pred)), 3)
    pred[:, 8] = -1
    pred[:, 2:6] = np.round(pred[:, 2:6], 2)
    return pred[np.argsort(pred[:, 0], kind="stable")]


def write_case(root: str | os.PathLike, seqs: dict[str, tuple[np.ndarray, np.ndarray, int]],
               pred_class: bool = False) -> tuple[Path, Path]:
    """Write {name: (gt, pred, num_frames)} in the MOTChallenge layout; returns (gt_root, pred_root).

    Predictions have the class column when `pred_class` (multi-class cases), else -1."""
    root = Path(root)
    gt_root, pred_root = root / "gt", root / "trackers" / "pred"
    pred_root.mkdir(parents=True, exist_ok=True)
    for name, (gt, pred, num_frames) in seqs.items():
        (gt_root / name / "gt").mkdir(parents=True, exist_ok=True)
        write_seqinfo(gt_root / name / "seqinfo.ini", name, num_frames, 1280, 720)
        with open(gt_root / name / "gt" / "gt.txt", "w") as f:
            f.writelines(f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},"
                         f"{int(r[6])},{int(r[7])},{r[8]:.3f}\n" for r in gt)
        if pred is None:
            continue
        with open(pred_root / f"{name}.txt", "w") as f:
            cls = (lambda r: int(r[7])) if pred_class else (lambda r: -1)
            f.writelines(f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},"
                         f"{r[6]:.3f},{cls(r)},-1,-1\n" for r in pred)
    write_seqmap(root / "seqmap.txt", sorted(seqs))
    return gt_root, pred_root


def write_bdd_json(gt_root: Path, pred_root: Path, out: Path) -> tuple[Path, Path]:
    """Convert a MOT-layout BDD-like case to TrackEval's BDD100K JSON layout (one file per video).

    Ground-truth rows with conf 0 become crowd regions (`attributes.Crowd`)."""
    from trackformers.data.mot import read_mot, read_seqinfo

    gt_out, pred_out = out / "gt", out / "trackers" / "pred"
    gt_out.mkdir(parents=True, exist_ok=True)
    pred_out.mkdir(parents=True, exist_ok=True)
    for seq_dir in sorted(p for p in gt_root.iterdir() if (p / "gt" / "gt.txt").is_file()):
        seq, length = seq_dir.name, read_seqinfo(seq_dir / "seqinfo.ini")["seqLength"]
        for rows, path, is_gt in ((read_mot(seq_dir / "gt" / "gt.txt"), gt_out, True),
                                  (read_mot(pred_root / f"{seq}.txt"), pred_out, False)):
            frames = []
            for t in range(1, length + 1):
                labels = []
                for r in rows[rows[:, 0] == t]:
                    x, y, w, h = (float(v) for v in r[2:6])
                    label = {"id": str(int(r[1])), "category": BDD_CATEGORIES[int(r[7])],
                             "box2d": {"x1": x, "y1": y, "x2": x + w, "y2": y + h}}
                    if is_gt:
                        label["attributes"] = {"Crowd": bool(int(r[6]) == 0)}
                    labels.append(label)
                frames.append({"name": f"{seq}-{t:07d}.jpg", "videoName": seq, "index": t - 1, "labels": labels})
            with open(path / f"{seq}.json", "w") as f:
                json.dump(frames, f)
    return gt_out, pred_out


def run_trackeval(gt_root: str | os.PathLike, pred_root: str | os.PathLike, benchmark: str,
                  seqs: list[str] | None = None) -> dict:
    """TrackEval's results for a MOT-layout case (BDD100K: a JSON-layout case), in the shape of
    `trackformers.evaluate`: {seq: metrics, 'COMBINED': metrics} (per class for bdd100k)."""
    import trackeval  # test-only dependency

    gt_root, pred_root = Path(gt_root), Path(pred_root)
    quiet = {"PRINT_CONFIG": False}
    eval_cfg = {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
                "OUTPUT_EMPTY_CLASSES": False, "LOG_ON_ERROR": None}
    common = {"GT_FOLDER": str(gt_root), "TRACKERS_FOLDER": str(pred_root.parent),
              "TRACKERS_TO_EVAL": [pred_root.name], "TRACKER_SUB_FOLDER": "", "OUTPUT_FOLDER": None,
              "PRINT_CONFIG": False}
    if benchmark == "bdd100k":
        dataset = trackeval.datasets.BDD100K(dict(common))
    else:
        if seqs is None:
            seqs = sorted(p.name for p in gt_root.iterdir() if (p / "gt" / "gt.txt").is_file())
        dataset = trackeval.datasets.MotChallenge2DBox({
            **common, "BENCHMARK": "MOT20" if benchmark == "mot20" else "MOT17", "SKIP_SPLIT_FOL": True,
            "DO_PREPROC": benchmark in ("mot17", "mot20"), "SEQ_INFO": {s: None for s in seqs}})
    metrics = [trackeval.metrics.HOTA(quiet), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]
    with contextlib.redirect_stdout(io.StringIO()):
        trackeval._timing.DO_TIMING = False
        out, _ = trackeval.Evaluator(eval_cfg).evaluate([dataset], metrics)
    res = out[dataset.get_name()][pred_root.name]
    if benchmark == "bdd100k":
        return {("COMBINED" if seq == "COMBINED_SEQ" else seq): {cls: _flatten(m) for cls, m in per_cls.items()}
                for seq, per_cls in res.items()}
    return {("COMBINED" if seq == "COMBINED_SEQ" else seq): _flatten(per_cls["pedestrian"])
            for seq, per_cls in res.items()}


def _flatten(metrics: dict) -> dict:
    """TrackEval's {metric: {field: value}} -> one flat dict; arrays kept as arrays."""
    flat = {}
    for fields in metrics.values():
        flat.update(fields)
    return flat


def differences(ours: dict, ref: dict, tol: float = 1e-6) -> tuple[list[str], int]:
    """Compare `evaluate` output with `run_trackeval` output: (mismatch descriptions, number of
    values compared). HOTA arrays are compared per alpha and as their mean; counts exactly."""
    bad, checked = [], 0
    if set(ours) != set(ref):
        bad.append(f"entries differ: {sorted(set(ours) ^ set(ref))}")
    for entry in set(ours) & set(ref):
        nested = "per_alpha" not in ref[entry] and isinstance(next(iter(ref[entry].values())), dict)
        pairs = [(f"{entry}/{c}", ours[entry].get(c), ref[entry][c]) for c in ref[entry]] if nested \
            else [(entry, ours[entry], ref[entry])]
        for where, o, r in pairs:
            if o is None:
                bad.append(f"{where}: missing")
                continue
            for key, value in r.items():
                if key == "Frames":  # Count's frame number: not a metric, not combined by TrackEval
                    continue
                if isinstance(value, np.ndarray):
                    got = np.asarray(o["per_alpha"][key])
                    worst = float(np.max(np.abs(got - value), initial=0))
                    worst = max(worst, abs(o[key] - float(np.mean(value)))) if key in o else worst
                else:
                    worst = abs(o[key] - float(value)) if isinstance(o[key], float) else float(o[key] != int(value))
                checked += 1
                if not worst <= tol:
                    bad.append(f"{where} {key}: {o.get(key, o['per_alpha'].get(key))} != {value}")
    return bad, checked
