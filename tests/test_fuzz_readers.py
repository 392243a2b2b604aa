"""A seeded fuzz suite over every reader of untrusted files.

Each case starts from a valid input, damages ONE file (truncation, garbage and non-UTF-8 bytes,
a BOM, CRLF, wrong tokens and types, missing keys, hostile names, unicode paths) and runs the
reader. The outcome must be either
- an error the CLI prints as one line (ValueError / OSError / ConfigError) that names the
  damaged file (for a dataset layout: a path inside it), or
- a result; for the evaluator, equal to TrackEval's wherever TrackEval accepts the input.
A traceback-type exception, a multi-line message or a message without the file is a failure.

    python tests/test_fuzz_readers.py     # prints the case count and the outcome table as JSON
"""
from __future__ import annotations

import codecs
import json
import math
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
FIX = TESTS / "fixtures" / "data"
CASES_PER_READER = {"mot_txt": 48, "seqinfo": 24, "seqmap": 12, "odgt": 36, "bdd_json": 36, "datasets": 30,
                    "model_file": 20, "official_pth": 12, "config_yaml": 16}
TOKENS = ["nan", "inf", "-inf", "x", "", "1e400", "-1", "1.5", "0x10", " ", "\uff11", "1e3", "+2", "--1",
          "1_0", "\u0663", "9" * 30, "0.0000001", "\x00"]
JSON_VALUES = [None, "s", "", 1.5, -1, 0, 10 ** 20, True, [], {}, [1, 2], {"a": 1}, "\u00e9\u2603", "../x", "a/b"]


class Case:
    """One damaged input: `run()` reads it, `names` are paths an error may name."""

    def __init__(self, reader, kind, run, names, trackeval=None):
        self.reader, self.kind, self.run, self.names, self.trackeval = reader, kind, run, names, trackeval


# ------------------------------------------------------------------------ byte-level damage

def _line_spans(data: bytes) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in re.finditer(rb"\n", data):
        spans.append((start, m.start()))
        start = m.end()
    if start < len(data):
        spans.append((start, len(data)))
    return spans


def damage_text(rng, data: bytes, sep: bytes = b",") -> tuple[str, bytes]:
    """(kind, damaged bytes) for a line-oriented text file."""
    kind = str(rng.choice(["truncate", "garbage", "token", "drop_field", "bom", "crlf", "non_utf8", "duplicate_line",
                       "empty", "whitespace", "trailing_sep", "blank_lines", "huge_line", "nul"]))
    spans = _line_spans(data) or [(0, 0)]
    a, b = spans[int(rng.integers(len(spans)))]
    line = data[a:b]
    if kind == "truncate":
        return kind, data[: int(rng.integers(0, max(len(data), 1)))]
    if kind == "garbage":
        at = int(rng.integers(0, len(data) + 1))
        return kind, data[:at] + bytes(rng.integers(0, 256, int(rng.integers(1, 16))).astype(np.uint8)) + data[at:]
    if kind == "token":
        fields = line.split(sep)
        k = int(rng.integers(len(fields)))
        fields[k] = TOKENS[int(rng.integers(len(TOKENS)))].encode()
        return kind, data[:a] + sep.join(fields) + data[b:]
    if kind == "drop_field":
        fields = line.split(sep)
        del fields[int(rng.integers(len(fields)))]
        return kind, data[:a] + sep.join(fields) + data[b:]
    if kind == "bom":
        return kind, codecs.BOM_UTF8 + data
    if kind == "crlf":
        return kind, data.replace(b"\n", b"\r\n")
    if kind == "non_utf8":
        return kind, data[:a] + b"\xff\xfe" + data[a:]
    if kind == "duplicate_line":
        return kind, data[:b] + b"\n" + line + data[b:]
    if kind == "empty":
        return kind, b""
    if kind == "whitespace":
        return kind, data.replace(sep, b" ")
    if kind == "trailing_sep":
        return kind, data.replace(b"\n", sep + b"\n")
    if kind == "blank_lines":
        return kind, b"\n\n" + data.replace(b"\n", b"\n\n")
    if kind == "huge_line":
        return kind, data + sep.join([b"1"] * 5000) + b"\n"
    return kind, data[:a] + b"\x00" + data[a:]


def damage_json(rng, value):
    """(kind, damaged JSON-able value): a random node replaced, deleted or given a new key."""
    kind = str(rng.choice(["replace", "delete", "add", "replace", "wrap"]))
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])

    walk(value, [])
    path = paths[int(rng.integers(len(paths)))]
    new = JSON_VALUES[int(rng.integers(len(JSON_VALUES)))]
    if not path:
        return "replace_root", new
    parent = value
    for k in path[:-1]:
        parent = parent[k]
    if kind == "replace":
        parent[path[-1]] = new
    elif kind == "delete":
        del parent[path[-1]]
    elif kind == "add" and isinstance(parent, dict):
        parent["unexpected\u2603"] = new
    else:
        parent[path[-1]] = [parent[path[-1]]]
    return kind, value


def damage_json_file(rng, path: Path, loads=json.loads, dumps=json.dumps) -> str:
    """Damage a JSON (or JSON-lines) file: as text or as a tree."""
    data = path.read_bytes()
    if rng.random() < 0.35:
        kind, data = damage_text(rng, data)
        path.write_bytes(data)
        return f"text_{kind}"
    kind, value = damage_json(rng, loads(data))
    path.write_bytes(dumps(value).encode())
    return f"tree_{kind}"


# ------------------------------------------------------------------------ the readers' cases

def _eval_base(root: Path) -> tuple[Path, Path]:
    from trackformers.eval.testing import Errors, make_sequence, write_case
    rng = np.random.default_rng(1)
    seqs = {f"s{k}": (*make_sequence(rng, 15, 4, Errors(), size=(320, 240)), 15) for k in range(2)}
    return write_case(root, seqs)


def _evaluate(gt_root, pred_root, benchmark, seqmap=None):
    from trackformers.eval.evaluate import evaluate
    return evaluate(gt_root, pred_root, benchmark=benchmark, seqmap=seqmap)


def mot_txt_case(rng, root: Path) -> Case:
    gt_root, pred_root = _eval_base(root)
    target = rng.choice([pred_root / "s0.txt", gt_root / "s1" / "gt" / "gt.txt"])
    kind, data = damage_text(rng, target.read_bytes())
    target.write_bytes(data)
    benchmark = rng.choice(["dancetrack", "mot17", "generic"])
    return Case("mot_txt", kind, lambda: _evaluate(gt_root, pred_root, benchmark), [target],
                trackeval=(gt_root, pred_root, benchmark))


def seqinfo_case(rng, root: Path) -> Case:
    gt_root, pred_root = _eval_base(root)
    target = gt_root / "s0" / "seqinfo.ini"
    if rng.random() < 0.5:
        kind, data = damage_text(rng, target.read_bytes(), sep=b"=")
    else:
        key = rng.choice(["seqLength", "name", "imWidth", "frameRate", "imDir"])
        value = rng.choice(["0", "-5", "1e11", "3.5", "abc", "", "../../evil", "15", "\u00e9t\u00e9", "100000"])
        text = target.read_text()
        kind, data = f"{key}={value}", re.sub(rf"{key}=.*", f"{key}={value}", text).encode()
    target.write_bytes(data)
    seq = gt_root / "s0"
    return Case("seqinfo", kind, lambda: _evaluate(gt_root, pred_root, "dancetrack"),
                [target, seq / "gt" / "gt.txt", pred_root / "s0.txt"], trackeval=(gt_root, pred_root, "dancetrack"))


def seqmap_case(rng, root: Path) -> Case:
    gt_root, pred_root = _eval_base(root)
    target = root / "seqmap.txt"
    if rng.random() < 0.5:
        kind, data = damage_text(rng, target.read_bytes())
    else:
        name = rng.choice(["../gt/s0", "/etc", "s0/../s1", "..", "nope", "s\u00e9q", "s0\x00"])
        kind, data = f"name={name!r}", f"name\ns0\n{name}\n".encode()
    target.write_bytes(data)
    return Case("seqmap", kind, lambda: _evaluate(gt_root, pred_root, "dancetrack", seqmap=target), [target])


def odgt_case(rng, root: Path) -> Case:
    from trackformers.data.odgt import read_odgt
    folder = root / rng.choice(["odgt", "\u00fcnicode \u2603 dir"])
    folder.mkdir()
    target = folder / "annotation_val.odgt"
    shutil.copy(FIX / "CrowdHuman" / "annotation_val.odgt", target)
    lines = lambda b: [json.loads(x) for x in b.decode().splitlines() if x.strip()]
    kind = damage_json_file(rng, target, loads=lines,
                            dumps=lambda v: "\n".join(json.dumps(x) for x in (v if isinstance(v, list) else [v])))
    return Case("odgt", kind, lambda: read_odgt(target), [target])


def bdd_case(rng, root: Path) -> Case:
    from trackformers.eval.bdd_json import read_bdd_json
    folder = root / rng.choice(["bdd", "vid\u00e9o \u2603"])
    folder.mkdir()
    target = folder / "video.json"
    shutil.copy(FIX / "BDD100K" / "labels" / "box_track_20" / "val" / "b1c66a42-6f7d68ca.json", target)
    kind = damage_json_file(rng, target)
    return Case("bdd_json", kind, lambda: read_bdd_json(str(target)), [target])


DATASETS = {"dancetrack": ("DanceTrack", "train"), "sportsmot": ("SportsMOT", "train"), "mot17": ("MOT17", "train"),
            "mot20": ("MOT20", "train"), "crowdhuman": ("CrowdHuman", "val"), "bdd100k": ("BDD100K", "val")}


def dataset_case(rng, root: Path) -> Case:
    from trackformers.data.datasets import load_dataset
    name = rng.choice(sorted(DATASETS))
    folder, split = DATASETS[name]
    data_root = root / rng.choice(["data", "d\u00e4ta \u2603"])
    shutil.copytree(FIX / folder, data_root / folder)
    files = sorted(p for p in (data_root / folder).rglob("*") if p.is_file())
    target = files[int(rng.integers(len(files)))]
    action = rng.choice(["delete", "damage", "damage", "empty", "rename_dir"])
    if action == "delete":
        target.unlink()
    elif action == "empty":
        target.write_bytes(b"")
    elif action == "rename_dir":
        target.parent.rename(target.parent.with_name(target.parent.name + "\u00e9"))
    elif target.suffix == ".json":
        action = "damage_" + damage_json_file(rng, target)
    elif target.suffix in (".jpg", ".png"):
        data = target.read_bytes()
        target.write_bytes(data[: int(rng.integers(0, len(data)))])
        action = "damage_truncated_image"
    else:
        kind, data = damage_text(rng, target.read_bytes(), sep=b"=" if target.suffix == ".ini" else b",")
        target.write_bytes(data)
        action = f"damage_{kind}"
    def run():
        seqs = load_dataset(name, str(data_root), split)
        for seq in seqs:  # what training reads next: every image's header
            from trackformers.data.datasets import image_size
            for p in seq.image_paths:
                image_size(p)
        return seqs
    return Case("datasets", f"{name}:{target.suffix or 'file'}:{action}", run, [data_root])


def model_file_case(rng, root: Path) -> Case:
    import torch
    from test_engine_fakes import TinyConfig, TinyTracker
    from trackformers import checkpoint
    from trackformers.config import to_dict
    from trackformers.trackers.registry import load_model_file
    torch.manual_seed(0)
    stem = checkpoint.save_model(root / "m", TinyTracker(TinyConfig()).state_dict(),
                                 {"method": "test_engine_fakes:TinyTracker", **to_dict(TinyConfig())})
    if rng.random() < 0.5:
        target = stem.with_suffix(".safetensors")
        kind, data = damage_text(rng, target.read_bytes())
        target.write_bytes(data)
    else:
        target = stem.with_suffix(".json")
        kind = damage_json_file(rng, target)
    return Case("model_file", kind, lambda: load_model_file(stem), [target, stem])


def official_pth_case(rng, root: Path) -> Case:
    import torch
    from trackformers.checkpoint import load_official
    target = root / "official.pth"
    torch.save({"model": {"backbone.0.weight": torch.ones(2, 3), "head.bias": torch.zeros(4)}, "epoch": 3}, target)
    data = target.read_bytes()
    kind = rng.choice(["truncate", "flip", "garbage_tail", "not_zip"])
    if kind == "truncate":
        data = data[: int(rng.integers(0, len(data)))]
    elif kind == "flip":
        at = rng.integers(0, len(data), 8)
        data = bytearray(data)
        for i in at:
            data[i] ^= 0xFF
        data = bytes(data)
    elif kind == "garbage_tail":
        data = data + b"\x00garbage" * 10
    else:
        data = b"\x80\x04K\x01."  # a bare pickle of the int 1
    target.write_bytes(data)
    return Case("official_pth", kind, lambda: load_official(target), [target])


def config_yaml_case(rng, root: Path) -> Case:
    import yaml
    from test_engine_fakes import tiny_train_config
    from trackformers import config
    from trackformers.engine.train_config import TrainConfig
    target = root / rng.choice(["c.yaml", "c\u00f6nfig \u2603.yaml"])
    cfg = config.to_dict(tiny_train_config("runs/x"))
    target.write_text(yaml.safe_dump(cfg))
    if rng.random() < 0.4:
        kind, data = damage_text(rng, target.read_bytes(), sep=b":")
        target.write_bytes(data)
    else:
        kind, value = damage_json(rng, cfg)
        target.write_text(yaml.safe_dump(value))
        kind = f"tree_{kind}"
    return Case("config_yaml", kind, lambda: config.load(TrainConfig, target), [target])


MAKERS = {"mot_txt": mot_txt_case, "seqinfo": seqinfo_case, "seqmap": seqmap_case, "odgt": odgt_case,
          "bdd_json": bdd_case, "datasets": dataset_case, "model_file": model_file_case,
          "official_pth": official_pth_case, "config_yaml": config_yaml_case}


# ------------------------------------------------------------------------ judging a case

def _trackeval(gt_root, pred_root, benchmark):
    """TrackEval's result, or None where TrackEval refuses the input (any exception)."""
    import contextlib
    import io
    import warnings
    from trackformers.eval.testing import run_trackeval
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return run_trackeval(gt_root, pred_root, benchmark)
    except Exception:
        return None


def judge(case: Case, with_trackeval: bool) -> tuple[str, str | None]:
    """(outcome, failure or None)."""
    from trackformers.config import ConfigError
    try:
        result = case.run()
    except (ValueError, OSError, ConfigError) as e:
        message = str(e)
        if "\n" in message or not message:
            return "error", f"multi-line or empty message: {message!r}"
        if not any(str(n) in message for n in case.names):
            return "error", f"message does not name {case.names[0]}: {message!r}"
        return "error", None
    except Exception as e:  # noqa: BLE001 - anything else would be a traceback
        return "traceback", f"{e.__class__.__name__}: {e}"
    if case.trackeval is None or not with_trackeval:
        return "accepted", None
    ref = _trackeval(*case.trackeval)
    if ref is None:
        return "accepted (TrackEval refuses)", None
    from trackformers.eval.testing import differences
    bad, _ = differences(result, ref)
    return ("accepted = TrackEval", None) if not bad else ("accepted != TrackEval", "; ".join(bad[:3]))


def run_reader(reader: str, root: Path, seed: int = 18, with_trackeval: bool = True) -> list[tuple[Case, str, str | None]]:
    rng = np.random.default_rng([seed, sorted(MAKERS).index(reader)])
    out = []
    for k in range(CASES_PER_READER[reader]):
        case_root = root / f"{reader}{k}"
        case_root.mkdir(parents=True)
        case = MAKERS[reader](rng, case_root)
        out.append((case, *judge(case, with_trackeval)))
    return out


@pytest.mark.parametrize("reader", sorted(MAKERS))
def test_fuzz_reader(tmp_path, reader):
    if reader in ("mot_txt", "seqinfo"):
        pytest.importorskip("trackeval")
    results = run_reader(reader, tmp_path)
    failures = [f"{c.kind}: {f}" for c, _, f in results if f is not None]
    assert not failures, "\n".join(failures[:10])
    # The suite exercises both sides: damaged inputs that must be refused, and some that are read.
    outcomes = Counter(o for _, o, _ in results)
    assert outcomes["error"] > 0


def main() -> None:
    """FUZZ_SEED / FUZZ_SCALE (environment) explore more cases than the test runs."""
    import tempfile
    seed, scale = int(os.environ.get("FUZZ_SEED", 18)), float(os.environ.get("FUZZ_SCALE", 1))
    for reader in CASES_PER_READER:
        CASES_PER_READER[reader] = max(1, round(CASES_PER_READER[reader] * scale))
    table, total, failures = {}, 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for reader in sorted(MAKERS):
            results = run_reader(reader, Path(tmp) / reader, seed)
            table[reader] = dict(Counter(o for _, o, _ in results))
            total += len(results)
            failures += [f"{reader} {c.kind}: {f}" for c, _, f in results if f is not None]
    print(json.dumps({"cases": total, "failures": len(failures), "outcomes": table,
                      "failure_examples": failures[:10]}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    sys.path[:0] = [str(TESTS), str(TESTS.parent / "src")]
    main()
