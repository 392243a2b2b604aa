"""Model files: weights as safetensors beside a JSON with the full config and provenance.

`save_model("out/motr", state_dict, config)` writes `out/motr.safetensors` and
`out/motr.json`, each atomically (a crash never leaves a half-written file under the final
name). `load_model("out/motr")` (or either file's path) returns `(state_dict, meta)`.
Nothing here unpickles: safetensors and JSON only.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FORMAT = "trackformers/1"


def _stem(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call `write(tmp_path)` then rename onto `path`, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file a plain file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_model(path: str | os.PathLike, state_dict: dict, config: dict, **provenance) -> Path:
    """Write `<stem>.safetensors` + `<stem>.json`; returns the stem."""
    stem = _stem(path)
    # safetensors refuses shared storage; contiguous clones make every tensor its own.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    meta = {"format": FORMAT, "config": config, "provenance": provenance}
    atomic_write(stem.with_suffix(".safetensors"), lambda p: save_file(tensors, p))

    def write_json(p):
        with open(p, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True, default=str)
            f.write("\n")

    atomic_write(stem.with_suffix(".json"), write_json)
    return stem


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Read a model written by `save_model`: `(state_dict, {"config", "provenance", ...})`."""
    stem = _stem(path)
    weights, meta_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for p in (weights, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"model file not found: {p}")
    with open(meta_path) as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not a trackformers model file (format {meta.get('format')!r})")
    return load_file(str(weights), device=str(device)), meta


def load_official(path: str | os.PathLike) -> dict:
    """An official `.pth` checkpoint's state dict, read without unpickling code.

    The official files nest the weights under `model` (or `state_dict`, mmcv); float16 copies
    are cast to float32.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors: refuse rather than unpickle arbitrary objects
        raise ValueError(f"{path}: cannot be read as a weights-only checkpoint ({e.__class__.__name__}: {e})") from None
    # DETR-family files nest the weights under `model`, mmcv / mmdet ones under `state_dict`
    sd = ckpt.get("model", ckpt.get("state_dict", ckpt)) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: no state dict found (expected tensors, or a dict with 'model' or 'state_dict')")
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
