"""Tracker-like result files made from ground truth, to try the evaluation without a model.

    python -m trackformers.data.perturb GT_ROOT PRED_DIR --seed 0

For every `GT_ROOT/<seq>/gt/gt.txt` it writes `PRED_DIR/<seq>.txt` (MOT result format) where
boxes are jittered, some are dropped (misses), false positives are added, and tracks switch
to a new id now and then (id switches / fragmentation). Deterministic from the seed.
"""
from __future__ import annotations

import argparse
import os
import sys
import zlib

import numpy as np

from trackformers.data import mot


def perturb_rows(gt: np.ndarray, rng: np.random.Generator, size: tuple[int, int], jitter: float = 0.05,
                 drop: float = 0.1, false_positives: float = 0.05, switch: float = 0.01) -> np.ndarray:
    """MOT result rows (N, 10) from gt rows (see `mot.read_mot`). `jitter`: std of the box
    noise relative to its size; `drop`: probability a box is missed; `false_positives`:
    number of spurious one-frame boxes per gt box; `switch`: probability per box that its
    track continues under a fresh id from there on."""
    gt = gt[gt[:, mot.CONF] != 0]
    gt = gt[np.lexsort((gt[:, mot.FRAME], gt[:, mot.ID]))]  # by track, then time
    n = len(gt)
    # id switches: count switch events along each track; (id, count) -> a new consecutive id
    events = (rng.random(n) < switch).astype(np.int64)
    new_track = np.r_[True, gt[1:, mot.ID] != gt[:-1, mot.ID]] if n else np.zeros(0, bool)
    cum = np.cumsum(events)
    count = cum - np.maximum.accumulate(np.where(new_track, cum - events, 0))
    _, ids = np.unique(np.stack([gt[:, mot.ID], count], 1), axis=0, return_inverse=True)
    ids = ids.reshape(-1) + 1
    wh = gt[:, mot.W:mot.H + 1]
    xy = gt[:, mot.X:mot.Y + 1] + rng.normal(0, jitter, (n, 2)) * wh
    wh = wh * np.exp(rng.normal(0, jitter, (n, 2)))
    scores = np.clip(rng.normal(0.8, 0.1, n), 0.3, 1.0)
    keep = rng.random(n) >= drop
    rows = np.column_stack([gt[:, mot.FRAME], ids, xy, wh, scores])[keep]
    # false positives: single-frame tracks with gt-like sizes at random places
    n_fp = int(round(false_positives * n))
    if n_fp and n:
        fp_wh = wh[rng.integers(0, n, n_fp)]
        fp_xy = rng.uniform(0, 1, (n_fp, 2)) * np.maximum(np.array(size) - fp_wh, 1)
        frames = rng.integers(gt[:, mot.FRAME].min(), gt[:, mot.FRAME].max() + 1, n_fp)
        fp_ids = ids.max() + 1 + np.arange(n_fp)
        rows = np.concatenate([rows, np.column_stack([frames, fp_ids, fp_xy, fp_wh, rng.uniform(0.3, 0.7, n_fp)])])
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    return np.column_stack([rows, -np.ones((len(rows), 3))])


def perturb_dir(gt_root: str, pred_dir: str, seed: int = 0, **rates) -> list[str]:
    """Write `pred_dir/<seq>.txt` for every sequence folder of `gt_root`; returns the names."""
    if not os.path.isdir(gt_root):
        raise FileNotFoundError(f"ground-truth folder not found: {gt_root}")
    names = sorted(n for n in os.listdir(gt_root) if os.path.isfile(os.path.join(gt_root, n, "gt", "gt.txt")))
    if not names:
        raise ValueError(f"no sequences with gt/gt.txt in {gt_root}")
    for name in names:
        seq_dir = os.path.join(gt_root, name)
        info = mot.read_seqinfo(os.path.join(seq_dir, "seqinfo.ini"))
        gt = mot.read_mot(os.path.join(seq_dir, "gt", "gt.txt"))
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        rows = perturb_rows(gt, rng, (info.get("imWidth", 1920), info.get("imHeight", 1080)), **rates)
        mot.write_mot(os.path.join(pred_dir, f"{name}.txt"), rows, kind="result")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trackformers.data.perturb", description=__doc__.splitlines()[0])
    parser.add_argument("gt_root", help="folder of sequences (<seq>/gt/gt.txt, <seq>/seqinfo.ini)")
    parser.add_argument("pred_dir", help="output folder for <seq>.txt result files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jitter", type=float, default=0.05, help="box noise std relative to box size")
    parser.add_argument("--drop", type=float, default=0.1, help="probability of missing a box")
    parser.add_argument("--fp", type=float, default=0.05, help="false positives per gt box")
    parser.add_argument("--switch", type=float, default=0.01, help="id switch probability per box")
    args = parser.parse_args(argv)
    try:
        names = perturb_dir(args.gt_root, args.pred_dir, args.seed, jitter=args.jitter, drop=args.drop,
                            false_positives=args.fp, switch=args.switch)
    except (FileNotFoundError, ValueError) as e:
        print(f"perturb: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(names)} result files to {args.pred_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
