"""Frame sources: a video file, an image folder, a webcam or a MOT sequence folder.

`read_frames(source)` yields `(index, frame)` with a 0-based index (MOT frame number =
index + 1) and an RGB uint8 (H, W, 3) frame, whatever the source:

    for index, frame in trackformers.read_frames("video.mp4"): ...

`open_source` gives the same plus `name`, `fps`, `num_frames` (None for a webcam) and `size`
(width, height); `list_sequences(split_dir)` opens every MOT sequence of a dataset split.
A missing or unreadable source is one error naming it. No torch here.
"""
from __future__ import annotations

import os
import re
from typing import Iterator

import cv2
import numpy as np

from trackformers.data import mot
from trackformers.data.datasets import list_images


JPEG_EXTS = (".jpg", ".jpeg")


def read_rgb(path: str) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3) (grey and RGBA files converted); a missing,
    unreadable or truncated file is one clear error."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except OSError as e:
        raise ValueError(f"unreadable image: {path} ({e.strerror})") from None
    # A cut-off JPEG still decodes (the missing rows grey) with only a warning on stderr: it
    # must end with the end-of-image marker (a few bytes of padding after it are allowed).
    if path.lower().endswith(JPEG_EXTS) and data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        raise ValueError(f"truncated image: {path} (no JPEG end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise ValueError(f"unreadable image: {path}" + (" (empty file)" if not data else ""))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _natural_key(path: str) -> list:
    """'img2.jpg' before 'img10.jpg'."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", os.path.basename(path))]


class ImageFiles:
    """Frames from a list of image files (an image folder or a MOT sequence's img1/)."""

    def __init__(self, name: str, paths: list[str], fps: float, size: tuple[int, int] | None = None):
        if not paths:
            raise ValueError(f"no images in source: {name}")
        self.name, self.paths, self.fps = name, paths, fps
        self.num_frames = len(paths)
        if size is None:
            first = read_rgb(paths[0])
            size = (first.shape[1], first.shape[0])
        self.size = size

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        shape = None
        for index, path in enumerate(self.paths):
            image = read_rgb(path)
            if shape is not None and image.shape != shape:  # boxes would mix two pixel grids
                raise ValueError(f"{path}: frame is {image.shape[1]}x{image.shape[0]}, the sequence's first "
                                 f"frame {shape[1]}x{shape[0]}")
            shape = image.shape
            yield index, image


def image_folder(path: str, fps: float = 30.0) -> ImageFiles:
    """All images of a folder in natural order ('2.jpg' before '10.jpg')."""
    return ImageFiles(os.path.basename(os.path.normpath(path)), sorted(list_images(path), key=_natural_key), fps)


def mot_sequence(path: str) -> ImageFiles:
    """A MOTChallenge sequence folder: `seqinfo.ini` (name, frame rate, size) and its images."""
    info = mot.read_seqinfo(os.path.join(path, "seqinfo.ini"))
    img_dir = os.path.join(path, info.get("imDir", "img1"))
    if not os.path.isdir(img_dir):
        raise FileNotFoundError(f"image folder not found: {img_dir}")
    paths = sorted(list_images(img_dir, info.get("imExt")), key=_natural_key)
    size = (info["imWidth"], info["imHeight"]) if "imWidth" in info and "imHeight" in info else None
    return ImageFiles(info.get("name") or os.path.basename(os.path.normpath(path)), paths,
                      float(info.get("frameRate", 30)), size)


class Capture:
    """Frames from OpenCV's VideoCapture: a video file or a webcam index."""

    def __init__(self, source: str | int):
        self.source = source
        self.is_webcam = isinstance(source, int)
        cap = self._open()
        try:
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.num_frames = None if self.is_webcam or count <= 0 else count
            self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            if not self.is_webcam:
                ok, _ = cap.read()
                if not ok:
                    raise ValueError(f"unreadable video (no frame could be decoded): {source}")
        finally:
            cap.release()
        self.name = f"webcam{source}" if self.is_webcam else os.path.splitext(os.path.basename(source))[0]

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            what = "webcam" if self.is_webcam else "video"
            raise ValueError(f"cannot open {what}: {self.source}")
        return cap

    def __len__(self) -> int:
        if self.num_frames is None:
            raise TypeError("a webcam has no length")
        return self.num_frames

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        cap = self._open()
        try:
            index = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            cap.release()


def is_mot_sequence(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "seqinfo.ini"))


def open_source(source: str | int | os.PathLike) -> ImageFiles | Capture:
    """A frame source from a webcam index (int or digit string), a MOT sequence folder
    (with `seqinfo.ini`), an image folder or a video file."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return Capture(int(source))
    path = os.fspath(source)
    if os.path.isdir(path):
        return mot_sequence(path) if is_mot_sequence(path) else image_folder(path)
    if os.path.isfile(path):
        return Capture(path)
    raise FileNotFoundError(f"source not found: {path}")


def read_frames(source: str | int | os.PathLike) -> Iterator[tuple[int, np.ndarray]]:
    """Yield `(index, rgb_uint8_HxWx3)` from any source `open_source` accepts."""
    yield from open_source(source)


def list_sequences(path: str | os.PathLike) -> list[ImageFiles]:
    """Every MOT sequence in a dataset split folder (sorted by name); a sequence folder itself
    gives a list of one."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"folder not found: {path}")
    if is_mot_sequence(path):
        return [mot_sequence(path)]
    names = sorted(n for n in os.listdir(path) if is_mot_sequence(os.path.join(path, n)))
    if not names:
        raise ValueError(f"no MOT sequences (sub-folders with seqinfo.ini) in {path}")
    return [mot_sequence(os.path.join(path, n)) for n in names]


def load_frames(root: str, split: str = "train", max_frames: int | None = None) -> list:
    """(normalised image tensor, target) pairs of a MOT-layout dataset (e.g. `trackformers synth`)
    at their stored size, in sequence order: detector training and AP checks on whole frames."""
    from trackformers.data.datasets import load_synthetic
    from trackformers.data.transforms import ToTensorNormalize

    to_tensor = ToTensorNormalize()
    frames = []
    for seq in load_synthetic(root, split):
        for path, ann in zip(seq.image_paths, seq.annotations):
            if max_frames is not None and len(frames) >= max_frames:
                return frames
            images, targets = to_tensor([read_rgb(path)], [{"boxes": ann.boxes, "labels": ann.labels}])
            frames.append((images[0], targets[0]))
    return frames
