"""Multi-scale deformable attention: our `ms_deform_attn` against a grid_sample reference.

Prints JSON. Shapes are Deformable DETR R50's for an 800x1333 image: 4 levels (100x167,
50x84, 25x42, 13x21; S = 22223 tokens), 8 heads of 32 channels, 4 points, batch 1, for the
decoder cross-attention (300 queries) and the encoder self-attention (every token a query).
The reference, written here, is the textbook formulation: one grid_sample per level, the
samples of all levels stacked, weighted and summed. Each (implementation, case, pass) runs in
its own process so that peak memory is that run's alone: the CUDA allocator's peak on a GPU,
the growth of the process's peak RSS over its inputs on CPU. Ratios are ours / reference.
CPU runs use one thread unless OMP_NUM_THREADS says otherwise (on a shared machine, more
threads mostly measure waiting for each other).

    python benchmarks/bench_msda.py [--device cpu|cuda] [--reps 5] [--cases decoder,encoder]
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
import torch.nn.functional as F  # noqa: E402

from trackformers.ops.msda import ms_deform_attn  # noqa: E402

SHAPES = [(100, 167), (50, 84), (25, 42), (13, 21)]
HEADS, DIM, POINTS = 8, 32, 4


def reference_ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    """grid_sample per level, then stack all levels' samples and reduce them at once."""
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    grids = 2 * sampling_locations - 1
    samples = []
    for lvl, (v, (h, w)) in enumerate(zip(value.split(sizes, dim=1), spatial_shapes.tolist())):
        v = v.flatten(2).transpose(1, 2).reshape(N * M, D, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        samples.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    out = (torch.stack(samples, dim=-2).flatten(-2) * weights).sum(-1)
    return out.view(N, M * D, Lq).transpose(1, 2).contiguous()


IMPLS = {"ours": ms_deform_attn, "reference": reference_ms_deform_attn}


def make_inputs(case: str, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(SHAPES, device=device)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    S = sum(h * w for h, w in SHAPES)
    Lq = 300 if case == "decoder" else S
    value = torch.randn(1, S, HEADS, DIM, generator=g).to(device)
    loc = (torch.rand(1, Lq, HEADS, len(SHAPES), POINTS, 2, generator=g) * 1.1 - 0.05).to(device)
    attn = torch.rand(1, Lq, HEADS, len(SHAPES), POINTS, generator=g).to(device)
    attn = attn / attn.sum((-1, -2), keepdim=True)
    return value, shapes, starts, loc, attn


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def worker(impl: str, case: str, mode: str, device: str, reps: int) -> dict:
    """Time `reps` runs (after one warm-up) and measure the peak memory of one run."""
    fn = IMPLS[impl]
    value, shapes, starts, loc, attn = make_inputs(case, device)
    grad = mode == "forward_backward"
    for t in (value, loc, attn):
        t.requires_grad_(grad)

    def once():
        out = fn(value, shapes, starts, loc, attn)
        if grad:
            out.backward(torch.ones_like(out))
            for t in (value, loc, attn):
                t.grad = None
        return out

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with torch.set_grad_enabled(grad):
        once()  # warm-up, and the memory measurement
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


def max_difference(case: str, device: str) -> dict:
    """How far ours is from the reference (outputs and input gradients), same inputs."""
    results = []
    for fn in IMPLS.values():
        inputs = make_inputs(case, device)
        value, loc, attn = (t.requires_grad_() for t in (inputs[0], inputs[3], inputs[4]))
        out = fn(value, inputs[1], inputs[2], loc, attn)
        out.backward(torch.ones_like(out))
        results.append((out.detach(), value.grad, loc.grad, attn.grad))
    names = ("output", "grad_value", "grad_locations", "grad_weights")
    return {n: float((a - b).abs().max()) for n, a, b in zip(names, *results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cases", default="decoder,encoder")
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "CASE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.device, args.reps)))
        return
    report = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "levels": SHAPES, "heads": HEADS, "head_dim": DIM, "points": POINTS, "cases": {}}
    if args.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    for case in args.cases.split(","):
        entry = {"queries": 300 if case == "decoder" else sum(h * w for h, w in SHAPES)}
        for mode in ("forward", "forward_backward"):
            runs = {}
            for impl in IMPLS:
                cmd = [sys.executable, __file__, "--device", args.device, "--reps", str(args.reps),
                       "--worker", impl, case, mode]
                runs[impl] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                                       env=dict(os.environ)).stdout)
            runs["time_ratio"] = runs["ours"]["median_ms"] / runs["reference"]["median_ms"]
            runs["memory_ratio"] = runs["ours"]["peak_mb"] / max(runs["reference"]["peak_mb"], 1e-9)
            entry[mode] = runs
        entry["max_abs_difference"] = max_difference(case, args.device)
        report["cases"][case] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
