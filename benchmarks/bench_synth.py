"""Synthetic benchmark generation speed (frames/s, JPEG encoding and writing included).

Prints JSON. The reference in the same run is the cost floor: encoding and writing the same
number of 640x360 JPEG frames of an already-drawn image, so `ratio_to_encode_only` says how
much the drawing adds. Pinned to one core (cv2 and numpy threads = 1).

It also measures how far appearance alone gets: ground-truth boxes of frames t and t+10 are
matched by colour histograms (Hungarian), per preset; `appearance_only_id_accuracy` is the
fraction of objects matched to themselves (`dance` is meant to be low, `simple` high).

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
from scipy.optimize import linear_sum_assignment  # noqa: E402

from trackformers.data.mot import read_mot  # noqa: E402
from trackformers.data.synthetic import JPEG_QUALITY, PRESETS, generate_synthetic, parse_size  # noqa: E402


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


def histograms(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Hue-saturation histogram (16x8, L1-normalised) of each xywh box crop of a BGR image."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    out = []
    for x, y, w, h in boxes.astype(int):
        crop = hsv[y:y + h, x:x + w]
        hist = cv2.calcHist([crop], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
        out.append(hist / max(hist.sum(), 1))
    return np.array(out)


def appearance_only_accuracy(seq_dir: str, gap: int = 10) -> float:
    """Match the gt boxes of frame t to those of frame t+gap by histogram distance alone."""
    gt = read_mot(os.path.join(seq_dir, "gt", "gt.txt"))
    correct = total = 0
    last = int(gt[:, 0].max())
    for t in range(1, last - gap + 1, gap):
        a, b = gt[gt[:, 0] == t], gt[gt[:, 0] == t + gap]
        common = np.intersect1d(a[:, 1], b[:, 1])
        a, b = a[np.isin(a[:, 1], common)], b[np.isin(b[:, 1], common)]
        if len(common) < 2:
            continue
        ha = histograms(cv2.imread(os.path.join(seq_dir, "img1", f"{t:08d}.jpg")), a[:, 2:6])
        hb = histograms(cv2.imread(os.path.join(seq_dir, "img1", f"{t + gap:08d}.jpg")), b[:, 2:6])
        cost = np.abs(ha[:, None] - hb[None]).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        correct += int((a[rows, 1] == b[cols, 1]).sum())
        total += len(rows)
    return correct / max(total, 1)


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
        accuracy = {}
        for preset in PRESETS:
            generate_synthetic(os.path.join(tmp, preset), preset, 2, 100, args.size, seed=1)
            accuracy[preset] = round(float(np.mean([appearance_only_accuracy(os.path.join(tmp, preset, "train", f"{preset}{k:04d}"))
                                                    for k in (1, 2)])), 3)
    total = args.seqs * args.frames
    print(json.dumps({
        "benchmark": "synthetic_generation", "preset": args.preset, "size": f"{args.size[0]}x{args.size[1]}",
        "frames": total, "seconds": round(gen_s, 3), "frames_per_s": round(total / gen_s, 1),
        "encode_only_frames_per_s": round(total / enc_s, 1),
        "ratio_to_encode_only": round(gen_s / enc_s, 2), "target_frames_per_s": 100,
        "appearance_only_id_accuracy": accuracy,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
