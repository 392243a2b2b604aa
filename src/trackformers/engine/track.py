"""Track a video, an image folder, a webcam or a MOT sequence / split folder with a trained model.

    trackformers track video.mp4 --model motr-synth --out results/ --save-video
    trackformers track data/dancetrack/val --model runs/motr/last --out results/ --set score_thresh=0.6

Writes `OUT/<seq>.txt` (MOTChallenge results; while a sequence runs they grow frame by frame in
`OUT/<seq>.txt.part`, so an interrupted run keeps what it tracked and a `.txt` is always whole),
optionally `OUT/<seq>.mp4` (boxes coloured by id, short trails), and
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

from trackformers.checkpoint import atomic_write, ensure_writable_dir
from trackformers.config import to_dict
from trackformers.data.mot import is_plain_name
from trackformers.trackers.registry import StreamingTracker, load_model_file, resolve_device
from trackformers.viz import Trails, VideoWriter, draw_tracks


def _write_all(f, data: bytes) -> None:
    """Write `data` to an unbuffered file, looping over short writes."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


def track_sequence(tracker: StreamingTracker, frames: Iterable[np.ndarray], txt_path: str | Path,
                   video_path: str | Path | None = None, fps: float = 25.0, total: int | None = None,
                   desc: str = "", max_frames: int | None = None, progress: bool = True) -> dict:
    """Track `frames` from a fresh state, writing MOT lines as each frame is done.

    The lines go to `<txt_path>.part`, one write per frame (so whatever ends the process, the
    file holds every frame tracked so far, whole lines only); the file takes its final name
    only when the sequence is finished, so a result file that exists is complete. The same
    for the video (`<stem>.part.mp4`). Returns {"frames", "tracks", "boxes", "seconds", "fps"}:
    `fps` counts the tracker's time (preprocessing + model + post-processing), not reading
    frames or writing files.
    """
    tracker.reset()
    txt_path = Path(txt_path)
    part = txt_path.with_name(txt_path.name + ".part")
    txt_path.parent.mkdir(parents=True, exist_ok=True)
    txt_path.unlink(missing_ok=True)  # an earlier run's result must not pass for this one's
    video_part = Path(video_path).with_suffix(".part" + Path(video_path).suffix) if video_path else None
    video = VideoWriter(video_part, fps) if video_part else None
    trails = Trails() if video else None
    ids: set[int] = set()
    n_frames = n_boxes = 0
    seconds = 0.0
    bar = tqdm(total=total if max_frames is None else min(total or max_frames, max_frames),
               desc=desc, unit="frame", disable=not progress, leave=False)
    try:
        with open(part, "wb", buffering=0) as f:
            for frame in frames:
                if max_frames is not None and n_frames >= max_frames:
                    break
                t0 = time.perf_counter()
                tracks = tracker.step(frame)
                seconds += time.perf_counter() - t0
                try:
                    _write_all(f, tracks.to_mot_lines().encode())
                except OSError as e:
                    raise OSError(f"cannot write {part} ({e.strerror or e}); the frames before this one are in it") from None
                n_frames += 1
                n_boxes += len(tracks)
                ids.update(tracks.ids.tolist())
                if video:
                    trails.update(tracks)
                    video.write(draw_tracks(frame, tracks, trails))
                bar.update()
                bar.set_postfix(tracks=len(tracks), fps=f"{n_frames / max(seconds, 1e-9):.1f}", refresh=False)
        os.replace(part, txt_path)
    finally:
        bar.close()
        if video:
            video.close()
    if video and video_part.exists():
        os.replace(video_part, video_path)
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
    sources = sequences_of(source)
    names = [src.name for src in sources]
    for name in names:  # names come from input files (seqinfo.ini): they must not leave out_dir
        if not is_plain_name(name):
            raise ValueError(f"{source}: sequence name {name!r} is not a plain file name")
    if len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{source}: two sequences are named {dup!r} (their results would overwrite each other)")
    for src in sources:
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
    ensure_writable_dir(args.out)  # a read-only or full folder fails before the model loads
    model, _ = load_model_file(args.model, args.overrides, device)
    tracker = StreamingTracker(model, device, name=args.model)
    sequences = track_source(tracker, args.source, args.out, args.save_video, args.max_frames,
                             progress=not args.no_progress)
    summary = summarize(sequences, args.model, tracker, args.overrides)
    out = Path(args.out)
    def write_summary(tmp):
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")

    atomic_write(out / "summary.json", write_summary)
    print(f"tracked {summary['frames']} frames in {len(sequences)} sequence(s): {summary['tracks']} tracks, "
          f"{summary['fps']} FPS -> {out}")
    return 0
