"""Choose a model's inference settings (thresholds, miss tolerance, ...) on validation data.

    trackformers tune motr-synth --val data/synth/simple/val data/synth/dance/val \\
        --grid score_thresh=0.6,0.5,0.4 --grid birth_nms_iou=0.5,1.0 --export runs/motr-synth-tuned

Every candidate setting tracks every validation split (a folder of sequences with gt, like
`track` and `eval` take) and is scored by the mean over the splits of one metric (HOTA by
default, COMBINED over a split's sequences). Candidates are the Cartesian product of the
`--grid` lists, each combined with every `--try` group (settings that must change together,
e.g. "score_thresh=0.5 prob_threshold=0.5"). The table of all candidates is printed best
first; `--export` writes the model file again (same weights, same dtype) with the best setting
in its config and the whole sweep in its provenance, so `track --model` uses it as it is.
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import torch

from trackformers.config import ConfigError
from trackformers.engine.bench import METRICS, score_tracker
from trackformers.eval.benchmarks import BENCHMARKS


def candidates(grid: list[str], tries: list[str]) -> list[list[str]]:
    """Every setting to try, as lists of KEY=VALUE: product(grid) x tries (in the order given)."""
    axes = []
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,...")
        axes.append([f"{key.strip()}={v.strip()}" for v in values.split(",")])
    groups = [t.split() for t in tries] or [[]]
    for group in groups:
        for item in group:
            if "=" not in item:
                raise ConfigError(f"--try {item!r}: expected KEY=VALUE [KEY=VALUE ...]")
    return [list(point) + group for point in itertools.product(*axes) for group in groups]


def tune(model: str, val: list[str], settings: list[list[str]], metric: str = "HOTA", benchmark: str = "generic",
         device: str = "auto", on_result=None) -> list[dict]:
    """[{"settings", "score", "<split>": metrics+fps}] for every candidate, best (highest score) first.

    Ties keep the candidates' order, so list the setting you would prefer on a tie first."""
    from trackformers import checkpoint
    from trackformers.trackers.registry import build_tracker, resolve_device, resolve_model_path
    dev = resolve_device(device)
    state, meta = checkpoint.load_model(resolve_model_path(model))  # read once; each candidate rebuilds the tracker
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, setting in enumerate(settings):
            tracker = build_tracker(meta["config"], setting)
            tracker.load_state_dict(state)
            tracker.to(dev).eval()
            row = {"settings": setting}
            for j, split in enumerate(val):
                row[split] = score_tracker(tracker, Path(split), Path(tmp) / f"{i}_{j}", dev, model, benchmark)
            row["score"] = round(sum(row[s][metric] for s in val) / len(val), 5)
            rows.append(row)
            if on_result:
                on_result(row)
    return sorted(rows, key=lambda r: -r["score"])


def export(model: str, rows: list[dict], val: list[str], metric: str, out: str) -> Path:
    """The model file again with the best (first) row's settings in its config and the sweep in its provenance."""
    from trackformers import checkpoint
    from trackformers.trackers.registry import build_tracker, export_path, resolve_model_path, tracker_config
    state, meta = checkpoint.load_model(resolve_model_path(model))  # the stored tensors, dtype kept
    best = rows[0]["settings"]
    config = tracker_config(build_tracker(meta["config"], best), meta["config"]["method"])  # the full, checked config
    tuning = {"model": model, "val": val, "metric": metric, "best": best,
              "sweep": [{"score": r["score"], "settings": r["settings"]} for r in rows]}
    return checkpoint.save_model(export_path(out), state, config, **{**meta.get("provenance", {}), "tuning": tuning})


def _line(row: dict, metric: str) -> str:
    return f"{metric} {100 * row['score']:5.1f}  " + (" ".join(row["settings"]) or "(the model's own settings)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="built-in model name or model file")
    parser.add_argument("--val", nargs="+", required=True, metavar="SPLIT",
                        help="validation split folders (sequences with gt/gt.txt); the score is the mean over them")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="values of one setting to try (repeatable: the product of all grids is tried)")
    parser.add_argument("--try", dest="tries", action="append", default=[], metavar="'KEY=V KEY=V'",
                        help="settings that change together, one candidate group (repeatable)")
    parser.add_argument("--metric", default="HOTA", choices=METRICS, help="what to maximise")
    parser.add_argument("--benchmark", default="generic", choices=sorted(BENCHMARKS),
                        help="evaluation preprocessing and classes, as `trackformers eval --benchmark`")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--export", default=None, metavar="NAME",
                        help="write the model with the best settings as built-in NAME, or to a path "
                             "(PATH.safetensors + PATH.json) when NAME has a '/'")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write every candidate's metrics as JSON")


def run(args: argparse.Namespace) -> int:
    from trackformers.trackers.registry import resolve_model_path
    resolve_model_path(args.model)  # a missing model fails before any tracking
    for split in args.val:
        if not Path(split).is_dir():
            raise FileNotFoundError(f"--val {split}: no such folder")
    settings = candidates(args.grid, args.tries)
    print(f"{len(settings)} candidate setting(s) x {len(args.val)} split(s), {torch.get_num_threads()} threads",
          flush=True)
    rows = tune(args.model, args.val, settings, args.metric, args.benchmark, args.device,
                on_result=lambda row: print("  " + _line(row, args.metric), flush=True))
    print("best first:")
    for row in rows:
        print("  " + _line(row, args.metric) + "  " + "  ".join(
            "/".join(Path(s).parts[-2:]) + " " + " ".join(f"{k} {100 * row[s][k]:.1f}" for k in METRICS)
            for s in args.val))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"model": args.model, "val": args.val, "metric": args.metric,
                                               "candidates": rows}, indent=2) + "\n")
    if args.export:
        stem = export(args.model, rows, args.val, args.metric, args.export)
        print(f"best: {' '.join(rows[0]['settings']) or '(unchanged)'} -> {stem}.safetensors")
    return 0
