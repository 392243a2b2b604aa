"""BDD100K MOT labels: one JSON file per video (`labels/box_track_20/<split>/<video>.json`).

The file is a list of frames `{"name", "videoName", "frameIndex", "labels": [...]}`; a label
is `{"id", "category", "attributes": {"occluded", "truncated", "crowd"}, "box2d": {"x1",
"y1", "x2", "y2"}}`. Eight classes are tracked; "other person", "other vehicle" and
"trailer" are ignore regions (BDD100K's evaluation ignores matches to them), and so are
labels flagged `crowd`. Result files use the same layout with an optional `score`.
TrackEval's spelling of the same layout (`index` for `frameIndex`, `Crowd`, no `name`) is read
too, so the evaluator reads BDD100K files through this module. No torch.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Index = 0-based class label used everywhere in trackformers (model class k = BDD_CLASSES[k]).
BDD_CLASSES = ("pedestrian", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
# Categories that are annotated but must be ignored, with the class they would count as.
BDD_IGNORE_CATEGORIES = {"other person": "pedestrian", "other vehicle": "car", "trailer": "truck"}


@dataclass
class BddFrame:
    """One frame of a BDD100K video. `boxes` float64 (n, 4) xyxy pixels; `ids` are the
    label ids as written in the file (strings, unique within the video)."""

    name: str
    video_name: str
    frame_index: int
    ids: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    crowd: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    occluded: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    scores: np.ndarray | None = None  # result files only

    def labels_and_ignore(self) -> tuple[np.ndarray, np.ndarray]:
        """0-based class index per box (ignore categories map to their parent class) and
        the ignore flag (crowd, or an ignore category). Unknown categories raise."""
        labels, ignore = [], []
        for cat, crowd in zip(self.categories, self.crowd):
            parent = BDD_IGNORE_CATEGORIES.get(cat, cat)
            if parent not in BDD_CLASSES:
                raise ValueError(f"BDD100K video {self.video_name} frame {self.frame_index}: unknown category {cat!r}")
            labels.append(BDD_CLASSES.index(parent))
            ignore.append(bool(crowd) or cat in BDD_IGNORE_CATEGORIES)
        return np.array(labels, dtype=np.int64), np.array(ignore, dtype=bool)


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _parse_label(label: dict, where: str) -> tuple[str, str, list[float], dict, float | None]:
    try:
        box = label["box2d"]
        xyxy = [_number(box[k], k) for k in ("x1", "y1", "x2", "y2")]
        attrs = label.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise ValueError(f"attributes must be an object, got {attrs!r}")
        if not isinstance(label["id"], (str, int)) or isinstance(label["id"], bool):
            raise ValueError(f"id must be a string, got {label['id']!r}")
        if not isinstance(label["category"], str):
            raise ValueError(f"category must be a string, got {label['category']!r}")
        score = label.get("score")
        return str(label["id"]), label["category"], xyxy, attrs, None if score is None else _number(score, "score")
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: malformed label ({e.__class__.__name__}: {e})") from None


def _parse_frame(frame: dict, where: str) -> BddFrame:
    index_key = "frameIndex" if isinstance(frame, dict) and "frameIndex" in frame else "index"
    if not isinstance(frame, dict) or index_key not in frame:
        raise ValueError(f"{where}: a frame needs 'frameIndex' (or TrackEval's 'index')")
    index = frame[index_key]
    if isinstance(index, bool) or not isinstance(index, (int, float)) or not float(index).is_integer():
        raise ValueError(f"{where}: {index_key} must be an integer, got {index!r}")
    labels = frame.get("labels") or []
    if not isinstance(labels, list):
        raise ValueError(f"{where}: 'labels' must be a list")
    parsed = [_parse_label(lab, f"{where} label {k}") for k, lab in enumerate(labels)]
    attrs = [p[3] for p in parsed]
    scores = [p[4] for p in parsed]
    return BddFrame(
        name=str(frame.get("name", "")),
        video_name=str(frame.get("videoName", "")),
        frame_index=int(index),
        ids=[p[0] for p in parsed],
        categories=[p[1] for p in parsed],
        boxes=np.array([p[2] for p in parsed], dtype=np.float64).reshape(-1, 4),
        crowd=np.array([bool(a.get("crowd", a.get("Crowd", False))) for a in attrs], dtype=bool),
        occluded=np.array([bool(a.get("occluded", False)) for a in attrs], dtype=bool),
        truncated=np.array([bool(a.get("truncated", False)) for a in attrs], dtype=bool),
        scores=None if not parsed or any(s is None for s in scores) else np.array(scores, dtype=np.float64),
    )


def read_bdd_video(path: str | os.PathLike) -> list[BddFrame]:
    """Read one BDD100K per-video JSON; frames sorted by `frameIndex`. Errors name the file
    and the frame position in it."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BDD100K label file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        frames = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise ValueError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(frames, list):
        raise ValueError(f"{path}: expected a list of frames")
    parsed = [_parse_frame(fr, f"{path}: frame {k}") for k, fr in enumerate(frames)]
    return sorted(parsed, key=lambda fr: fr.frame_index)


def write_bdd_video(path: str | os.PathLike, frames: list[BddFrame]) -> None:
    """Write frames in the BDD100K per-video JSON layout (scores included when present)."""
    out = []
    for fr in frames:
        labels = []
        for k, (tid, cat) in enumerate(zip(fr.ids, fr.categories)):
            x1, y1, x2, y2 = (round(float(v), 3) for v in fr.boxes[k])
            label = {"id": tid, "category": cat,
                     "attributes": {"occluded": bool(fr.occluded[k]) if len(fr.occluded) else False,
                                    "truncated": bool(fr.truncated[k]) if len(fr.truncated) else False,
                                    "crowd": bool(fr.crowd[k]) if len(fr.crowd) else False},
                     "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}}
            if fr.scores is not None:
                label["score"] = round(float(fr.scores[k]), 5)
            labels.append(label)
        out.append({"name": fr.name, "videoName": fr.video_name, "frameIndex": fr.frame_index, "labels": labels})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f)
