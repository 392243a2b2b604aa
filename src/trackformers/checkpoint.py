"""Model files: weights as safetensors beside a JSON with the full config and provenance.

`save_model("out/motr", state_dict, config)` writes `out/motr.safetensors` and
`out/motr.json`, each atomically (a crash never leaves a half-written file under the final
name). `load_model("out/motr")` (or either file's path) returns `(state_dict, meta)`.
Nothing here unpickles: safetensors and JSON only.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from trackformers.config import ConfigError

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


def ensure_writable_dir(path: str | os.PathLike, min_free: int = 1 << 20) -> Path:
    """Create `path` if needed and prove it takes a file, before any work is done: a read-only
    or full output folder is one error naming it, not a traceback after hours of work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OSError(f"output folder {path} is not writable ({e.strerror or e})") from None
    free = shutil.disk_usage(path).free
    if free < min_free:
        raise OSError(f"output folder {path} has no space left ({free} bytes free)")
    return path


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


def read_json(path: str | os.PathLike, what: str) -> dict:
    """A JSON object from `path`; a file that is not one is an error naming it."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: {what} is not valid JSON ({e.msg})") from None
    except RecursionError:
        raise ValueError(f"{path}: {what} is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {what} must hold a JSON object, not {type(data).__name__}")
    return data


def read_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """The tensors of a .safetensors file; a damaged or foreign file is one error naming it."""
    try:
        return load_file(str(path), device=str(device))
    except Exception as e:  # SafetensorError, OSError, ...: one line whatever the cause
        message = (str(e).splitlines() or [e.__class__.__name__])[0]
        raise ValueError(f"{path}: not a readable safetensors file ({message})") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Read a model written by `save_model`: `(state_dict, {"config", "provenance", ...})`."""
    stem = _stem(path)
    weights, meta_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for p in (weights, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"model file not found: {p}")
    meta = read_json(meta_path, "model file")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not a trackformers model file (format {meta.get('format')!r})")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{meta_path}: 'config' must be a JSON object")
    if not isinstance(meta.setdefault("provenance", {}), dict):
        raise ValueError(f"{meta_path}: 'provenance' must be an object")
    return read_tensors(weights, device), meta


@contextlib.contextmanager
def config_errors_name(path: str | os.PathLike):
    """A ConfigError raised while building a model from a file's config names the file."""
    try:
        yield
    except ConfigError as e:
        raise ConfigError(f"{_stem(path)}.json (or a --set): {e}") from None


def load_weights(model: torch.nn.Module, state_dict: dict, path: str | os.PathLike) -> None:
    """`model.load_state_dict(state_dict)`, with a mismatch reported as one line naming `path`
    (a .safetensors file, or a model file's stem)."""
    path = Path(path)
    weights = path if path.suffix == ".safetensors" else Path(f"{path}.safetensors")
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    problems = [f"{label} {len(keys)} tensor(s), e.g. {keys[0]!r}" + (
        f" {tuple(state_dict[keys[0]].shape)} vs {tuple(own[keys[0]].shape)}" if label == "shape differs in" else "")
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs in", shapes)) if keys]
    if problems:
        raise ValueError(f"{weights}: weights do not fit the {type(model).__name__} built from its config "
                         f"({'; '.join(problems)})")
    model.load_state_dict(state_dict)


def load_official(path: str | os.PathLike) -> dict:
    """An official `.pth` checkpoint's state dict, read without unpickling code.

    The official files nest the weights under `model` (or `state_dict`, mmcv); float16 copies
    are cast to float32.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused an object: never unpickle it
        found = re.search(r"(?:GLOBAL|global) ([\w.]+)", str(e))
        what = f" (it holds {found.group(1)})" if found else ""
        raise ValueError(f"{path}: not a plain-tensor checkpoint{what}; loading it would need full unpickling, "
                         "which can run arbitrary code, so it is refused (re-save its state dict with "
                         "torch.save(ckpt['model'], ...) where you trust it)") from None
    except Exception as e:  # a damaged or foreign file
        message = (str(e).splitlines() or [e.__class__.__name__])[0]
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({e.__class__.__name__}: {message})") from None
    # DETR-family files nest the weights under `model`, mmcv / mmdet ones under `state_dict`
    sd = ckpt.get("model", ckpt.get("state_dict", ckpt)) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: no state dict found (expected tensors, or a dict with 'model' or 'state_dict')")
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
