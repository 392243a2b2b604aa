"""Full Deformable DETR (R50, default config) forward and forward+backward: time and peak memory.

Prints JSON. On a GPU the input is one 800x1333 image (the official test size); on CPU a
smaller one (default 512x853) so that the run takes minutes, not hours. The reference in the
same run is the same model with its deformable attention swapped for the textbook
grid_sample formulation of `bench_msda.py`, so the ratios (ours / reference) isolate what our
attention changes in the whole model. Times alternate the two run by run in one process;
peak memory is one run per (implementation, pass) in a fresh process (see bench_msda.PeakMemory).
CPU runs use one thread unless OMP_NUM_THREADS says otherwise.

    python benchmarks/bench_detector.py [--device cpu|cuda] [--size 512x853] [--reps 3] [--refine]
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import trackformers.ops.msda as msda  # noqa: E402
from trackformers.models.detector import DetectorConfig, build_detector  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_msda import PeakMemory, reference_ms_deform_attn, sync  # noqa: E402

# MSDeformAttn.forward looks `ms_deform_attn` up in its module at call time.
IMPLS = {"ours": msda.ms_deform_attn, "reference": reference_ms_deform_attn}


def setup(device: str, size: tuple[int, int], refine: bool, grad: bool):
    torch.manual_seed(0)
    model = build_detector(DetectorConfig(with_box_refine=refine)).to(device).train(grad)
    H, W = size
    images = torch.randn(1, 3, H, W, device=device)
    masks = torch.zeros(1, H, W, dtype=torch.bool, device=device)

    def once(impl: str):
        msda.ms_deform_attn = IMPLS[impl]
        with torch.set_grad_enabled(grad):
            out = model(images, masks)
            if grad:
                (out["pred_logits"].sum() + out["pred_boxes"].sum()).backward()
                model.zero_grad(set_to_none=True)
    return once


def timings(device, size, refine, grad, reps) -> dict:
    once = setup(device, size, refine, grad)
    times = {impl: [] for impl in IMPLS}
    for rep in range(reps + 1):
        for impl in IMPLS:
            sync(device)
            t0 = time.perf_counter()
            once(impl)
            sync(device)
            if rep:  # first round: warm-up
                times[impl].append(1000 * (time.perf_counter() - t0))
    return {impl: {"median_ms": sorted(t)[len(t) // 2], "min_ms": min(t)} for impl, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="HxW (default 800x1333 on cuda, 512x853 on cpu)")
    parser.add_argument("--reps", type=int, default=None, help="timed rounds (default 10 cuda, 3 cpu)")
    parser.add_argument("--refine", action="store_true", help="iterative box refinement variant")
    parser.add_argument("--memory-worker", nargs=2, metavar=("IMPL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device == "cuda"
    size = tuple(int(v) for v in (args.size or ("800x1333" if cuda else "512x853")).split("x"))
    reps = args.reps or (10 if cuda else 3)
    if args.memory_worker:
        impl, mode = args.memory_worker
        once = setup(args.device, size, args.refine, mode == "forward_backward")
        with PeakMemory(args.device) as peak:
            once(impl)
        print(json.dumps(peak.mb))
        return
    report = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "model": "Deformable DETR R50" + (" + box refine" if args.refine else ""), "input_hw": size,
              "batch": 1, "reps": reps}
    if cuda:
        report["gpu"] = torch.cuda.get_device_name()
    for mode in ("forward", "forward_backward"):
        runs = timings(args.device, size, args.refine, mode == "forward_backward", reps)
        for impl in IMPLS:
            cmd = [sys.executable, __file__, "--device", args.device, "--size", "x".join(map(str, size)),
                   "--memory-worker", impl, mode] + (["--refine"] if args.refine else [])
            runs[impl]["peak_mb"] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        runs["time_ratio"] = runs["ours"]["median_ms"] / runs["reference"]["median_ms"]
        runs["memory_ratio"] = runs["ours"]["peak_mb"] / max(runs["reference"]["peak_mb"], 1e-9)
        report[mode] = runs
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
