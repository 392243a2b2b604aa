"""CPU speed of QDTrack (Faster R-CNN R50-FPN, the official MOT17 architecture) at 1088x608.

    PYTHONPATH=src python benchmarks/bench_qdtrack.py [--frames 5] [--threads 2]

Prints JSON. The weights are random (no official checkpoint here): a random RPN proposes
large, unclipped boxes, so RoIAlign samples more than a trained model's proposals need and
the figure is a lower bound on a trained model's speed. The Deformable DETR variant is not
implemented yet (reported as null).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from trackformers.trackers.qdtrack import QDTrack, QDTrackConfig


def frames_per_second(model, image, frames: int) -> float:
    state = model.new_state()
    _, state = model.track(image, state)  # warm-up
    t0 = time.perf_counter()
    for _ in range(frames):
        _, state = model.track(image, state)
    return frames / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = QDTrack(QDTrackConfig()).eval()
    image = torch.randn(3, 608, 1088)
    fps = frames_per_second(model, image, a.frames)
    print(json.dumps({"qdtrack_faster_rcnn_r50_fpn": {"input": "1088x608", "fps_cpu": round(fps, 3),
                                                      "weights": "random", "frames": a.frames},
                      "qdtrack_deformable_detr": None,
                      "threads": a.threads, "cpu": platform.processor() or platform.machine(),
                      "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    main()
