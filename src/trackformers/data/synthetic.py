"""Write a synthetic MOT benchmark in the DanceTrack layout.

`trackformers synth --preset dance --out DIR --seqs 4 --frames 200 --size 640x360 --seed 0`
writes `DIR/<split>/<seq>/img1/%08d.jpg`, `gt/gt.txt` (frame, id, x, y, w, h, 1, class, vis),
`seqinfo.ini` and `DIR/<split>_seqmap.txt`, which `load_dataset("synthetic", DIR)` reads.

Presets:
  simple      a few distinct coloured shapes, straight-line motion bouncing off the borders
  dance       look-alike textured dancers with non-linear motion, frequent crossings and
              occlusions, walkers entering and leaving: appearance alone cannot associate
  crowd       many small walkers crossing the scene
  multiclass  BDD-like street: pedestrians (class 1), cars (2), trucks (3), bicycles (4)

Everything is drawn from one numpy generator per sequence, so the same seed gives the same
bytes. Objects are sprites with a mask pasted in depth order (lower in the image = nearer),
so the ground truth is exact: the amodal box clipped to the image, and visibility = visible
mask pixels / all mask pixels (other objects and the image border both hide pixels). Rows
are written for objects with at least one visible pixel. No torch here.
"""
from __future__ import annotations

import argparse
import os
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from trackformers.data import mot

PRESETS = ("simple", "dance", "crowd", "multiclass")
CLASS_NAMES = {"multiclass": ("pedestrian", "car", "truck", "bicycle")}
FPS = 20
JPEG_QUALITY = 90


@dataclass
class Objects:
    """Per-object data of one sequence: top-left positions (n, T, 2) float, sprites (BGR
    uint8) with boolean masks (same size), 1-based classes (n,)."""

    xy: np.ndarray
    sprites: list[np.ndarray]
    masks: list[np.ndarray]
    classes: np.ndarray
    hue: float | None = None  # the objects' shared hue (dance), reused for background clutter


# ------------------------------------------------------------------------------------ drawing


def _shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    """Boolean (h, w) mask of a shape filling (about) its box."""
    w, h = int(w), int(h)
    m = np.zeros((h, w), np.uint8)
    if shape == "rect":
        m[:] = 1
    elif shape == "ellipse":
        cv2.ellipse(m, (((w - 1) / 2, (h - 1) / 2), (float(w), float(h)), 0), 1, -1)
    elif shape == "triangle":
        cv2.fillPoly(m, [np.array([[w // 2, 0], [w - 1, h - 1], [0, h - 1]], np.int32)], 1)
    elif shape == "diamond":
        cv2.fillPoly(m, [np.array([[w // 2, 0], [w - 1, h // 2], [w // 2, h - 1], [0, h // 2]], np.int32)], 1)
    elif shape == "person":  # head on top of a body: a crude dancer / pedestrian silhouette
        head = max(2, int(round(min(w * 0.6, h * 0.22))))
        cv2.ellipse(m, (((w - 1) / 2, (head - 1) / 2), (float(head), float(head)), 0), 1, -1)
        cv2.ellipse(m, (((w - 1) / 2, head - 1 + (h - head) / 2), (float(w), float(h - head + 1)), 0), 1, -1)
    elif shape == "vehicle":  # body with a cabin on top
        m[h // 3:] = 1
        m[: h // 3 + 1, w // 5: w - w // 5] = 1
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return m.astype(bool)


def _hsv_colour(h: float, s: float, v: float) -> np.ndarray:
    """BGR float colour from OpenCV HSV (hue in [0, 180))."""
    px = np.array([[[h % 180, np.clip(s, 0, 255), np.clip(v, 0, 255)]]], np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _sprite(rng: np.random.Generator, shape: str, w: int, h: int, colour: np.ndarray,
            stripes: float = 0.0, noise: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """A textured sprite: a base colour, vertical shading, optional diagonal stripes, noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 1.0 - 0.25 * (yy / max(h - 1, 1))
    img = colour[None, None, :] * shade[..., None]
    if stripes:
        phase = rng.uniform(0, 2 * np.pi)
        img *= (1.0 + 0.22 * np.sin((xx + yy) * stripes + phase))[..., None]
    img += rng.normal(0, noise, (h, w, 3)).astype(np.float32)
    mask = _shape_mask(shape, w, h)
    # Crop to the mask's bounding box so that the sprite box is the exact object box.
    ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    box = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    return np.clip(img[box], 0, 255).astype(np.uint8), mask[box].copy()


def textured_background(rng: np.random.Generator, width: int, height: int, clutter: int,
                        palette_hue: float | None = None) -> np.ndarray:
    """Smooth colour field + mid-frequency blotches + fine noise + static clutter shapes,
    some in the objects' colours, so that detection is not colour thresholding."""
    low = rng.uniform(50, 190, (height // 48 + 2, width // 48 + 2, 3)).astype(np.float32)
    img = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    mid = rng.normal(0, 18, (height // 6 + 1, width // 6 + 1, 3)).astype(np.float32)
    img += cv2.resize(mid, (width, height), interpolation=cv2.INTER_LINEAR)
    img += rng.normal(0, 7, (height, width, 1)).astype(np.float32)
    for _ in range(clutter):
        hue = palette_hue + rng.uniform(-12, 12) if palette_hue is not None and rng.random() < 0.5 else rng.uniform(0, 180)
        colour = _hsv_colour(hue, rng.uniform(60, 200), rng.uniform(70, 200))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(3, max(4, width // 14))), int(rng.integers(3, max(4, height // 8))))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour.tolist(), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_frame(background: np.ndarray, sprites: list[np.ndarray], masks: list[np.ndarray],
                 xy: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paste sprites (integer top-left `xy[k]`) back to front in `order`; returns the frame
    and each listed object's visibility (visible in-image mask pixels / mask pixels)."""
    frame = background.copy()
    height, width = frame.shape[:2]
    owner = np.full((height, width), -1, np.int32)
    spans = {}
    for k in order:
        h, w = masks[k].shape
        x, y = int(xy[k, 0]), int(xy[k, 1])
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 <= x0 or y1 <= y0:
            spans[k] = None
            continue
        m = masks[k][y0 - y:y1 - y, x0 - x:x1 - x]
        np.copyto(frame[y0:y1, x0:x1], sprites[k][y0 - y:y1 - y, x0 - x:x1 - x], where=m[..., None])
        owner[y0:y1, x0:x1][m] = k
        spans[k] = (x0, y0, x1, y1, m)
    vis = np.zeros(len(order), np.float64)
    for j, k in enumerate(order):
        if spans[k] is not None:
            x0, y0, x1, y1, m = spans[k]
            vis[j] = np.count_nonzero(owner[y0:y1, x0:x1][m] == k) / np.count_nonzero(masks[k])
    return frame, vis


# ------------------------------------------------------------------------------------ motion


def _reflect(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Fold positions into [lo, hi] as a ball bouncing off walls (piecewise linear)."""
    span = np.maximum(hi - lo, 1e-6)
    u = np.mod(p - lo, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


def _crossing(rng: np.random.Generator, n: int, T: int, W: int, H: int, wh: np.ndarray,
              speed: tuple[float, float], band: tuple[float, float], wiggle: float) -> np.ndarray:
    """Walkers crossing horizontally (either direction) with a vertical sway and a random-walk
    jitter: (n, T, 2). Each one is somewhere on the row at a random time, so walkers are
    spread over the image and enter / leave through the borders during the sequence."""
    t = np.arange(T)[None, :]
    v = rng.uniform(*speed, n) * rng.choice([-1.0, 1.0], n) * W / 640
    x_ref, t_ref = rng.uniform(-wh[:, 0], W), rng.uniform(0, T, n)
    x = x_ref[:, None] + v[:, None] * (t - t_ref[:, None])
    y = (rng.uniform(*band, n) * H - wh[:, 1])[:, None] + wiggle * H * np.sin(
        rng.uniform(0.02, 0.08, n)[:, None] * t + rng.uniform(0, 2 * np.pi, n)[:, None])
    jitter = rng.normal(0, 0.35, (n, T, 2)).cumsum(1)
    return np.stack([x, y], -1) + jitter


def _sizes(rng: np.random.Generator, n: int, H: int, height: tuple[float, float], aspect: tuple[float, float]) -> np.ndarray:
    h = np.maximum(rng.uniform(*height, n) * H, 4)
    return np.stack([np.maximum(h * rng.uniform(*aspect, n), 3), h], 1).round().astype(int)


def _simple(rng, T, W, H) -> Objects:
    n = int(rng.integers(3, 7))
    wh = _sizes(rng, n, H, (0.12, 0.22), (0.6, 1.4))
    start = rng.uniform(0, 1, (n, 2)) * (np.array([W, H]) - wh)
    angle = rng.uniform(0, 2 * np.pi, n)
    v = rng.uniform(1.5, 4.0, n)[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1) * W / 640
    xy = _reflect(start[:, None] + v[:, None] * np.arange(T)[None, :, None], 0, (np.array([W, H]) - wh)[:, None])
    hue0 = rng.uniform(0, 180)
    shapes = ("rect", "ellipse", "triangle", "diamond")
    sprites, masks = zip(*[_sprite(rng, shapes[k % 4], wh[k, 0], wh[k, 1], _hsv_colour(hue0 + 180 * k / n, 220, 230), noise=3)
                           for k in range(n)])
    return Objects(xy, list(sprites), list(masks), np.ones(n, np.int64))


def _dance(rng, T, W, H) -> Objects:
    n_stay, n_walk = int(rng.integers(5, 9)), int(rng.integers(2, 6))
    n = n_stay + n_walk
    wh = _sizes(rng, n, H, (0.26, 0.36), (0.38, 0.48))
    t = np.arange(T)[None, :]
    # Dancers: a base point on the floor plus two incommensurate sways -> frequent crossings.
    base = rng.uniform([0.2 * W, 0.45 * H], [0.8 * W, 0.7 * H], (n_stay, 2))
    amp = rng.uniform([0.08 * W, 0.02 * H], [0.25 * W, 0.08 * H], (n_stay, 2))
    w1, w2 = rng.uniform(0.02, 0.09, (2, n_stay, 2))
    ph1, ph2 = rng.uniform(0, 2 * np.pi, (2, n_stay, 2))
    centre = base[:, None] + amp[:, None] * (np.sin(w1[:, None] * t[..., None] + ph1[:, None])
                                             + 0.5 * np.sin(w2[:, None] * t[..., None] + ph2[:, None]))
    stay = np.clip(centre - wh[:n_stay, None] / 2, [0, 0], np.array([W, H]) - wh[:n_stay, None])
    walk = _crossing(rng, n_walk, T, W, H, wh[n_stay:], (1.5, 4.0), (0.55, 0.95), 0.04)
    hue = rng.uniform(0, 180)  # one costume colour for everybody, tiny per-dancer variations
    sat, val = rng.uniform(120, 220), rng.uniform(140, 220)
    sprites, masks = zip(*[_sprite(rng, "person", wh[k, 0], wh[k, 1],
                                   _hsv_colour(hue, sat + rng.uniform(-4, 4), val + rng.uniform(-12, 12)),
                                   stripes=0.45, noise=8) for k in range(n)])
    return Objects(np.concatenate([stay, walk]), list(sprites), list(masks), np.ones(n, np.int64), hue)


def _crowd(rng, T, W, H) -> Objects:
    n = int(rng.integers(60, 100))
    wh = _sizes(rng, n, H, (0.05, 0.10), (0.35, 0.5))
    xy = _crossing(rng, n, T, W, H, wh, (0.4, 2.0), (0.1, 1.0), 0.02)
    sprites, masks = zip(*[_sprite(rng, "person", wh[k, 0], wh[k, 1],
                                   _hsv_colour(rng.uniform(0, 180), rng.uniform(50, 230), rng.uniform(60, 230)), noise=6)
                           for k in range(n)])
    return Objects(xy, list(sprites), list(masks), np.ones(n, np.int64))


def _multiclass(rng, T, W, H) -> Objects:
    # class: (count range, height range, aspect range, speed range, vertical band, shape);
    # vehicles drive in the lower lanes, pedestrians and bicycles on the upper sidewalk
    spec = {1: ((4, 9), (0.10, 0.16), (0.35, 0.45), (0.4, 1.5), (0.30, 0.50), "person"),
            2: ((3, 7), (0.10, 0.15), (1.6, 2.2), (2.0, 6.0), (0.60, 0.95), "vehicle"),
            3: ((1, 3), (0.16, 0.22), (2.2, 3.0), (1.5, 4.0), (0.60, 0.95), "vehicle"),
            4: ((1, 4), (0.08, 0.11), (0.8, 1.1), (1.0, 3.0), (0.40, 0.58), "diamond")}
    xy, sprites, masks, classes = [], [], [], []
    for cls, (count, height, aspect, speed, band, shape) in spec.items():
        n = int(rng.integers(count[0], count[1] + 1))
        wh = _sizes(rng, n, H, height, aspect)
        path = _crossing(rng, n, T, W, H, wh, speed, band, 0.005)
        if cls in (2, 3):  # vehicles speed up and slow down: non-linear, still in lane
            t = np.arange(T)[None, :]
            path[..., 0] += rng.uniform(5, 25, (n, 1)) * np.sin(rng.uniform(0.02, 0.06, (n, 1)) * t + rng.uniform(0, 6.3, (n, 1)))
        xy.append(path)
        for k in range(n):
            colour = _hsv_colour(rng.uniform(0, 180), rng.uniform(40, 230), rng.uniform(60, 230))
            s, m = _sprite(rng, shape, wh[k, 0], wh[k, 1], colour, stripes=0.0 if cls != 3 else 0.3, noise=5)
            sprites.append(s)
            masks.append(m)
        classes += [cls] * n
    return Objects(np.concatenate(xy), sprites, masks, np.array(classes, np.int64))


MOTION = {"simple": _simple, "dance": _dance, "crowd": _crowd, "multiclass": _multiclass}
CLUTTER = {"simple": 6, "dance": 25, "crowd": 40, "multiclass": 30}


# ------------------------------------------------------------------------------------ writing


def _sequence_rng(seed: int, split: str, index: int) -> np.random.Generator:
    # The split is part of the seed so that train and val of one seed differ.
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]))


def write_sequence(seq_dir: str, preset: str, frames: int, size: tuple[int, int], rng: np.random.Generator) -> int:
    """Render one sequence into `seq_dir`; returns the number of gt rows."""
    W, H = size
    objects = MOTION[preset](rng, frames, W, H)
    background = textured_background(rng, W, H, CLUTTER[preset], objects.hue)
    xy = np.round(objects.xy).astype(np.int64)
    wh = np.array([m.shape[::-1] for m in objects.masks], np.int64)
    img_dir = os.path.join(seq_dir, "img1")
    os.makedirs(img_dir, exist_ok=True)
    chunks, track_id, next_id = [], np.zeros(len(wh), np.int64), 1
    for t in range(frames):
        p = xy[:, t]
        inside = np.nonzero((p[:, 0] < W) & (p[:, 0] + wh[:, 0] > 0) & (p[:, 1] < H) & (p[:, 1] + wh[:, 1] > 0))[0]
        order = inside[np.argsort(p[inside, 1] + wh[inside, 1], kind="stable")]  # far (higher) first
        frame, vis = render_frame(background, objects.sprites, objects.masks, p, order)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        with open(os.path.join(img_dir, f"{t + 1:08d}.jpg"), "wb") as f:
            f.write(buf.tobytes())
        shown = order[vis > 0]
        new = shown[track_id[shown] == 0]  # ids by first appearance (far to near within a frame)
        track_id[new] = next_id + np.arange(len(new))
        next_id += len(new)
        x1y1, x2y2 = np.maximum(p[shown], 0), np.minimum(p[shown] + wh[shown], [W, H])
        chunks.append(np.column_stack([np.full(len(shown), t + 1), track_id[shown], x1y1, x2y2 - x1y1,
                                       np.ones(len(shown)), objects.classes[shown], vis[vis > 0]]))
    rows = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, 9))
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    mot.write_mot(os.path.join(seq_dir, "gt", "gt.txt"), rows, kind="gt")
    mot.write_seqinfo(os.path.join(seq_dir, "seqinfo.ini"), os.path.basename(seq_dir), frames, W, H, FPS)
    return len(rows)


def generate_synthetic(out: str, preset: str = "dance", seqs: int = 4, frames: int = 100,
                       size: tuple[int, int] = (640, 360), seed: int = 0, split: str = "train") -> list[str]:
    """Write `seqs` sequences of `frames` frames into `out/<split>/` (DanceTrack layout) and
    `out/<split>_seqmap.txt`; returns the sequence names. Same arguments -> same bytes."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    if seqs < 1 or frames < 1:
        raise ValueError(f"--seqs and --frames must be >= 1, got {seqs} and {frames}")
    if size[0] < 32 or size[1] < 32:
        raise ValueError(f"--size must be at least 32x32, got {size[0]}x{size[1]}")
    names = [f"{preset}{k + 1:04d}" for k in range(seqs)]
    for k, name in enumerate(names):
        write_sequence(os.path.join(out, split, name), preset, frames, size, _sequence_rng(seed, split, k))
    mot.write_seqmap(os.path.join(out, f"{split}_seqmap.txt"), names)
    return names


# ---------------------------------------------------------------------------------------- CLI


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x360, got {text!r}") from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=PRESETS, default="dance",
                        help="simple shapes, look-alike dancers, a crowd of small walkers, or a multi-class street")
    parser.add_argument("--out", required=True, help="output folder (DanceTrack layout)")
    parser.add_argument("--seqs", type=int, default=4, help="number of sequences")
    parser.add_argument("--frames", type=int, default=100, help="frames per sequence")
    parser.add_argument("--size", type=parse_size, default="640x360", help="frame size WxH")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--split", default="train", help="split folder name (train, val, test)")


def run(args: argparse.Namespace) -> int:
    names = generate_synthetic(args.out, args.preset, args.seqs, args.frames, args.size, args.seed, args.split)
    print(f"wrote {len(names)} sequences x {args.frames} frames ({args.preset}) to {os.path.join(args.out, args.split)}")
    return 0
