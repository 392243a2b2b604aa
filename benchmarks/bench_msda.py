"""Multi-scale deformable attention: our `ms_deform_attn` against a grid_sample reference.

Prints JSON. Shapes are Deformable DETR R50's for an 800x1333 image: 4 levels (100x167,
50x84, 25x42, 13x21; S = 22223 tokens), 8 heads of 32 channels, 4 points, batch 1, for the
decoder cross-attention (300 queries) and the encoder self-attention (every token a query).
The reference, written here, is the textbook formulation: one grid_sample per level, the
samples of all levels stacked, weighted and summed. Times alternate the two implementations
run by run in one process (both see the same machine load; median and best of --reps). Peak
memory is measured for one run per (implementation, case, pass) in a fresh process: the CUDA
allocator's peak on a GPU, the growth of the process's peak RSS over its inputs on CPU.
Ratios are ours / reference (median time, peak memory).
CPU runs use one thread unless OMP_NUM_THREADS says otherwise (on a shared machine, more
threads mostly measure waiting for each other).

    python benchmarks/bench_msda.py [--device cpu|cuda] [--reps 5] [--cases decoder,encoder]
"""
import argparse
import ctypes
import json
import os
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


def run_once(fn, inputs, grad: bool):
    value, shapes, starts, loc, attn = inputs
    out = fn(value, shapes, starts, loc, attn)
    if grad:
        out.backward(torch.ones_like(out))
        for t in (value, loc, attn):
            t.grad = None


def prepare(case: str, mode: str, device: str):
    inputs = make_inputs(case, device)
    grad = mode == "forward_backward"
    for t in (inputs[0], inputs[3], inputs[4]):
        t.requires_grad_(grad)
    return inputs, grad


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


class PeakMemory:
    """Peak memory (MB) used inside a `with` block beyond what was in use when it started:
    the CUDA allocator's peak, or on CPU (Linux) the resident-set high-water mark, reset at
    entry after handing freed heap memory back to the OS (so earlier temporaries do not hide
    the block's own peak)."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            self.base = _status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.mb = (_status_kb("VmHWM") * 1024 - self.base) / 2**20


def peak_memory(impl: str, case: str, mode: str, device: str) -> float:
    """Peak memory (MB) of one run beyond its inputs; called in a fresh process per run."""
    inputs, grad = prepare(case, mode, device)
    with torch.set_grad_enabled(grad), PeakMemory(device) as peak:
        run_once(IMPLS[impl], inputs, grad)
    return peak.mb


def timings(case: str, mode: str, device: str, reps: int) -> dict:
    """Median and best time (ms) of each implementation, alternating them run by run so that
    both see the same machine load."""
    inputs, grad = prepare(case, mode, device)
    times = {impl: [] for impl in IMPLS}
    with torch.set_grad_enabled(grad):
        for rep in range(reps + 1):
            for impl, fn in IMPLS.items():
                sync(device)
                t0 = time.perf_counter()
                run_once(fn, inputs, grad)
                sync(device)
                if rep:  # the first round is warm-up
                    times[impl].append(1000 * (time.perf_counter() - t0))
    return {impl: {"median_ms": sorted(t)[len(t) // 2], "min_ms": min(t)} for impl, t in times.items()}


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
    parser.add_argument("--memory-worker", nargs=3, metavar=("IMPL", "CASE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        print(json.dumps(peak_memory(*args.memory_worker, args.device)))
        return
    report = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "levels": SHAPES, "heads": HEADS, "head_dim": DIM, "points": POINTS, "cases": {}}
    if args.device == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    for case in args.cases.split(","):
        entry = {"queries": 300 if case == "decoder" else sum(h * w for h, w in SHAPES)}
        for mode in ("forward", "forward_backward"):
            runs = timings(case, mode, args.device, args.reps)
            for impl in IMPLS:
                cmd = [sys.executable, __file__, "--device", args.device, "--memory-worker", impl, case, mode]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                runs[impl]["peak_mb"] = json.loads(out)
            runs["time_ratio"] = runs["ours"]["median_ms"] / runs["reference"]["median_ms"]
            runs["memory_ratio"] = runs["ours"]["peak_mb"] / max(runs["reference"]["peak_mb"], 1e-9)
            entry[mode] = runs
        entry["max_abs_difference"] = max_difference(case, args.device)
        report["cases"][case] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
