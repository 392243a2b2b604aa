"""Full Deformable DETR (R50, default config) forward and forward+backward: time and peak memory.

Prints JSON. On a GPU the input is one 800x1333 image (the official test size); on CPU a
smaller one (default 512x853) so that the run takes minutes, not hours. The reference in the
same run is the same model with its deformable attention swapped for the textbook
grid_sample formulation of `bench_msda.py`, so `*_ratio` (ours / reference) isolates what our
attention kernel changes in the whole model. Each measurement runs in its own process
(peak memory: CUDA allocator peak, or growth of peak RSS on CPU). CPU runs use one thread
unless OMP_NUM_THREADS says otherwise.

    python benchmarks/bench_detector.py [--device cpu|cuda] [--size 512x853] [--reps 2] [--refine]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import trackformers.ops.msda as msda  # noqa: E402
from trackformers.models.detector import DetectorConfig, build_detector  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_msda import reference_ms_deform_attn  # noqa: E402


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def worker(impl: str, mode: str, device: str, size: tuple[int, int], reps: int, refine: bool) -> dict:
    if impl == "reference":
        msda.ms_deform_attn = reference_ms_deform_attn  # what MSDeformAttn.forward calls
    torch.manual_seed(0)
    model = build_detector(DetectorConfig(with_box_refine=refine)).to(device)
    H, W = size
    images = torch.randn(1, 3, H, W, device=device)
    masks = torch.zeros(1, H, W, dtype=torch.bool, device=device)
    grad = mode == "forward_backward"
    model.train(grad)

    def once():
        out = model(images, masks)
        if grad:
            (out["pred_logits"].sum() + out["pred_boxes"].sum()).backward()
            model.zero_grad(set_to_none=True)

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with torch.set_grad_enabled(grad):
        once()
        sync(device)
        peak = (torch.cuda.max_memory_allocated() - base if device == "cuda"
                else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            once()
            sync(device)
            times.append(time.perf_counter() - t0)
    return {"median_ms": 1000 * sorted(times)[len(times) // 2], "peak_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="HxW (default 800x1333 on cuda, 512x853 on cpu)")
    parser.add_argument("--reps", type=int, default=None, help="timed runs (default 10 cuda, 2 cpu)")
    parser.add_argument("--refine", action="store_true", help="iterative box refinement variant")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device == "cuda"
    size = tuple(int(v) for v in (args.size or ("800x1333" if cuda else "512x853")).split("x"))
    reps = args.reps or (10 if cuda else 2)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.device, size, reps, args.refine)))
        return
    report = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "model": "Deformable DETR R50" + (" + box refine" if args.refine else ""), "input_hw": size,
              "batch": 1}
    if cuda:
        report["gpu"] = torch.cuda.get_device_name()
    for mode in ("forward", "forward_backward"):
        runs = {}
        for impl in ("ours", "reference"):
            cmd = [sys.executable, __file__, "--device", args.device, "--size", "x".join(map(str, size)),
                   "--reps", str(reps), "--worker", impl, mode] + (["--refine"] if args.refine else [])
            runs[impl] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        runs["time_ratio"] = runs["ours"]["median_ms"] / runs["reference"]["median_ms"]
        runs["memory_ratio"] = runs["ours"]["peak_mb"] / max(runs["reference"]["peak_mb"], 1e-9)
        report[mode] = runs
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
