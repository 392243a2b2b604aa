"""Drawing tracks, writing videos, plotting.

Colours come from the track id, so one object keeps its colour through a video. Frames are
RGB uint8 everywhere in trackformers; OpenCV wants BGR only at the moment a file is written.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

# Tracks are drawn from anything with `ids` and `boxes` (xyxy pixels) arrays, e.g.
# trackers.results.FrameTracks; viz imports no tracker code.

def id_color(track_id: int) -> tuple[int, int, int]:
    """A bright, stable RGB colour for a track id (golden-ratio hue steps keep neighbours apart)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


class Trails:
    """The last `length` box centres of every id, for drawing short motion trails."""

    def __init__(self, length: int = 20):
        self.length = length
        self.points: dict[int, deque] = {}

    def update(self, tracks) -> None:
        centres = (tracks.boxes[:, :2] + tracks.boxes[:, 2:]) / 2
        for tid, c in zip(tracks.ids.tolist(), centres):
            self.points.setdefault(tid, deque(maxlen=self.length)).append((int(round(c[0])), int(round(c[1]))))
        live = set(tracks.ids.tolist())
        for tid in [t for t in self.points if t not in live]:  # forget tracks not seen this frame
            del self.points[tid]


def draw_tracks(image: np.ndarray, tracks, trails: Trails | dict | None = None,
                thickness: int = 2) -> np.ndarray:
    """A copy of RGB uint8 `image` with each track's box, id label and (optional) trail."""
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    points = trails.points if isinstance(trails, Trails) else (trails or {})
    font_scale = max(0.5, min(out.shape[:2]) / 900)  # readable at 360p, grows with the frame
    for tid, box in zip(tracks.ids.tolist(), tracks.boxes):
        color = id_color(tid)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        trail = list(points.get(tid, ()))
        if len(trail) > 1:
            cv2.polylines(out, [np.array(trail, dtype=np.int32)], False, color, max(1, thickness - 1))
        label = str(tid)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = max(y1, th + base)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty), color, -1)
        cv2.putText(out, label, (x1 + 1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


class VideoWriter:
    """An mp4 (mp4v) writer taking RGB uint8 frames; opened lazily at the first frame's size."""

    def __init__(self, path: str | Path, fps: float = 25.0):
        self.path, self.fps, self._writer = Path(path), float(fps) or 25.0, None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise ValueError(f"cannot open a video writer for {self.path}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 25.0) -> Path:
    """Write RGB uint8 frames to an mp4 file (mp4v codec)."""
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def plot_curves(path: str | Path, series: dict[str, tuple[list, list]], xlabel: str = "", ylabel: str = "",
                title: str = "") -> Path:
    """Save a line plot of named (x, y) series as an image (matplotlib, Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if len(series) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_bars(path: str | Path, groups: dict[str, dict[str, dict[str, float]]], metrics: tuple[str, ...],
              title: str = "") -> Path:
    """Save grouped bar charts: one panel per group (e.g. a benchmark set), one cluster per
    metric, one bar per series (e.g. a model) with its value on top; values in [0, 1]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(n for series in groups.values() for n in series))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.8), squeeze=False, sharey=True)
    width = 0.8 / max(len(names), 1)
    for ax, (group, series) in zip(axes[0], groups.items()):
        for k, name in enumerate(names):
            xs = np.arange(len(metrics)) + (k - (len(names) - 1) / 2) * width
            values = [series.get(name, {}).get(m, np.nan) for m in metrics]
            bars = ax.bar(xs, values, width, label=name)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(np.arange(len(metrics)), metrics)
        ax.set(title=group, ylim=(0, 1.2))
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="upper left", ncol=min(len(names), 3))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
