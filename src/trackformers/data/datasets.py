"""Dataset readers: DanceTrack, SportsMOT, MOT17, MOT20, CrowdHuman, BDD100K MOT, synthetic.

Every reader returns `list[Sequence]`, one common structure: image paths plus, per frame, a
`FrameAnnotations` of xyxy pixel boxes, track ids, 0-based labels, visibility and ignore
flags. Track ids are made unique across the whole dataset by per-sequence offsets (stored as
`Sequence.id_offset`), so one training batch can mix sequences.

Layouts (`root` may be the DATADIR or the dataset's own folder):
  DanceTrack/<split>/<seq>/{img1/%08d.jpg, gt/gt.txt, seqinfo.ini}, DanceTrack/<split>_seqmap.txt
  SportsMOT/<split>/<seq>/{img1/%06d.jpg, gt/gt.txt, seqinfo.ini}, SportsMOT/<split>_seqmap.txt
  MOT17/images/<split>/MOT17-02-SDP/... (or MOT17/<split>/...), same for MOT20
  CrowdHuman/images/<split>/<ID>.jpg + CrowdHuman/annotation_<split>.odgt
  BDD100K/images/track/<split>/<video>/<name>.jpg + BDD100K/labels/box_track_20/<split>/<video>.json
  synthetic: <root>/<split>/<seq>/... exactly as DanceTrack (`trackformers synth`)
No torch here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from trackformers.data import mot
from trackformers.data.bdd import read_bdd_video
from trackformers.data.odgt import read_odgt

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class FrameAnnotations:
    """Objects of one frame: boxes float32 (n, 4) xyxy pixels, ids int64 (n,), labels int64
    (n,) 0-based class, visibility float32 (n,) in [0, 1], ignore bool (n,)."""

    boxes: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    visibility: np.ndarray
    ignore: np.ndarray

    @classmethod
    def empty(cls) -> "FrameAnnotations":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64),
                   np.zeros(0, np.float32), np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, keep: np.ndarray) -> "FrameAnnotations":
        """The objects where `keep` (bool mask or index array) selects."""
        return FrameAnnotations(self.boxes[keep], self.ids[keep], self.labels[keep],
                                self.visibility[keep], self.ignore[keep])


@dataclass
class Sequence:
    """One video (or one static image for CrowdHuman). `annotations[k]` belongs to
    `image_paths[k]`; `id_offset` was added to the file's ids to make them dataset-unique."""

    name: str
    image_paths: list[str]
    width: int
    height: int
    fps: float
    annotations: list[FrameAnnotations]
    id_offset: int = 0
    has_gt: bool = True
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.image_paths)


# ----------------------------------------------------------------------------------------- MOT


def frames_from_mot(rows: np.ndarray, num_frames: int, person_only: bool = False,
                    keep_ignored: bool = False) -> list[FrameAnnotations]:
    """Split MOT gt rows (see `mot.read_mot`) into `num_frames` FrameAnnotations (frame 1 ->
    index 0). A row counts when its flag (conf column) is not 0 and, with `person_only`
    (MOT17/MOT20 training, as MOTR/MeMOTR), when additionally flag == 1 and class == 1
    (pedestrian). Other rows are dropped, or kept with `ignore=True` if `keep_ignored`.
    Unknown visibility (-1) reads as 1; class c >= 1 becomes label c - 1."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
    frames = rows[:, mot.FRAME].astype(np.int64)
    bad = (frames < 1) | (frames > num_frames)
    if bad.any():
        raise ValueError(f"frame {frames[bad][0]} outside 1..{num_frames}")
    valid = rows[:, mot.CONF] != 0
    if person_only:
        valid &= (rows[:, mot.CONF] == 1) & (rows[:, mot.CLASS] == 1)
    if not keep_ignored:
        rows, frames, valid = rows[valid], frames[valid], valid[valid]
    order = np.argsort(frames, kind="stable")
    rows, frames, ignore = rows[order], frames[order], ~valid[order]
    boxes = rows[:, mot.X:mot.H + 1].astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    ids = rows[:, mot.ID].astype(np.int64)
    labels = np.maximum(rows[:, mot.CLASS], 1).astype(np.int64) - 1
    vis = rows[:, mot.VIS].astype(np.float32)
    vis[vis < 0] = 1.0
    bounds = np.searchsorted(frames, np.arange(1, num_frames + 2))
    return [FrameAnnotations(boxes[a:b], ids[a:b], labels[a:b], vis[a:b], ignore[a:b])
            for a, b in zip(bounds[:-1], bounds[1:])]


def list_images(folder: str, ext: str | None = None) -> list[str]:
    """Sorted image files of a folder (by `ext`, else any common image extension)."""
    exts = (ext.lower(),) if ext else IMAGE_EXTS
    with os.scandir(folder) as it:
        names = sorted(e.name for e in it if e.is_file() and e.name.lower().endswith(exts))
    return [os.path.join(folder, n) for n in names]


def read_mot_sequence(seq_dir: str, person_only: bool = False, keep_ignored: bool = False) -> Sequence:
    """One MOTChallenge-layout sequence folder (`seqinfo.ini`, `img1/`, optional `gt/gt.txt`).
    Frame files must be numbered 1..seqLength (any zero padding)."""
    info = mot.read_seqinfo(os.path.join(seq_dir, "seqinfo.ini"))
    img_dir = os.path.join(seq_dir, info.get("imDir", "img1"))
    if not os.path.isdir(img_dir):
        raise FileNotFoundError(f"image folder not found: {img_dir}")
    stems = {p: os.path.splitext(os.path.basename(p))[0] for p in list_images(img_dir, info.get("imExt"))}
    if not all(s.isdigit() for s in stems.values()):
        raise ValueError(f"{img_dir}: frame files must be named by their frame number")
    paths = sorted(stems, key=lambda p: int(stems[p]))
    if [int(stems[p]) for p in paths] != list(range(1, len(paths) + 1)):
        raise ValueError(f"{img_dir}: frames must be numbered 1..N without gaps")
    if len(paths) != info["seqLength"]:
        raise ValueError(f"{img_dir}: {len(paths)} images but seqLength={info['seqLength']} in seqinfo.ini")
    gt_path = os.path.join(seq_dir, "gt", "gt.txt")
    has_gt = os.path.isfile(gt_path)
    if has_gt:
        rows = mot.read_mot(gt_path)  # its errors already name the file and line
        mot.check_rows(gt_path, rows, len(paths), columns=8)
        annotations = frames_from_mot(rows, len(paths), person_only, keep_ignored)
    else:
        annotations = [FrameAnnotations.empty() for _ in paths]
    return Sequence(name=os.path.basename(os.path.normpath(seq_dir)), image_paths=paths,
                    width=int(info.get("imWidth", 0)), height=int(info.get("imHeight", 0)),
                    fps=float(info.get("frameRate", 0)), annotations=annotations, has_gt=has_gt)


def _is_sequence_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "seqinfo.ini"))


def _find_dir(root: str, candidates: list[str]) -> str:
    """The first existing `root/<candidate>` (a DATADIR or the dataset's own folder)."""
    paths = [os.path.join(root, c) for c in candidates]
    for p in paths:
        if os.path.isdir(p):
            return p
    raise FileNotFoundError(f"dataset folder not found: tried {', '.join(paths)}")


def _layouts(split: str, folders: tuple[str, ...], *inner: str) -> list[str]:
    """Relative candidates `<inner>/<split>` then `<folder>/<inner>/<split>` per folder name."""
    return [os.path.join(*inner, split)] + [os.path.join(f, *inner, split) for f in folders]


def _mot_split(split_dir: str, person_only: bool = False, keep_ignored: bool = False,
               suffix: str | None = None) -> list[Sequence]:
    """All sequences of a split folder, in seqmap order when `<split>_seqmap.txt` sits
    beside the split folder, else sorted by name."""
    split = os.path.basename(os.path.normpath(split_dir))
    seqmap = os.path.join(os.path.dirname(os.path.normpath(split_dir)), f"{split}_seqmap.txt")
    if os.path.isfile(seqmap):
        names = mot.read_seqmap(seqmap)
    else:
        names = sorted(n for n in os.listdir(split_dir) if _is_sequence_dir(os.path.join(split_dir, n)))
    if suffix is not None:
        names = [n for n in names if n.endswith(suffix)]
    if not names:
        raise ValueError(f"{split_dir}: no sequences" + (f" ending in {suffix!r}" if suffix else ""))
    return [read_mot_sequence(os.path.join(split_dir, n), person_only, keep_ignored) for n in names]


def offset_ids(sequences: list[Sequence]) -> list[Sequence]:
    """Shift each sequence's ids by the running total of the previous sequences' (max id + 1),
    so ids are unique across the dataset; sets `Sequence.id_offset` (in place, returned)."""
    offset = 0
    for seq in sequences:
        seq.id_offset = offset
        top = -1
        for ann in seq.annotations:
            if len(ann):
                if ann.ids.min() < 0:
                    raise ValueError(f"sequence {seq.name}: negative track id {ann.ids.min()}")
                ann.ids = ann.ids + offset
                top = max(top, int(ann.ids.max()))
        offset = max(offset, top + 1)
    return sequences


def load_dancetrack(root: str, split: str = "train") -> list[Sequence]:
    return offset_ids(_mot_split(_find_dir(root, _layouts(split, ("DanceTrack", "dancetrack")))))


def load_sportsmot(root: str, split: str = "train") -> list[Sequence]:
    # MeMOTR's DATADIR layout, or the official release's `dataset/<split>` folders
    candidates = _layouts(split, ("SportsMOT", "sportsmot")) + _layouts(split, ("SportsMOT", "sportsmot"), "dataset")
    return offset_ids(_mot_split(_find_dir(root, candidates)))


def load_synthetic(root: str, split: str = "train") -> list[Sequence]:
    return offset_ids(_mot_split(_find_dir(root, [split])))


def load_mot17(root: str, split: str = "train", detector: str | None = "SDP",
               keep_ignored: bool = False) -> list[Sequence]:
    """MOT17 pedestrians (flag 1, class 1). The gt of the DPM/FRCNN/SDP copies is the same,
    so one `detector` variant is read (None: all copies)."""
    split_dir = _find_dir(root, _layouts(split, ("MOT17",), "images") + _layouts(split, ("MOT17",)))
    suffix = None if detector in (None, "", "all") else f"-{detector}"
    return offset_ids(_mot_split(split_dir, True, keep_ignored, suffix))


def load_mot20(root: str, split: str = "train", keep_ignored: bool = False) -> list[Sequence]:
    """MOT20 pedestrians (flag 1, class 1)."""
    split_dir = _find_dir(root, _layouts(split, ("MOT20",), "images") + _layouts(split, ("MOT20",)))
    return offset_ids(_mot_split(split_dir, True, keep_ignored))


# ---------------------------------------------------------------------------------- CrowdHuman


def image_size(path: str) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    from PIL import Image  # pillow ships with matplotlib; only the header is read

    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except OSError as e:
        raise ValueError(f"{path}: unreadable image ({e})") from None


def _xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    out = boxes.astype(np.float32).copy()
    out[:, 2:] += out[:, :2]
    return out


def _visible_fraction(full: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Area of (visible box inside full box) / area of full box, both xywh; NaN visible -> 1."""
    f, v = _xywh_to_xyxy(full), _xywh_to_xyxy(visible)
    lo, hi = np.maximum(f[:, :2], v[:, :2]), np.minimum(f[:, 2:], v[:, 2:])
    inter = np.clip(hi - lo, 0, None).prod(1)
    area = np.clip(f[:, 2:] - f[:, :2], 0, None).prod(1)
    frac = np.where(area > 0, inter / np.maximum(area, 1e-12), 0.0)
    return np.where(np.isnan(v).any(1), 1.0, np.clip(frac, 0, 1)).astype(np.float32)


def load_crowdhuman(root: str, split: str = "train", box: str = "fbox") -> list[Sequence]:
    """CrowdHuman images as one-frame sequences. `box`: 'fbox' (full body, what MOTR and
    MeMOTR train on), 'vbox' (visible part) or 'hbox' (head). Ignore regions (`mask` tag or
    `ignore` flag) are kept with `ignore=True`; every box gets its own track id."""
    if box not in ("fbox", "vbox", "hbox"):
        raise ValueError(f"box must be fbox, vbox or hbox, got {box!r}")
    image_dir = _find_dir(root, _layouts(split, ("CrowdHuman", "crowdhuman"), "images"))
    odgt = os.path.join(os.path.dirname(os.path.dirname(image_dir)), f"annotation_{split}.odgt")
    sequences = []
    for im in read_odgt(odgt):
        path = os.path.join(image_dir, f"{im.image_id}.jpg")
        width, height = image_size(path)
        boxes = getattr(im, box)
        ignore = im.head_ignore if box == "hbox" else im.ignore
        ok = ~np.isnan(boxes).any(1)
        ann = FrameAnnotations(
            boxes=_xywh_to_xyxy(boxes[ok]), ids=np.arange(int(ok.sum()), dtype=np.int64),
            labels=np.zeros(int(ok.sum()), np.int64),
            visibility=_visible_fraction(im.fbox, im.vbox)[ok], ignore=ignore[ok].copy())
        sequences.append(Sequence(im.image_id, [path], width, height, 0.0, [ann]))
    return offset_ids(sequences)


# ------------------------------------------------------------------------------------- BDD100K


def _bdd_sequence(video_dir: str, label_path: str) -> Sequence:
    frames = read_bdd_video(label_path)
    track_of: dict[str, int] = {}  # string label id -> 0-based int, by first appearance
    annotations = []
    for fr in frames:
        labels, ignore = fr.labels_and_ignore()
        ids = np.array([track_of.setdefault(i, len(track_of)) for i in fr.ids], dtype=np.int64)
        annotations.append(FrameAnnotations(fr.boxes.astype(np.float32), ids, labels,
                                            np.ones(len(ids), np.float32), ignore))
    for fr in frames:
        if not mot.is_plain_name(fr.name):  # a frame's name is a file in video_dir, nowhere else
            raise ValueError(f"{label_path}: frame {fr.frame_index}: name {fr.name!r} is not a plain file name")
    paths = [os.path.join(video_dir, fr.name) for fr in frames]
    width, height = image_size(paths[0]) if paths else (0, 0)
    return Sequence(os.path.basename(video_dir), paths, width, height, 5.0, annotations)


def load_bdd100k(root: str, split: str = "train") -> list[Sequence]:
    """BDD100K MOT videos (5 fps, 8 classes). Crowd boxes and the ignore categories are
    kept with `ignore=True`. Without a label file (test split) the frames are listed."""
    image_dir = _find_dir(root, _layouts(split, ("BDD100K", "bdd100k"), "images", "track"))
    label_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(image_dir))),
                             "labels", "box_track_20", split)
    sequences = []
    for video in sorted(os.listdir(image_dir)):
        video_dir = os.path.join(image_dir, video)
        label_path = os.path.join(label_dir, f"{video}.json")
        if not os.path.isdir(video_dir):
            continue
        if os.path.isfile(label_path):
            sequences.append(_bdd_sequence(video_dir, label_path))
        else:
            paths = list_images(video_dir)
            width, height = image_size(paths[0]) if paths else (0, 0)
            sequences.append(Sequence(video, paths, width, height, 5.0,
                                      [FrameAnnotations.empty() for _ in paths], has_gt=False))
    if not sequences:
        raise ValueError(f"{image_dir}: no videos")
    return offset_ids(sequences)


LOADERS = {
    "dancetrack": load_dancetrack,
    "sportsmot": load_sportsmot,
    "mot17": load_mot17,
    "mot20": load_mot20,
    "crowdhuman": load_crowdhuman,
    "bdd100k": load_bdd100k,
    "synthetic": load_synthetic,
}


def load_dataset(name: str, root: str, split: str = "train", **options) -> list[Sequence]:
    """Read a dataset split: name in dancetrack, sportsmot, mot17, mot20, crowdhuman,
    bdd100k, synthetic. `options` go to the reader (e.g. `detector=` for MOT17)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in LOADERS:
        raise ValueError(f"unknown dataset {name!r} (choose from {', '.join(LOADERS)})")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root not found: {root}")
    return LOADERS[key](root, split, **options)
