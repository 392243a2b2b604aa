"""Evaluation speed: trackformers.evaluate against TrackEval on the same files, same process.

A DanceTrack-val-sized case (25 sequences x 1200 frames, ~20 objects per frame, a tracker
output with misses, jitter, false positives, switches, fragmentations and duplicates) is
written to a temporary folder and evaluated by both, single-process, runs interleaved; the
fastest run of each is compared (load from other processes only adds time). Prints JSON:
both times, the ratio, and whether every metric agrees (within 1e-6, counts exactly).

    python benchmarks/bench_eval.py            # full size
    python benchmarks/bench_eval.py --quick    # 4 sequences x 300 frames
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from trackformers.eval.evaluate import evaluate
from trackformers.eval.testing import Errors, differences, make_sequence, run_trackeval, write_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seqs", type=int, default=25)
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--tracks", type=int, default=58, help="tracks per sequence (~20 visible per frame)")
    parser.add_argument("--benchmark", default="dancetrack", choices=("dancetrack", "mot17"))
    parser.add_argument("--repeats", type=int, default=5, help="trackformers runs (the fastest is reported)")
    parser.add_argument("--trackeval-repeats", type=int, default=2, help="TrackEval runs (the fastest is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="4 sequences x 300 frames")
    args = parser.parse_args()
    if args.quick:
        args.seqs, args.frames = 4, 300

    rng = np.random.default_rng(args.seed)
    errors = Errors(distractor=0.1, zero_marked=0.05) if args.benchmark == "mot17" else Errors()
    seqs = {f"seq{k:04d}": (*make_sequence(rng, args.frames, args.tracks, errors, size=(1920, 1080)), args.frames)
            for k in range(args.seqs)}
    with tempfile.TemporaryDirectory() as tmp:
        gt_root, pred_root = write_case(tmp, seqs)
        # Interleaved, fastest of each: other load on the machine only ever adds time.
        times, trackeval_times = [], []
        for k in range(max(args.repeats, args.trackeval_repeats)):
            if k < args.repeats:
                start = time.perf_counter()
                ours = evaluate(gt_root, pred_root, benchmark=args.benchmark)
                times.append(time.perf_counter() - start)
            if k < args.trackeval_repeats:
                start = time.perf_counter()
                ref = run_trackeval(gt_root, pred_root, args.benchmark)
                trackeval_times.append(time.perf_counter() - start)
    bad, checked = differences(ours, ref)
    ours_s, trackeval_s = min(times), min(trackeval_times)
    total_frames = args.seqs * args.frames
    print(json.dumps({
        "case": {"benchmark": args.benchmark, "sequences": args.seqs, "frames": args.frames,
                 "gt_boxes_per_frame": round(sum(len(g) for g, _, _ in seqs.values()) / total_frames, 1),
                 "predicted_boxes_per_frame": round(sum(len(p) for _, p, _ in seqs.values()) / total_frames, 1)},
        "trackformers_s": round(ours_s, 3), "trackformers_runs_s": [round(t, 3) for t in times],
        "trackeval_s": round(trackeval_s, 3), "trackeval_runs_s": [round(t, 3) for t in trackeval_times],
        "speedup": round(trackeval_s / ours_s, 1),
        "identical": not bad, "values_compared": checked, "mismatches": bad[:10],
        "COMBINED": {k: ours["COMBINED"][k] for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")},
    }, indent=2))


if __name__ == "__main__":
    main()
