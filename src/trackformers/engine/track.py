"""Track a video, an image folder, a webcam or a MOT sequence / split folder with a trained model.

    trackformers track video.mp4 --model motr-synth --out results/ --save-video
    trackformers track data/dancetrack/val --model runs/motr/last --out results/ --set score_thresh=0.6

Writes `OUT/<seq>.txt` (MOTChallenge results, flushed after every frame so an interrupted run
keeps what it tracked), optionally `OUT/<seq>.mp4` (boxes coloured by id, short trails), and
`OUT/summary.json` (frames, tracks and FPS per sequence, model and settings).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm import tqdm

from trackformers.config import to_dict
from trackformers.trackers.registry import StreamingTracker, load_model_file, resolve_device
from trackformers.viz import Trails, VideoWriter, draw_tracks


def track_sequence(tracker: StreamingTracker, frames: Iterable[np.ndarray], txt_path: str | Path,
                   video_path: str | Path | None = None, fps: float = 25.0, total: int | None = None,
                   desc: str = "", max_frames: int | None = None, progress: bool = True) -> dict:
    """Track `frames` from a fresh state, writing MOT lines to `txt_path` as each frame is done.

    Returns {"frames", "tracks", "boxes", "seconds", "fps"}: `fps` counts the tracker's time
    (preprocessing + model + post-processing), not reading frames or writing files.
    """
    tracker.reset()
    txt_path = Path(txt_path)
    txt_path.parent.mkdir(parents=True, exist_ok=True)
    video = VideoWriter(video_path, fps) if video_path else None
    trails = Trails() if video else None
    ids: set[int] = set()
    n_frames = n_boxes = 0
    seconds = 0.0
    bar = tqdm(total=total if max_frames is None else min(total or max_frames, max_frames),
               desc=desc, unit="frame", disable=not progress, leave=False)
    try:
        with open(txt_path, "w") as f:
            for frame in frames:
                if max_frames is not None and n_frames >= max_frames:
                    break
                t0 = time.perf_counter()
                tracks = tracker.step(frame)
                seconds += time.perf_counter() - t0
                f.write(tracks.to_mot_lines())
                f.flush()  # a crash later keeps every frame already tracked
                n_frames += 1
                n_boxes += len(tracks)
                ids.update(tracks.ids.tolist())
                if video:
                    trails.update(tracks)
                    video.write(draw_tracks(frame, tracks, trails))
                bar.update()
                bar.set_postfix(tracks=len(tracks), fps=f"{n_frames / max(seconds, 1e-9):.1f}", refresh=False)
    finally:
        bar.close()
        if video:
            video.close()
    return {"frames": n_frames, "tracks": len(ids), "boxes": n_boxes, "seconds": round(seconds, 4),
            "fps": round(n_frames / seconds, 3) if seconds > 0 else None}


def sequences_of(source: str) -> list:
    """The frame sources of `source`: every MOT sequence of a dataset split folder, else the
    source itself (video file, image folder, webcam index, MOT sequence folder)."""
    from trackformers.data.sources import is_mot_sequence, list_sequences, open_source

    path = str(source)
    if os.path.isdir(path) and not is_mot_sequence(path) and any(
            is_mot_sequence(os.path.join(path, name)) for name in os.listdir(path)):
        return list_sequences(path)
    return [open_source(source)]


def track_source(tracker: StreamingTracker, source: str, out_dir: str | Path, save_video: bool = False,
                 max_frames: int | None = None, progress: bool = True) -> dict:
    """Track every sequence of `source` into `out_dir`; returns {seq name: track_sequence summary}."""
    out_dir = Path(out_dir)
    results = {}
    for src in sequences_of(source):
        results[src.name] = track_sequence(
            tracker, (frame for _, frame in src), out_dir / f"{src.name}.txt",
            video_path=out_dir / f"{src.name}.mp4" if save_video else None,
            fps=src.fps or 25.0, total=src.num_frames, desc=src.name, max_frames=max_frames, progress=progress)
    return results


def summarize(sequences: dict, model: str, tracker: StreamingTracker, settings: list[str]) -> dict:
    """The JSON summary: totals over sequences, per-sequence figures, the model and its settings."""
    frames = sum(s["frames"] for s in sequences.values())
    seconds = sum(s["seconds"] for s in sequences.values())
    return {
        "model": model, "device": str(tracker.device), "overrides": list(settings),
        "settings": to_dict(tracker.cfg),
        "frames": frames, "tracks": sum(s["tracks"] for s in sequences.values()),
        "boxes": sum(s["boxes"] for s in sequences.values()),
        "fps": round(frames / seconds, 3) if seconds > 0 else None,
        "sequences": sequences,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file, image folder, webcam index, MOT sequence folder or split folder")
    parser.add_argument("--model", required=True, help="built-in model name (e.g. motr-synth) or model file")
    parser.add_argument("--out", required=True, help="output folder for <seq>.txt, <seq>.mp4, summary.json")
    parser.add_argument("--save-video", action="store_true", help="also write an annotated <seq>.mp4")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a model/tracker setting, e.g. score_thresh=0.6 (repeatable)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop each sequence after this many frames")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, _ = load_model_file(args.model, args.overrides, device)
    tracker = StreamingTracker(model, device, name=args.model)
    sequences = track_source(tracker, args.source, args.out, args.save_video, args.max_frames,
                             progress=not args.no_progress)
    summary = summarize(sequences, args.model, tracker, args.overrides)
    out = Path(args.out)
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(f"tracked {summary['frames']} frames in {len(sequences)} sequence(s): {summary['tracks']} tracks, "
          f"{summary['fps']} FPS -> {out}")
    return 0
