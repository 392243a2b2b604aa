"""MeMOTR training step on one 5-frame clip: peak memory and it/s, with and without gradient checkpointing.

Prints JSON. The model is the official DanceTrack configuration (configs/memotr/dancetrack.yaml:
R50, DAB-Deformable-DETR, 300 queries, 6+6 layers). On a GPU the clip is 800x1440 (the
original's training scale); on CPU a smaller one (default 256x448) so that the run takes
minutes. The clip is a synthetic `dance` sequence (real objects, so tracks are born and
carried through the clip). Peak memory is measured for each mode in a fresh process
(bench_msda.PeakMemory: CUDA allocator peak, or the CPU resident-set high-water mark); the
times alternate the two modes in one process after a warm-up step. The reference is the same
step without checkpointing: the ratios say what checkpointing saves and costs.

    python benchmarks/bench_memotr_train.py [--device cpu|cuda] [--size 256x448] [--reps 2]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from trackformers.config import load_yaml  # noqa: E402
from trackformers.data.mot import read_mot  # noqa: E402
from trackformers.data.sources import read_frames  # noqa: E402
from trackformers.data.synthetic import generate_synthetic  # noqa: E402
from trackformers.trackers.registry import build_tracker  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_msda import PeakMemory, sync  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "memotr" / "dancetrack.yaml"
FRAMES = 5


def make_clip(size: tuple[int, int], device: str) -> list:
    """A 5-frame synthetic `dance` clip at (H, W) as (image, target) pairs for training_loss."""
    H, W = size
    with tempfile.TemporaryDirectory() as tmp:
        (seq,) = generate_synthetic(tmp, "dance", seqs=1, frames=FRAMES, size=(W, H), seed=7)
        seq_dir = Path(tmp) / "train" / seq
        gt = read_mot(seq_dir / "gt" / "gt.txt")
        clip = []
        for index, rgb in read_frames(str(seq_dir)):
            rows = gt[gt[:, 0] == index + 1]
            x, y, w, h = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]
            boxes = np.stack([(x + w / 2) / W, (y + h / 2) / H, w / W, h / H], 1)
            image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
            target = {"boxes": torch.tensor(boxes, dtype=torch.float32).clamp(0, 1),
                      "labels": torch.zeros(len(rows), dtype=torch.int64),
                      "ids": torch.tensor(rows[:, 1], dtype=torch.int64),
                      "size": torch.tensor([H, W]), "orig_size": torch.tensor([H, W])}
            clip.append((_normalised(image, device),
                         {k: v.to(device) for k, v in target.items()}))
    return clip


def _normalised(image: torch.Tensor, device: str) -> torch.Tensor:
    """uint8 (3, H, W) -> float, ImageNet mean/std, as the training transforms."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return ((image.float() / 255.0 - mean) / std).to(device)


def build(checkpointing: bool, device: str):
    torch.manual_seed(0)
    cfg = dict(load_yaml(CONFIG)["model"], grad_checkpointing=checkpointing)
    return build_tracker(cfg).to(device).train()


def step(model, clip) -> float:
    loss = model.training_loss([clip])["loss"]
    loss.backward()
    model.zero_grad(set_to_none=True)
    return loss.item()


def peak_memory_mb(checkpointing: bool, device: str, size: tuple[int, int]) -> float:
    """Peak memory (MB) of one training step beyond the model and the clip (fresh process)."""
    model, clip = build(checkpointing, device), make_clip(size, device)
    with PeakMemory(device) as peak:
        step(model, clip)
    return peak.mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="clip frame size HxW (default: 800x1440 on GPU, 256x448 on CPU)")
    parser.add_argument("--reps", type=int, default=2, help="timed steps per mode (after one warm-up)")
    parser.add_argument("--peak-only", choices=["on", "off"], help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args()
    size = tuple(int(v) for v in (args.size or ("800x1440" if args.device == "cuda" else "256x448")).split("x"))
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if args.peak_only:
        print(peak_memory_mb(args.peak_only == "on", args.device, size))
        return

    clip = make_clip(size, args.device)
    models = {"checkpointing": build(True, args.device), "plain": build(False, args.device)}
    times = {name: [] for name in models}
    losses = {}
    for rep in range(args.reps + 1):
        for name, model in models.items():
            sync(args.device)
            t0 = time.perf_counter()
            losses[name] = step(model, clip)
            sync(args.device)
            if rep:  # the first round warms up
                times[name].append(time.perf_counter() - t0)
    peaks = {}
    for name, flag in (("checkpointing", "on"), ("plain", "off")):
        cmd = [sys.executable, __file__, "--device", args.device, "--size", f"{size[0]}x{size[1]}", "--peak-only", flag]
        peaks[name] = float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()[-1])
    result = {
        "model": "MeMOTR R50 DAB-Deformable-DETR (configs/memotr/dancetrack.yaml)",
        "device": args.device, "threads": torch.get_num_threads(), "clip": f"{FRAMES} frames of {size[0]}x{size[1]}",
        "peak_memory_mb": {k: round(v, 1) for k, v in peaks.items()},
        "it_per_s": {k: round(1.0 / float(np.median(v)), 4) for k, v in times.items()},
        "seconds_per_step": {k: round(float(np.median(v)), 3) for k, v in times.items()},
        "memory_ratio_checkpointing_over_plain": round(peaks["checkpointing"] / peaks["plain"], 3),
        "time_ratio_checkpointing_over_plain": round(float(np.median(times["checkpointing"]) / np.median(times["plain"])), 3),
        "same_loss": abs(losses["checkpointing"] - losses["plain"]) < 1e-4 * max(1.0, abs(losses["plain"])),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
