"""CrowdHuman `.odgt` annotations: one JSON object per line, one line per image.

Each line is `{"ID": <image stem>, "gtboxes": [box, ...]}` and each box has `tag` ("person"
or "mask" for crowd / reflection regions), `fbox` (full body, amodal), `vbox` (visible part),
`hbox` (head), all `[x, y, w, h]` in pixels, and `extra` / `head_attr` dicts whose `ignore`
flag marks boxes that should neither be learnt nor penalised. No torch here.
"""
from __future__ import annotations

import codecs
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trackformers.data.mot import is_plain_name

BOX_KINDS = ("fbox", "vbox", "hbox")


@dataclass
class OdgtImage:
    """All boxes of one CrowdHuman image; box arrays are float64 (n, 4) `xywh` pixels."""

    image_id: str
    fbox: np.ndarray
    vbox: np.ndarray
    hbox: np.ndarray
    tags: list[str] = field(default_factory=list)
    ignore: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))       # body box ignored
    head_ignore: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # head box ignored

    def __len__(self) -> int:
        return len(self.tags)


def _box(entry: dict, kind: str, where: str) -> list[float]:
    box = entry.get(kind)
    if box is None:  # some "mask" regions carry only fbox; missing kinds are NaN
        return [np.nan] * 4
    if (not isinstance(box, list) or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
        raise ValueError(f"{where}: {kind} must be a list of 4 finite numbers, got {box!r}")
    return [float(v) for v in box]


def _flag(entry: dict, key: str, where: str) -> bool:
    """`entry[key]["ignore"]` as a bool (absent: False)."""
    attrs = entry.get(key, {})
    if not isinstance(attrs, dict):
        raise ValueError(f"{where}: '{key}' must be an object, got {attrs!r}")
    return bool(attrs.get("ignore", 0))


def parse_odgt_line(line: str, where: str = "<string>") -> OdgtImage:
    """One `.odgt` line -> `OdgtImage`. `where` ("file:line") prefixes every error."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{where}: not valid JSON ({getattr(e, 'msg', 'nested too deeply')})") from None
    if not isinstance(record, dict) or "ID" not in record:
        raise ValueError(f"{where}: an odgt record needs an 'ID'")
    image_id = record["ID"]
    if not isinstance(image_id, (str, int)) or isinstance(image_id, bool) or not is_plain_name(str(image_id)):
        raise ValueError(f"{where}: 'ID' must be an image file stem, got {image_id!r}")  # it names a file
    entries = record.get("gtboxes", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{where}: 'gtboxes' must be a list of objects")
    boxes = {kind: [_box(e, kind, where) for e in entries] for kind in BOX_KINDS}
    tags = [str(e.get("tag", "person")) for e in entries]
    # A "mask" tag (crowd, poster, reflection) is an ignore region whatever its flags say.
    ignore = [t == "mask" or _flag(e, "extra", where) for t, e in zip(tags, entries)]
    head_ignore = [t == "mask" or _flag(e, "head_attr", where) for t, e in zip(tags, entries)]
    return OdgtImage(
        image_id=str(image_id),
        **{kind: np.array(boxes[kind], dtype=np.float64).reshape(-1, 4) for kind in BOX_KINDS},
        tags=tags,
        ignore=np.array(ignore, dtype=bool),
        head_ignore=np.array(head_ignore, dtype=bool),
    )


def read_odgt(path: str | os.PathLike) -> list[OdgtImage]:
    """Read a CrowdHuman `.odgt` file (blank lines skipped); errors name file:line."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"odgt file not found: {path}")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[0].startswith(codecs.BOM_UTF8):
        lines[0] = lines[0][len(codecs.BOM_UTF8):]
    images = []
    for n, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{n}: not UTF-8 text (byte {e.start} of the line)") from None
        if line.strip():
            images.append(parse_odgt_line(line, f"{path}:{n}"))
    return images


def _box_json(box: np.ndarray) -> list[float] | None:
    return None if np.isnan(box).any() else [round(float(v), 4) for v in box]


def write_odgt(path: str | os.PathLike, images: list[OdgtImage]) -> None:
    """Write `OdgtImage`s back to `.odgt` (ignore flags go to `extra` / `head_attr`)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for im in images:
            entries = []
            for k, tag in enumerate(im.tags):
                entry = {"tag": tag}
                for kind in BOX_KINDS:
                    box = _box_json(getattr(im, kind)[k])
                    if box is not None:
                        entry[kind] = box
                entry["extra"] = {"box_id": k, "ignore": int(im.ignore[k])}
                entry["head_attr"] = {"ignore": int(im.head_ignore[k])}
                entries.append(entry)
            f.write(json.dumps({"ID": im.image_id, "gtboxes": entries}) + "\n")
