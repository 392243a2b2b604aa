"""Synthetic benchmark generation speed (frames/s, JPEG encoding and writing included).

Prints JSON. The reference in the same run is the cost floor: encoding and writing the same
number of 640x360 JPEG frames of an already-drawn image, so `ratio_to_encode_only` says how
much the drawing adds. Pinned to one core (cv2 and numpy threads = 1).

    python benchmarks/bench_synth.py [--frames 300] [--preset dance] [--size 640x360]
"""
import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from trackformers.data.synthetic import JPEG_QUALITY, generate_synthetic, parse_size  # noqa: E402


def encode_only(frames: int, size: tuple[int, int], out: str) -> float:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    start = time.perf_counter()
    for t in range(frames):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        with open(os.path.join(out, f"{t:08d}.jpg"), "wb") as f:
            f.write(buf.tobytes())
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seqs", type=int, default=2)
    parser.add_argument("--preset", default="dance")
    parser.add_argument("--size", type=parse_size, default=(640, 360))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_synthetic(tmp, args.preset, args.seqs, args.frames, args.size, seed=0)
        gen_s = time.perf_counter() - start
        os.makedirs(os.path.join(tmp, "enc"))
        enc_s = encode_only(args.seqs * args.frames, args.size, os.path.join(tmp, "enc"))
    total = args.seqs * args.frames
    print(json.dumps({
        "benchmark": "synthetic_generation", "preset": args.preset, "size": f"{args.size[0]}x{args.size[1]}",
        "frames": total, "seconds": round(gen_s, 3), "frames_per_s": round(total / gen_s, 1),
        "encode_only_frames_per_s": round(total / enc_s, 1),
        "ratio_to_encode_only": round(gen_s / enc_s, 2), "target_frames_per_s": 100,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
