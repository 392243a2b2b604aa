"""Clip pipeline throughput (clips/s): sampling, JPEG decoding, clip-consistent augmentation
and normalisation, single process on one core.

Prints JSON. The reference in the same run is decoding the same frames without any
transform, so `ratio_to_decode_only` is what the augmentation costs on top of reading.

    python benchmarks/bench_clips.py [--clips 40] [--length 5] [--size 640x360]
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import torch  # noqa: E402

from trackformers.data import transforms as T  # noqa: E402
from trackformers.data.clips import ClipDataset, ClipSampler  # noqa: E402
from trackformers.data.datasets import load_dataset  # noqa: E402
from trackformers.data.sources import read_rgb  # noqa: E402
from trackformers.data.synthetic import generate_synthetic, parse_size  # noqa: E402


def timed(fn, clips: int) -> float:
    start = time.perf_counter()
    for i in range(clips):
        fn(i)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--length", type=int, default=5)
    parser.add_argument("--size", type=parse_size, default=(640, 360))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    results = {"benchmark": "clip_pipeline", "size": f"{args.size[0]}x{args.size[1]}", "clip_length": args.length}
    with tempfile.TemporaryDirectory() as tmp:
        generate_synthetic(tmp, "dance", seqs=2, frames=60, size=args.size, seed=0)
        seqs = load_dataset("synthetic", tmp)
        sampler = ClipSampler(lengths=(args.length,), steps=(), intervals=(10,))
        plain = ClipDataset(seqs, sampler, transform=None, rng=random.Random(0))
        order = random.Random(0).sample(range(len(plain)), args.clips)
        frames = [[seqs[s].image_paths[k] for k in sampler.frames(len(seqs[s]), start, random.Random(i))]
                  for i, (s, start) in enumerate(plain.index[j] for j in order)]
        decode_s = timed(lambda i: [read_rgb(p) for p in frames[i]], args.clips)
        results["decode_only_clips_per_s"] = round(args.clips / decode_s, 2)
        recipes = {"motr_train_full_scale": T.train_transforms(),  # 608..992 short side, max 1536
                   "train_scaled_to_360": T.scaled_train_transforms(args.size[1]),
                   "eval_800": T.eval_transforms()}
        for name, transform in recipes.items():
            ds = ClipDataset(seqs, sampler, transform=transform, rng=random.Random(0))
            seconds = timed(lambda i: ds[order[i]], args.clips)
            results[f"{name}_clips_per_s"] = round(args.clips / seconds, 2)
            results[f"{name}_ratio_to_decode_only"] = round(seconds / decode_s, 2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
