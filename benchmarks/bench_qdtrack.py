"""CPU speed of QDTrack: Faster R-CNN R50-FPN (the official MOT17 architecture) at 1088x608,
and QDTrack on Deformable DETR at the demo size (640x360 frames resized as the built-in
motr-synth's input config: short side 224, long side <= 416, i.e. 398x224).

    PYTHONPATH=src python benchmarks/bench_qdtrack.py [--frames 5] [--threads 2] [--detr-only]

Prints JSON. The weights are random (no official checkpoint here): a random RPN proposes
large, unclipped boxes, so RoIAlign samples more than a trained model's proposals need and
the figure is a lower bound on a trained model's speed. The DETR variant has motr-synth's
detector (read from its model file's config) and configs/qdtrack/synth.yaml's embed head;
its detection threshold is set to 0 so that every query reaches the memo (the most work a
frame can cost: a random model scores ~0.01).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from trackformers.config import from_dict
from trackformers.data.transforms import tracker_inference_size
from trackformers.trackers.qdtrack import QDTrack, QDTrackConfig, QDTrackDETR, QDTrackDETRConfig
from trackformers.trackers.registry import WEIGHTS_DIR


def frames_per_second(model, image, frames: int) -> float:
    state = model.new_state()
    _, state = model.track(image, state)  # warm-up
    t0 = time.perf_counter()
    for _ in range(frames):
        _, state = model.track(image, state)
    return frames / (time.perf_counter() - t0)


def detr_model() -> QDTrackDETR:
    """A random QDTrack-DETR of motr-synth's size (detector and input from its model file)."""
    synth = json.loads((WEIGHTS_DIR / "motr-synth.json").read_text())["config"]
    cfg = {"detector": synth["detector"], "input": synth["input"], "embed": {"fc_channels": 256, "embed_channels": 128},
           "score_thr": 0.0, "init_score_thr": 0.0, "obj_score_thr": 0.0, "max_per_img": 20}
    return QDTrackDETR(from_dict(QDTrackDETRConfig, cfg)).eval()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--detr-only", action="store_true", help="skip the Faster R-CNN variant (reported null)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rcnn = None
    if not a.detr_only:
        fps = frames_per_second(QDTrack(QDTrackConfig()).eval(), torch.randn(3, 608, 1088), a.frames)
        rcnn = {"input": "1088x608", "fps_cpu": round(fps, 3), "weights": "random", "frames": a.frames}
    detr = detr_model()
    h, w = tracker_inference_size(640, 360, detr.cfg.input.short_side, detr.cfg.input.max_size)
    detr_fps = frames_per_second(detr, torch.randn(3, h, w), 10 * a.frames)
    print(json.dumps({"qdtrack_faster_rcnn_r50_fpn": rcnn,
                      "qdtrack_deformable_detr": {"input": f"{w}x{h} (640x360 frames)", "fps_cpu": round(detr_fps, 3),
                                                  "size": "motr-synth", "weights": "random", "frames": 10 * a.frames},
                      "threads": a.threads, "cpu": platform.processor() or platform.machine(),
                      "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    main()
