"""Accuracy and speed of tracking models on held-out synthetic sets: a table, and JSON.

    trackformers bench                      # every installed built-in model on `simple` and `dance`
    trackformers bench --models motr-synth memotr-synth iou-baseline-synth --json bench.json

For each preset a test split is generated with seeds never used in training (`HELDOUT_SEED`
and up), every model tracks it, and the results are scored like `trackformers eval` does:
HOTA, DetA, AssA, MOTA, IDF1 over all sequences (COMBINED), plus the tracker's FPS (model +
pre/post-processing, not reading or writing files) on the chosen device.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from trackformers.data.synthetic import parse_size

METRICS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1")
HELDOUT_SEED = 90_000  # training sets use small seeds; benchmark sets start here


def load_for_bench(name: str, overrides: list[str] | None, device: torch.device):
    """A model file or built-in name; or a training config (.yaml): its model, untrained (seed 0),
    for speed figures of an architecture before any weights exist."""
    from trackformers.trackers.registry import build_tracker, load_model_file
    if name.endswith((".yaml", ".yml")):
        from trackformers.config import load
        from trackformers.engine.train_config import TrainConfig
        torch.manual_seed(0)
        return build_tracker(load(TrainConfig, name).model, overrides, trusted=True).to(device).eval()
    return load_model_file(name, overrides, device)[0]


def benchmark_model(model_name: str, split_dir: Path, out_dir: Path, device: torch.device,
                    overrides: list[str] | None = None) -> dict:
    """Track every sequence of `split_dir` with one model; score it against the split's gt."""
    return score_tracker(load_for_bench(model_name, overrides, device), split_dir, out_dir, device, model_name)


def score_tracker(model, split_dir: Path, out_dir: Path, device: torch.device, name: str = "",
                  benchmark: str = "generic") -> dict:
    """Metrics (COMBINED over the split's sequences) and FPS of a loaded tracker on one split."""
    from trackformers import evaluate
    from trackformers.engine.track import track_source
    from trackformers.trackers.registry import StreamingTracker

    tracker = StreamingTracker(model, device, name=name)
    sequences = track_source(tracker, str(split_dir), out_dir, progress=False)
    frames = sum(s["frames"] for s in sequences.values())
    seconds = sum(s["seconds"] for s in sequences.values())
    combined = evaluate(str(split_dir), str(out_dir), benchmark=benchmark)["COMBINED"]
    return {**{k: round(float(combined[k]), 5) for k in METRICS},
            "fps": round(frames / seconds, 3), "frames": frames, "tracks": sum(s["tracks"] for s in sequences.values())}


def run_benchmark(models: list[str], presets: list[str], seqs: int, frames: int, size: tuple[int, int],
                  seed: int = HELDOUT_SEED, device: str = "auto", work_dir: str | None = None) -> dict:
    """{"setup": ..., "<preset>": {"<model>": metrics+fps}} for every preset and model."""
    from trackformers.data.synthetic import generate_synthetic
    from trackformers.trackers.registry import resolve_device

    dev = resolve_device(device)
    report = {"setup": {"models": models, "presets": presets, "seqs": seqs, "frames": frames, "size": list(size),
                        "seed": seed, "device": str(dev), "torch": torch.__version__,
                        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work_dir or tmp)
        for preset in presets:
            data = root / "data" / preset
            generate_synthetic(str(data), preset, seqs=seqs, frames=frames, size=size, seed=seed, split="test")
            report[preset] = {m: benchmark_model(m, data / "test", root / "results" / preset / _safe(m), dev)
                              for m in models}
    return report


def format_report(report: dict) -> str:
    """One row per preset and model: the metrics in percent and the FPS."""
    rows = [(preset, model, r) for preset, models in report.items() if preset != "setup" for model, r in models.items()]
    pw, mw = max(len("set"), *(len(p) for p, _, _ in rows)), max(len("model"), *(len(m) for _, m, _ in rows))
    lines = [" ".join([f"{'set':<{pw}}", f"{'model':<{mw}}", *(f"{k:>6}" for k in METRICS), f"{'FPS':>7}"])]
    for i, (preset, model, r) in enumerate(rows):
        if i and preset != rows[i - 1][0]:
            lines.append("-" * len(lines[0]))
        lines.append(" ".join([f"{preset:<{pw}}", f"{model:<{mw}}", *(f"{100 * r[k]:>6.1f}" for k in METRICS),
                               f"{r['fps']:>7.1f}"]))
    setup = report["setup"]
    lines.append(f"({setup['seqs']} x {setup['frames']} frames of {setup['size'][0]}x{setup['size'][1]} per set, "
                 f"seed {setup['seed']}, {setup['gpu'] or setup['device']}, {setup['threads']} threads)")
    return "\n".join(lines)


def _safe(name: str) -> str:
    """A folder name for a model's results: the file name of a path, the name of a built-in."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=None,
                        help="built-in model names, model files, or training configs (.yaml: untrained, for speed); "
                             "default: every installed built-in model")
    parser.add_argument("--presets", nargs="+", default=["simple", "dance"], help="synthetic presets")
    parser.add_argument("--seqs", type=int, default=4, help="sequences per preset")
    parser.add_argument("--frames", type=int, default=100, help="frames per sequence")
    parser.add_argument("--size", type=parse_size, default=(640, 360), help="frame size WxH")
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED, help="seed of the held-out sets")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--work-dir", default=None, help="keep the generated data and results here")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="also save bar charts of HOTA / DetA / AssA per model, one panel per preset")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the full JSON report to this file ('-': print it instead of the table)")


def run(args: argparse.Namespace) -> int:
    from trackformers.trackers.registry import installed_builtins
    models = args.models or installed_builtins()
    if not models:
        raise FileNotFoundError("no built-in model is installed: name model files with --models")
    report = run_benchmark(models, args.presets, args.seqs, args.frames, args.size, args.seed,
                           args.device, args.work_dir)
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
        return 0
    print(format_report(report))
    if args.plot:
        from trackformers.viz import plot_bars
        s = report["setup"]
        plot_bars(args.plot, {p: report[p] for p in args.presets}, ("HOTA", "DetA", "AssA"),
                  title=f"held-out synthetic sets (seed {s['seed']}, {s['seqs']} x {s['frames']} frames)")
        print(f"plot -> {args.plot}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0
