"""MOTChallenge text formats: gt / result files, `seqinfo.ini`, seqmaps.

A MOT file has one box per line, `frame, id, x, y, w, h, conf, class, visibility` for ground
truth (DanceTrack, SportsMOT, MOT17/20) and `frame, id, x, y, w, h, conf, -1, -1, -1` for
results. Blank lines and trailing commas are tolerated (as TrackEval does); anything else
that is not a number is an error naming the file and line. No torch here: `trackformers
eval` imports this module.
"""
from __future__ import annotations

import configparser
import io
import os
from pathlib import Path

import numpy as np

# Column indices of the array `read_mot` returns.
FRAME, ID, X, Y, W, H, CONF, CLASS, VIS = range(9)
_DEFAULTS = np.array([np.nan] * 6 + [1.0, -1.0, -1.0])  # conf, class, visibility when absent


def _split_line(line: str) -> list[str]:
    parts = [p.strip() for p in line.replace(" ", ",").replace("\t", ",").split(",")]
    while parts and parts[-1] == "":
        parts.pop()
    return [p for p in parts if p != ""] if "," not in line else parts


def _parse_slow(path: str, text: str) -> np.ndarray:
    """Line-by-line parse that names the first bad line."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = _split_line(line)
        if len(parts) < 6:
            raise ValueError(f"{path}:{lineno}: expected at least 6 values (frame,id,x,y,w,h), got {len(parts)}: {line.strip()!r}")
        try:
            values = [float(p) for p in parts[:9]]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: not a number in {line.strip()!r}") from None
        rows.append(values + list(_DEFAULTS[len(values):]))
    return np.array(rows, dtype=np.float64).reshape(-1, 9)


def parse_mot(text: str, path: str = "<string>") -> np.ndarray:
    """Parse MOT text into a float64 array (N, 9): frame, id, x, y, w, h, conf, class, vis.

    Missing trailing columns take conf=1, class=-1, visibility=-1. Values are not checked for
    meaning here (negative sizes, NaN, duplicates): that is the caller's policy.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return np.zeros((0, 9))
    # Fast path: every line has the same number of comma-separated fields.
    stripped = [ln.rstrip().rstrip(",") for ln in lines]
    ncols = stripped[0].count(",") + 1
    if 6 <= ncols and all(ln.count(",") + 1 == ncols for ln in stripped) and " " not in stripped[0].strip():
        try:
            flat = np.array(",".join(stripped).split(","), dtype=np.float64)
        except ValueError:
            return _parse_slow(path, text)
        if flat.size == len(stripped) * ncols:
            arr = flat.reshape(len(stripped), ncols)[:, :9]
            if ncols < 9:
                arr = np.concatenate([arr, np.tile(_DEFAULTS[ncols:], (len(arr), 1))], axis=1)
            return arr
    return _parse_slow(path, text)


def read_mot(path: str | os.PathLike) -> np.ndarray:
    """Read a MOT gt/result file (see `parse_mot`). A missing file is a FileNotFoundError."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MOT file not found: {path}")
    with open(path) as f:
        return parse_mot(f.read(), path)


def format_mot(rows: np.ndarray, kind: str = "result") -> str:
    """MOT lines for an (N, >=6) array. kind='result': frame,id,x,y,w,h,conf,-1,-1,-1;
    kind='gt': frame,id,x,y,w,h,conf,class,visibility."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, rows.shape[-1] if np.ndim(rows) == 2 else 9)
    out = io.StringIO()
    for r in rows:
        conf = r[CONF] if r.shape[0] > CONF else 1.0
        head = f"{int(r[FRAME])},{int(r[ID])},{r[X]:.2f},{r[Y]:.2f},{r[W]:.2f},{r[H]:.2f}"
        if kind == "gt":
            cls = int(r[CLASS]) if r.shape[0] > CLASS else 1
            vis = r[VIS] if r.shape[0] > VIS else 1.0
            out.write(f"{head},{int(conf)},{cls},{vis:g}\n")
        else:
            out.write(f"{head},{conf:.4g},-1,-1,-1\n")
    return out.getvalue()


def write_mot(path: str | os.PathLike, rows: np.ndarray, kind: str = "result") -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(format_mot(rows, kind))


def read_seqinfo(path: str | os.PathLike) -> dict:
    """`seqinfo.ini` -> {'name', 'imDir', 'frameRate', 'seqLength', 'imWidth', 'imHeight', 'imExt'}."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"seqinfo.ini not found: {path}")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep camelCase keys
    try:
        parser.read(path)
        sec = parser["Sequence"]
    except (configparser.Error, KeyError) as e:
        raise ValueError(f"{path}: not a valid seqinfo.ini ({e.__class__.__name__}: missing [Sequence]?)") from None
    info = dict(sec)
    for key in ("frameRate", "seqLength", "imWidth", "imHeight"):
        if key in info:
            try:
                info[key] = int(float(info[key]))
            except ValueError:
                raise ValueError(f"{path}: {key}={info[key]!r} is not a number") from None
    if "seqLength" not in info:
        raise ValueError(f"{path}: seqLength is missing")
    return info


def write_seqinfo(path: str | os.PathLike, name: str, length: int, width: int, height: int,
                  frame_rate: int = 25, im_dir: str = "img1", im_ext: str = ".jpg") -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"[Sequence]\nname={name}\nimDir={im_dir}\nframeRate={frame_rate}\nseqLength={length}\n"
                f"imWidth={width}\nimHeight={height}\nimExt={im_ext}\n")


def read_seqmap(path: str | os.PathLike) -> list[str]:
    """Sequence names from a seqmap: optional 'name' header line, one sequence per line."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"seqmap not found: {path}")
    with open(path) as f:
        names = [ln.strip().split(",")[0].split()[0] for ln in f if ln.strip()]
    if names and names[0].lower() == "name":
        names = names[1:]
    return names


def write_seqmap(path: str | os.PathLike, names: list[str]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write("name\n" + "".join(f"{n}\n" for n in names))
