"""TrackFormer inference speed on CPU: seconds per frame at 800x1200 of the converted fixture
model (MOT17 private config: ResNet-50, hidden 288, 500 object queries, multi-frame attention)
against the official code's figure in ../shared/fixtures/trackformer/README.md (14.6 s/frame,
measured with 2 threads on the same shared 2-core machine class; noisy).

The checkpoint is converted once (`trackformers convert --from trackformer`), then the
fixture's 8 frames are tracked through the streaming API (preprocessing + model + runtime
tracker). The first frame is reported separately (it has no previous frame and no tracks);
the figure is the median of the remaining frames. Prints JSON.

    python benchmarks/bench_trackformer.py [--threads 2] [--frames 8] [--shared ../shared]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

OFFICIAL_SECONDS_PER_FRAME = 14.6  # fixture README, official code, 2 threads


def main() -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--shared", default=os.environ.get("TRACKFORMERS_SHARED", str(here.parent.parent / "shared")))
    parser.add_argument("--msda", choices=["gather", "grid_sample"], default="gather",
                        help="CPU deformable-attention form (ops.msda, TRACKFORMERS_MSDA)")
    args = parser.parse_args()
    os.environ["TRACKFORMERS_MSDA"] = args.msda
    fixture = Path(args.shared) / "fixtures" / "trackformer"
    if not fixture.is_dir():
        print(f"--shared {args.shared}: no fixtures/trackformer there", file=sys.stderr)
        return 2

    import numpy as np
    import torch
    from PIL import Image

    from trackformers.convert.cli import convert_file
    from trackformers.trackers.registry import StreamingTracker, load_model_file

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        convert_file("trackformer", fixture / "checkpoint_fp16.pt", Path(tmp) / "model")
        model, _ = load_model_file(Path(tmp) / "model", ["inactive_patience=2"])
    tracker = StreamingTracker(model, "cpu")
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((fixture / "frames_png").glob("*.png"))]
    seconds = []
    for frame in frames[:args.frames]:
        t0 = time.perf_counter()
        tracker.step(frame)
        seconds.append(time.perf_counter() - t0)
    ours = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    print(json.dumps({
        "model": "trackformer MOT17 private config (fixture weights), input 800x1200",
        "threads": args.threads, "msda": args.msda, "frames": len(seconds),
        "seconds_first_frame": round(seconds[0], 3),
        "seconds_per_frame": round(ours, 3),
        "official_seconds_per_frame": OFFICIAL_SECONDS_PER_FRAME,
        "speedup_vs_official": round(OFFICIAL_SECONDS_PER_FRAME / ours, 3),
        "all_seconds": [round(s, 3) for s in seconds],
        "load_average_1min": round(os.getloadavg()[0], 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
