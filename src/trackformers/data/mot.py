"""MOTChallenge text formats: gt / result files, `seqinfo.ini`, seqmaps.

A MOT file has one box per line, `frame, id, x, y, w, h, conf, class, visibility` for ground
truth (DanceTrack, SportsMOT, MOT17/20) and `frame, id, x, y, w, h, conf, -1, -1, -1` for
results. Blank lines and trailing commas are tolerated (as TrackEval does); anything else
that is not a number is an error naming the file and line. No torch here: `trackformers
eval` imports this module.
"""
from __future__ import annotations

import codecs
import configparser
import io
import os
from pathlib import Path

import numpy as np

# Column indices of the array `read_mot` returns.
FRAME, ID, X, Y, W, H, CONF, CLASS, VIS = range(9)
_DEFAULTS = np.array([np.nan] * 6 + [1.0, -1.0, -1.0])  # conf, class, visibility when absent


def _split_line(line: str) -> list[str]:
    """Fields of a comma-separated line (spaces around commas allowed) or a whitespace-separated one."""
    parts = [p.strip() for p in line.split(",")] if "," in line else line.split()
    while parts and parts[-1] == "":
        parts.pop()  # trailing commas
    return parts


def _parse_slow(path: str, text: str) -> np.ndarray:
    """Line-by-line parse that names the first bad line."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = _split_line(line)
        if len(parts) < 6:
            raise ValueError(f"{path}:{lineno}: expected at least 6 values (frame,id,x,y,w,h), "
                             f"got {len(parts)}: {line.strip()!r}")
        try:
            values = [float(p) for p in parts[:9]]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: not a number in {line.strip()!r}") from None
        rows.append(values + list(_DEFAULTS[len(values):]))
    return np.array(rows, dtype=np.float64).reshape(-1, 9)


_POW10 = 10.0 ** np.arange(16)  # exact in float64
_DIGIT_POW10 = (np.arange(10.0)[:, None] * _POW10).ravel()  # digit * 10**k at [digit * 16 + k], exact
_COMMA, _NEWLINE, _DOT, _MINUS, _PLUS = (ord(c) for c in ",\n.-+")


def _parse_fast(data: bytes) -> np.ndarray | None:
    """Vectorised parse of comma-separated plain decimals ('12', '-3.25', '.5').

    Returns the rows as float64 (N, ncols), or None when the text needs the line-by-line
    parser (another separator, exponents, nan, ragged rows, a malformed value). A decimal
    with at most 15 digits is an exact integer over an exact power of ten, so one float64
    division gives the correctly rounded value: identical to `float(token)`.
    """
    b = np.frombuffer(data, dtype=np.uint8)
    space = (b == 32) | (b == 9) | (b == 13)
    if space.any():
        if not (b == _COMMA).any():
            return None  # whitespace-separated
        keep = ~space
        b = b[keep]
        # Spaces may only pad a field: where they were, a separator must follow or precede
        # ("3 4" is not a number and must not become 34).
        at = np.cumsum(keep)[np.flatnonzero(space)]  # where each space was, in the compacted bytes
        is_sep = (b == _COMMA) | (b == _NEWLINE)
        before = (at == 0) | is_sep[np.maximum(at - 1, 0)]
        after = (at == len(b)) | is_sep[np.minimum(at, len(b) - 1)]
        if not (before | after).all():
            return None
    if b.size == 0 or b[-1] != _NEWLINE:
        b = np.append(b, np.uint8(_NEWLINE))
    sep = (b == _COMMA) | (b == _NEWLINE)
    digit = (b >= 48) & (b <= 57)
    sign = (b == _MINUS) | (b == _PLUS)
    dot = b == _DOT
    if not (sep | digit | sign | dot).all():
        return None
    ends = np.flatnonzero(sep)  # token k is b[ends[k-1]+1 : ends[k]]
    starts = np.concatenate([[0], ends[:-1] + 1])
    # Blank lines and one trailing comma leave empty tokens, always the last of their line.
    line_end = b[ends] == _NEWLINE
    empty = ends == starts
    if (empty & ~line_end).any():
        return None  # an empty field inside a row
    keep = ~empty
    # Token of a byte that is not a separator: the number of separators before it.
    token_of = np.cumsum(sep, dtype=np.int32)
    # Mantissa: the token's digits as an exact integer, sum of digit * 10**(digits after it).
    cum_digits = np.cumsum(digit, dtype=np.int32)
    digits_to_end = cum_digits[ends]
    digits_in = np.diff(digits_to_end, prepend=0)
    if (digits_in[keep] == 0).any() or digits_in.max(initial=0) > 15:
        return None
    pos = np.flatnonzero(digit)
    pos_token = token_of[pos]
    after = digits_to_end[pos_token] - cum_digits[pos]
    contrib = _DIGIT_POW10[b[pos].astype(np.int32) * 16 + after - 48 * 16]
    mantissa = np.bincount(pos_token, contrib, minlength=len(ends))
    # Scale: the number of digits after the dot.
    dots = np.flatnonzero(dot)
    dot_token = token_of[dots]
    if np.bincount(dot_token).max(initial=0) > 1:
        return None
    frac = np.zeros(len(ends), dtype=np.int32)
    frac[dot_token] = digits_to_end[dot_token] - cum_digits[dots]
    signs = np.flatnonzero(sign)
    sign_token = token_of[signs]
    if (signs != starts[sign_token]).any():
        return None
    values = mantissa / _POW10[frac]
    negative = sign_token[b[signs] == _MINUS]
    values[negative] = -values[negative]
    # Rows: every non-blank line must have the same number of fields.
    line = np.cumsum(line_end, dtype=np.int32) - line_end
    per_line = np.bincount(line[keep], minlength=int(line_end.sum()))
    per_line = per_line[per_line > 0]
    if per_line.size == 0:
        return np.zeros((0, 9))
    ncols = int(per_line[0])
    if ncols < 6 or (per_line != ncols).any():
        return None
    return values[keep].reshape(-1, ncols)


def _with_defaults(arr: np.ndarray) -> np.ndarray:
    """(N, ncols) -> (N, 9): extra columns dropped, missing conf/class/visibility filled."""
    ncols = arr.shape[1]
    if ncols >= 9:
        return np.ascontiguousarray(arr[:, :9])
    return np.concatenate([arr, np.tile(_DEFAULTS[ncols:], (len(arr), 1))], axis=1)


def _parse_chunks(data: bytes, chunk: int = 1 << 16) -> np.ndarray | None:
    """`_parse_fast` on line-aligned pieces of about `chunk` bytes: its temporaries stay
    cache-sized (measured about twice as fast as one pass over a 1 MB file)."""
    parts, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start + chunk)
        end = len(data) if end < 0 else end + 1
        arr = _parse_fast(data[start:end])
        if arr is None:
            return None
        if len(arr):
            parts.append(arr)
        start = end
    if not parts:
        return np.zeros((0, 9))
    if len({p.shape[1] for p in parts}) > 1:
        return None  # ragged rows: the line-by-line parser names the line
    return _with_defaults(np.concatenate(parts))


def parse_mot(text: str | bytes, path: str = "<string>") -> np.ndarray:
    """Parse MOT text into a float64 array (N, 9): frame, id, x, y, w, h, conf, class, vis.

    Missing trailing columns take conf=1, class=-1, visibility=-1. Values are not checked for
    meaning here (negative sizes, NaN, duplicates): that is the caller's policy.
    """
    data = text.encode() if isinstance(text, str) else text
    if data.startswith(codecs.BOM_UTF8):  # Windows tools write one; TrackEval would reject the file
        data = data[len(codecs.BOM_UTF8):]
    arr = _parse_chunks(data)
    return _parse_slow(path, data.decode(errors="replace")) if arr is None else arr


def read_mot(path: str | os.PathLike) -> np.ndarray:
    """Read a MOT gt/result file (see `parse_mot`). A missing file is a FileNotFoundError."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MOT file not found: {path}")
    with open(path, "rb") as f:
        return parse_mot(f.read(), path)


def line_number(path: str, row: int) -> int:
    """1-based line of the row-th non-blank line (the rows `read_mot` returns, in order)."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        seen = -1
        for lineno, line in enumerate(f, 1):
            seen += bool(line.strip())
            if seen == row:
                return lineno
    return 0


def check_rows(path: str, rows: np.ndarray, num_frames: int, columns: int = 6) -> None:
    """Rows of `read_mot(path)` that mean something, else an error naming the file and line: the
    first `columns` values finite, frame and id integers, frame in 1..num_frames, 0 <= id <= 2**53."""
    def fail(row: int, message: str) -> None:
        raise ValueError(f"{path}:{line_number(path, row)}: {message}")

    bad = ~np.isfinite(rows[:, :columns]).all(1)
    if bad.any():
        fail(int(np.argmax(bad)), "value is NaN or infinite")
    for col, name in ((FRAME, "frame"), (ID, "id")):
        bad = rows[:, col] != np.round(rows[:, col])
        if bad.any():
            r = int(np.argmax(bad))
            fail(r, f"{name} {rows[r, col]:g} is not an integer")
    bad = (rows[:, FRAME] < 1) | (rows[:, FRAME] > num_frames)
    if bad.any():
        r = int(np.argmax(bad))
        fail(r, f"frame {int(rows[r, FRAME])} is outside 1..{num_frames} (seqLength in seqinfo.ini)")
    bad = (rows[:, ID] < 0) | (rows[:, ID] > 2 ** 53)
    if bad.any():
        r = int(np.argmax(bad))
        fail(r, f"id {rows[r, ID]:g} is negative or too large")


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


MAX_SEQ_LENGTH = 10_000_000  # frames: over four days at 25 fps; beyond it a seqinfo.ini is damaged


def read_text(path: str, what: str) -> str:
    """A text file decoded as UTF-8 (a leading BOM dropped); other bytes are an error naming it."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: {what} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None


def _integer(path: str, key: str, raw: str) -> int:
    """An integer field ('25', '25.0'); anything else is an error naming the file and key."""
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
        if value.is_integer():
            return int(value)
    except (ValueError, OverflowError):
        pass
    raise ValueError(f"{path}: {key}={raw!r} is not an integer")


def is_plain_name(name: str) -> bool:
    """A file or folder name that stays inside its folder: no separator, not '.' or '..'."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def read_seqinfo(path: str | os.PathLike) -> dict:
    """`seqinfo.ini` -> {'name', 'imDir', 'frameRate', 'seqLength', 'imWidth', 'imHeight', 'imExt'}.

    seqLength must be 1..MAX_SEQ_LENGTH, sizes and frame rate non-negative integers, `name`
    a plain name (it names output files) and `imDir` a folder inside the sequence's."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"seqinfo.ini not found: {path}")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep camelCase keys
    try:
        parser.read_string(read_text(path, "seqinfo.ini"), source=path)
        sec = parser["Sequence"]
    except configparser.Error as e:
        message = str(e).splitlines()[0].rstrip(".")
        raise ValueError(f"{path}: not a valid seqinfo.ini ({message})") from None
    except KeyError:
        raise ValueError(f"{path}: not a valid seqinfo.ini (no [Sequence] section)") from None
    info = dict(sec)
    for key in ("frameRate", "seqLength", "imWidth", "imHeight"):
        if key in info:
            info[key] = _integer(path, key, info[key])
            if info[key] < 0:
                raise ValueError(f"{path}: {key}={info[key]} is negative")
    if "seqLength" not in info:
        raise ValueError(f"{path}: seqLength is missing")
    if not 1 <= info["seqLength"] <= MAX_SEQ_LENGTH:
        raise ValueError(f"{path}: seqLength={info['seqLength']} is outside 1..{MAX_SEQ_LENGTH}")
    for key in ("name", "imDir"):
        if key in info and not is_plain_name(info[key]):
            raise ValueError(f"{path}: {key}={info[key]!r} is not a plain name (no '/', '\\' or '..')")
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
    lines = [(n, ln.strip()) for n, ln in enumerate(read_text(path, "seqmap").splitlines(), 1)]
    names = [(n, ln.split(",")[0].split()[0] if ln.split(",")[0].split() else "") for n, ln in lines if ln]
    if names and names[0][1].lower() == "name":
        names = names[1:]
    for n, name in names:
        if not is_plain_name(name):  # names become paths: they must stay inside the data folder
            raise ValueError(f"{path}:{n}: sequence name {name!r} is not a plain folder name")
    return [name for _, name in names]


def write_seqmap(path: str | os.PathLike, names: list[str]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write("name\n" + "".join(f"{n}\n" for n in names))
