"""Training checkpoints: everything `--resume` needs, without pickle.

A training checkpoint `DIR/<name>` is
- `<name>.train.safetensors`: ONE file holding everything a resume reads: the model's tensors
  (`model.*`), the optimizer's (`optim.*`) and every rank's RNG states (`rng.<rank>.*`), with
  epoch, step, optimizer hyper-parameters, Python RNG states and the model's config as JSON in
  the file's metadata. It is written to a temporary name and renamed, so a crash at any
  moment leaves either the previous checkpoint or the new one, never a mix;
- `<name>.safetensors` + `<name>.json`: the same model as `checkpoint.save_model` writes it
  (what `load_tracker` and `--export` read), written first.
Checkpoints of the earlier layout (a separate `<name>.train.json` beside the model pair,
whose steps must agree) still resume.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from trackformers import checkpoint


def rng_state() -> tuple[dict, dict]:
    """This process's RNG states (torch, CUDA, numpy, python) as (tensors, JSON-able dict)."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np_keys.astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    version, py_state, py_gauss = random.getstate()
    meta = {"numpy": [np_kind, int(np_pos), int(np_has_gauss), float(np_gauss)],
            "python": [version, list(py_state), py_gauss]}
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in tensors]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = meta["python"]
    random.setstate((version, tuple(py_state), py_gauss))


def _split_optimizer(state: dict) -> tuple[dict, dict]:
    """An optimizer state_dict as flat tensors `optim.<param>.<name>` + JSON for the rest."""
    tensors, scalars = {}, {}
    for pid, per_param in state["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _train_file(stem: Path, suffix: str) -> Path:
    return stem.with_name(f"{stem.name}.train{suffix}")


META_KEY = "trackformers_train"


def has_training_state(stem: str | Path) -> bool:
    """Whether `stem` is a checkpoint that `--resume` can continue (either layout)."""
    stem = Path(stem)
    return _train_file(stem, ".safetensors").is_file() or _train_file(stem, ".json").is_file()


def save_training_checkpoint(stem: str | Path, model_state: dict, model_config: dict, optimizer_state: dict,
                             progress: dict, rng: list[tuple[dict, dict]], **provenance) -> Path:
    """Write the model pair, then commit the training state for `stem` with one rename.

    progress: JSON-able loop position, e.g. {"epoch", "step", "step_in_epoch"}; rng: one
    `rng_state()` per rank, in rank order.
    """
    stem = Path(stem)
    for stale in stem.parent.glob(f".{stem.name}.*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    checkpoint.save_model(stem, model_state, model_config, **provenance, **progress)
    tensors, meta = _split_optimizer(optimizer_state)
    tensors.update({f"model.{k}": v for k, v in model_state.items()})
    meta["progress"] = progress
    meta["model_meta"] = {"format": checkpoint.FORMAT, "config": model_config, "provenance": {**provenance, **progress}}
    meta["rng"] = []
    for rank, (rng_tensors, rng_meta) in enumerate(rng):
        tensors.update({f"rng.{rank}.{k}": v for k, v in rng_tensors.items()})
        meta["rng"].append(rng_meta)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    text = json.dumps(meta, default=str)
    checkpoint.atomic_write(_train_file(stem, ".safetensors"), lambda p: save_file(tensors, p, metadata={META_KEY: text}))
    _train_file(stem, ".json").unlink(missing_ok=True)  # an earlier layout's state: superseded
    return stem


def _read_state(path: Path) -> tuple[dict, dict | None]:
    """(tensors, the JSON metadata or None) of a training-state file."""
    tensors = checkpoint.read_tensors(path)
    with safe_open(str(path), framework="pt") as f:
        text = (f.metadata() or {}).get(META_KEY)
    if text is None:
        return tensors, None
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: damaged training state (its metadata is not valid JSON: {e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: damaged training state (its metadata is not a JSON object)")
    return tensors, meta


def load_training_checkpoint(stem: str | Path, rank: int = 0) -> dict:
    """{"model": state_dict, "model_meta", "optimizer": state_dict, "progress", "rng": (tensors, meta) | None,
    "path": the file read}.

    `rng` is this rank's saved state, or None when the checkpoint was written by fewer ranks.
    A file that is missing, damaged or inconsistent is one error naming it.
    """
    stem = Path(stem)
    path = _train_file(stem, ".safetensors")
    if not has_training_state(stem):
        raise FileNotFoundError(f"training state not found: {path} (a model file alone cannot be resumed)")
    meta = None
    if path.is_file():
        tensors, meta = _read_state(path)
    if meta is None:  # the earlier layout: model pair + .train.json
        return _load_split_checkpoint(stem, rank)
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    tensors = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    return _assemble(path, model_state, meta.get("model_meta"), tensors, meta, rank)


def _load_split_checkpoint(stem: Path, rank: int) -> dict:
    model_state, model_meta = checkpoint.load_model(stem)
    for p in (_train_file(stem, ".safetensors"), _train_file(stem, ".json")):
        if not p.is_file():
            raise FileNotFoundError(f"training state not found: {p} (a model file alone cannot be resumed)")
    tensors = checkpoint.read_tensors(_train_file(stem, ".safetensors"))
    meta = checkpoint.read_json(_train_file(stem, ".json"), "training state")
    out = _assemble(_train_file(stem, ".json"), model_state, model_meta, tensors, meta, rank)
    if model_meta["provenance"].get("step") != out["progress"]["step"]:
        raise ValueError(f"{stem}: model (step {model_meta['provenance'].get('step')}) and training state "
                         f"(step {out['progress']['step']}) differ; the last save was interrupted — resume from another checkpoint")
    return out


def _assemble(path: Path, model_state: dict, model_meta, tensors: dict, meta: dict, rank: int) -> dict:
    """The loaded checkpoint; a field of the wrong shape is one error naming `path`."""
    try:
        progress = meta["progress"]
        if not isinstance(progress, dict) or not all(
                isinstance(progress.get(k), int) and progress[k] >= 0 for k in ("epoch", "step", "step_in_epoch")):
            raise ValueError("progress needs non-negative integers epoch, step, step_in_epoch")
        if not isinstance(model_meta, dict) or not isinstance(model_meta.get("provenance"), dict):
            raise ValueError("no model metadata")
        rng = None
        if rank < len(meta["rng"]):
            prefix = f"rng.{rank}."
            rng = ({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, meta["rng"][rank])
        optimizer = _join_optimizer(tensors, meta)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{path}: damaged training state ({e.__class__.__name__}: {e})") from None
    return {"model": model_state, "model_meta": model_meta, "optimizer": optimizer, "progress": progress, "rng": rng,
            "path": path}
