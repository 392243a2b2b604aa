"""Training checkpoints: everything `--resume` needs, without pickle.

A training checkpoint `DIR/<name>` is two pairs of files, each written atomically:
- `<name>.safetensors` + `<name>.json`: the model, exactly as `checkpoint.save_model` writes
  it (loadable by `load_tracker`), with the step in its provenance;
- `<name>.train.safetensors` + `<name>.train.json`: the optimizer's tensors and every rank's
  RNG states as tensors; epoch, step, optimizer hyper-parameters and Python RNG states as JSON.
The step is stored in both pairs and checked on load, so a crash between the two writes is
detected instead of resuming from a mismatched pair.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

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


def save_training_checkpoint(stem: str | Path, model_state: dict, model_config: dict, optimizer_state: dict,
                             progress: dict, rng: list[tuple[dict, dict]], **provenance) -> Path:
    """Write the model pair and the training-state pair for `stem`.

    progress: JSON-able loop position, e.g. {"epoch", "step", "step_in_epoch"}; rng: one
    `rng_state()` per rank, in rank order.
    """
    stem = Path(stem)
    tensors, meta = _split_optimizer(optimizer_state)
    meta["progress"] = progress
    meta["rng"] = []
    for rank, (rng_tensors, rng_meta) in enumerate(rng):
        tensors.update({f"rng.{rank}.{k}": v for k, v in rng_tensors.items()})
        meta["rng"].append(rng_meta)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    checkpoint.atomic_write(_train_file(stem, ".safetensors"), lambda p: save_file(tensors, p))

    def write_json(p):
        with open(p, "w") as f:
            json.dump(meta, f)

    checkpoint.atomic_write(_train_file(stem, ".json"), write_json)
    checkpoint.save_model(stem, model_state, model_config, **provenance, **progress)
    return stem


def load_training_checkpoint(stem: str | Path, rank: int = 0) -> dict:
    """{"model": state_dict, "model_meta", "optimizer": state_dict, "progress", "rng": (tensors, meta) | None}.

    `rng` is this rank's saved state, or None when the checkpoint was written by fewer ranks.
    """
    stem = Path(stem)
    model_state, model_meta = checkpoint.load_model(stem)
    for p in (_train_file(stem, ".safetensors"), _train_file(stem, ".json")):
        if not p.is_file():
            raise FileNotFoundError(f"training state not found: {p} (a model file alone cannot be resumed)")
    tensors = load_file(str(_train_file(stem, ".safetensors")))
    with open(_train_file(stem, ".json")) as f:
        meta = json.load(f)
    progress = meta["progress"]
    if model_meta["provenance"].get("step") != progress["step"]:
        raise ValueError(f"{stem}: model (step {model_meta['provenance'].get('step')}) and training state "
                         f"(step {progress['step']}) differ; the last save was interrupted — resume from another checkpoint")
    rng = None
    if rank < len(meta["rng"]):
        prefix = f"rng.{rank}."
        rng = ({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, meta["rng"][rank])
    return {"model": model_state, "model_meta": model_meta, "optimizer": _join_optimizer(tensors, meta),
            "progress": progress, "rng": rng}
