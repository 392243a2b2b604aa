"""Tracking accuracy and speed of the built-in models on held-out synthetic sets (JSON).

    python benchmarks/bench_track.py                       # motr-synth, memotr-synth vs the IoU baseline, CPU
    python benchmarks/bench_track.py --device cuda --json bench_track.json

Prints the `trackformers bench` report plus, for every preset, the ratio of each model's
figures to the reference model's (the baseline by default), measured in the same run on the
same generated sequences, so the comparison does not depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trackformers.data.synthetic import parse_size
from trackformers.engine.bench import HELDOUT_SEED, METRICS, run_benchmark


def ratios(report: dict, reference: str) -> dict:
    """{preset: {model: {metric: model / reference}}} for every model other than the reference."""
    out = {}
    for preset in report["setup"]["presets"]:
        ref = report[preset][reference]
        out[preset] = {m: {k: round(v[k] / ref[k], 4) if ref[k] else None for k in (*METRICS, "fps")}
                       for m, v in report[preset].items() if m != reference}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["motr-synth", "memotr-synth", "iou-baseline-synth"])
    p.add_argument("--reference", default=None, help="model the ratios divide by (default: the last one)")
    p.add_argument("--presets", nargs="+", default=["simple", "dance"])
    p.add_argument("--seqs", type=int, default=4)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--size", type=parse_size, default=(640, 360), help="frame size WxH (the demo's)")
    p.add_argument("--seed", type=int, default=HELDOUT_SEED)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    report = run_benchmark(args.models, args.presets, args.seqs, args.frames, args.size, args.seed, args.device)
    if len(args.models) > 1:
        report["ratios"] = ratios(report, args.reference or args.models[-1])
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
