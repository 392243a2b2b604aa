"""Train a tracker (or a detector) from a YAML config.

    trackformers train configs/motr/synth.yaml --out runs/motr-synth [--set optim.lr=1e-4]
    trackformers train configs/motr/synth.yaml --out runs/motr-synth --resume
    trackformers train configs/motr/synth.yaml --out runs/motr-synth --resume --export motr-synth
    torchrun --nproc_per_node 8 -m trackformers.cli train configs/motr/dancetrack.yaml --out runs/dance

The loop is deliberately plain: seed, build, (resume), then for each epoch set the learning
rate, walk the epoch's batches, step AdamW, log and checkpoint. A resumed CPU run is
bit-identical to an uninterrupted one: the checkpoint holds the model, the optimizer, every
rank's RNG states and the loop position; the data order comes from (seed, epoch) and every
clip's own randomness from (seed, epoch, index), so neither depends on when the run stopped.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from trackformers import checkpoint, config
from trackformers.data.clips import collate
from trackformers.engine import distributed as du
from trackformers.engine.train_config import DataConfig, OptimConfig, TrainConfig
from trackformers.engine.train_state import (has_training_state, load_training_checkpoint, rng_state,
                                             save_training_checkpoint, set_rng_state)
from trackformers.trackers.registry import BUILTIN, WEIGHTS_DIR, build_tracker, export_path, tracker_config


# ---------------------------------------------------------------- building blocks

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_dataset(data: DataConfig) -> Dataset:
    """The training clips: a Dataset whose items are clips (lists of (image, target))."""
    if data.builder:  # a user's own dataset
        import importlib
        module, _, fn = data.builder.partition(":")
        return getattr(importlib.import_module(module), fn)(data)
    from trackformers.data.clips import ClipDataset, ClipSampler
    from trackformers.data.datasets import load_dataset
    from trackformers.data.transforms import train_transforms

    sequences = [seq for d in data.datasets for seq in load_dataset(d.name, d.root, d.split, **d.options)]
    s = data.sampler
    sampler = ClipSampler(tuple(s.lengths), tuple(s.steps), tuple(s.intervals), tuple(s.modes))
    transform = train_transforms(scales=data.scales, max_size=data.max_size, crop_scales=data.crop_scales,
                                 crop_size=tuple(data.crop_size), overflow=data.overflow, hsv=data.hsv)
    return ClipDataset(sequences, sampler, transform, max_shift=data.max_shift)


class SeededClips(Dataset):
    """Draws item `i` of epoch `e` with every RNG seeded from (seed, e, i), restoring them after.

    The clip sampler and augmentations may use `random`, numpy or torch freely: a clip then
    depends only on (seed, epoch, index) — not on the worker that loads it, nor on whether
    the run was resumed — and the training RNG streams are left untouched.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):  # e.g. MOTR's clip-length schedule
            self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int):
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        item_seed = int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0])
        seed_everything(item_seed)
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def epoch_batches(dataset: Dataset, cfg: TrainConfig, epoch: int, info: du.DistInfo) -> list[list[int]]:
    """This rank's batches of dataset indices for `epoch` (same order whenever it is asked)."""
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    sampler.set_epoch(epoch)
    indices = list(sampler)
    n = len(indices) // cfg.batch_size * cfg.batch_size
    return [indices[i:i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]


def build_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW (or SGD with momentum) with three groups: backbone (lr x lr_backbone_mult), linear
    projections, the rest."""
    def matches(name, keys):
        return any(k in name for k in keys)

    groups = {"backbone": [], "linear_proj": [], "rest": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if matches(name, optim.lr_backbone_names):
            groups["backbone"].append(p)
        elif matches(name, optim.lr_linear_proj_names):
            groups["linear_proj"].append(p)
        else:
            groups["rest"].append(p)
    mult = {"backbone": optim.lr_backbone_mult, "linear_proj": optim.lr_linear_proj_mult, "rest": 1.0}
    param_groups = [{"params": ps, "name": g, "base_lr": optim.lr * mult[g], "lr": optim.lr * mult[g]}
                    for g, ps in groups.items() if ps]
    if optim.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    if optim.optimizer != "adamw":
        raise ValueError(f"optim.optimizer must be 'adamw' or 'sgd', got {optim.optimizer!r}")
    return torch.optim.AdamW(param_groups, lr=optim.lr, weight_decay=optim.weight_decay)


def lr_factor(optim: OptimConfig, epoch: int, step: int | None = None) -> float:
    """Step schedule: the base LR times lr_drop_factor for every drop epoch reached; during the
    first `warmup_iters` steps also the linear warm-up from warmup_ratio to 1 (mmcv's rule)."""
    factor = optim.lr_drop_factor ** sum(epoch >= d for d in optim.lr_drop)
    if step is not None and step < optim.warmup_iters:
        factor *= 1 - (1 - step / optim.warmup_iters) * (1 - optim.warmup_ratio)
    return factor


def load_pretrained(model: nn.Module, path: str) -> tuple[int, int]:
    """Copy the weights of a model file whose names and shapes match; returns (copied, total)."""
    state, _ = checkpoint.load_model(path)
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(keep, strict=False)
    return len(keep), len(own)


class LossModule(nn.Module):
    """Routes forward() to `training_loss`, which is what DistributedDataParallel hooks."""

    def __init__(self, tracker: nn.Module):
        super().__init__()
        self.tracker = tracker

    def forward(self, clips: list) -> dict:
        return self.tracker.training_loss(clips)


class Logger:
    """JSONL lines in OUT/log.jsonl, mirrored to TensorBoard when it is installed."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled = enabled
        self.path = out / "log.jsonl"
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(out / "tb"))
            except Exception:  # tensorboard not installed: JSONL only
                self.tb = None

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()

    @staticmethod
    def drop_after(path: Path, step: int) -> None:
        """Keep the lines of steps <= `step` (a resumed run logs the later ones again); a line cut
        short by a killed run is dropped too."""
        if not path.is_file():
            return
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue

        def write(tmp):
            with open(tmp, "w") as f:
                f.writelines(kept)

        checkpoint.atomic_write(path, write)


# ---------------------------------------------------------------- the loop

def method_name(cfg: TrainConfig) -> str:
    if "method" not in cfg.model:
        raise config.ConfigError("model.method is missing (e.g. model: {method: motr, ...})")
    return cfg.model["method"]


def model_config(cfg: TrainConfig) -> dict:
    """The tracker's config dict, with the engine's gradient-checkpointing switch applied."""
    model = dict(cfg.model)
    if cfg.grad_checkpointing:
        model["grad_checkpointing"] = True
    return model


def to_device(clips: list, device: torch.device) -> list:
    """Move every image and target tensor of a batch of clips to `device`."""
    return [[(image.to(device), {k: v.to(device) if torch.is_tensor(v) else v for k, v in target.items()})
             for image, target in clip] for clip in clips]


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, clips: list, autocast,
               clip_max_norm: float) -> tuple[dict, torch.Tensor | None]:
    """One optimizer step on a batch of clips: (the loss dict, the gradient norm before clipping)."""
    with autocast:
        losses = net(clips)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = nn.utils.clip_grad_norm_(params, clip_max_norm) if clip_max_norm > 0 else None
    optimizer.step()
    return losses, grad_norm


def train(cfg: TrainConfig, resume: str | bool = False) -> nn.Module:
    """Run training (saving OUT/last); returns the trained tracker. `resume`: True for OUT/last, or a stem."""
    out = Path(cfg.out)
    if resume is True and not has_training_state(out / "last"):
        resume = False  # nothing to continue yet: `--resume` starts the run (handy for restart loops)
    elif not resume and has_training_state(out / "last"):
        raise config.ConfigError(f"{out} already holds a training run; continue it with --resume or choose another --out")
    info, device = du.init_distributed(cfg.device)
    if info.is_main:
        checkpoint.ensure_writable_dir(out)  # before any work: a read-only or full folder fails now
        with open(out / "config.yaml", "w") as f:
            yaml.safe_dump(config.to_dict(cfg), f, sort_keys=False)

    seed_everything(cfg.seed)  # the same on every rank: identical initial weights
    method = method_name(cfg)
    model = build_tracker(model_config(cfg), trusted=True)  # the user's own training config
    if cfg.pretrained:
        copied, total = load_pretrained(model, cfg.pretrained)
        if info.is_main:
            print(f"pretrained: {copied}/{total} tensors from {cfg.pretrained}")
    model.to(device)
    optimizer = build_optimizer(model, cfg.optim)
    dataset = SeededClips(build_dataset(cfg.data), cfg.seed)
    seed_everything(cfg.seed + info.rank)  # from here on each rank has its own random stream
    epoch, step, step_in_epoch = 0, 0, 0

    if resume:
        stem = out / "last" if resume is True else Path(resume)
        ckpt = load_training_checkpoint(stem, info.rank)
        checkpoint.load_weights(model, ckpt["model"], ckpt["path"])
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt["rng"] is not None:
                set_rng_state(*ckpt["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            message = (str(e).splitlines() or [""])[0]
            raise ValueError(f"{ckpt['path']}: does not fit this run's optimizer or RNG "
                             f"({e.__class__.__name__}: {message})") from None
        epoch, step, step_in_epoch = (ckpt["progress"][k] for k in ("epoch", "step", "step_in_epoch"))
        if info.is_main:
            Logger.drop_after(out / "log.jsonl", step)  # lines logged after the checkpoint come again
        if ckpt["rng"] is None:  # resumed with more processes than saved: a fresh, still deterministic, stream
            seed_everything(cfg.seed + info.rank + 1000 * step)
        if info.is_main:
            print(f"resumed from {stem}: epoch {epoch}, step {step}")

    net = LossModule(model)
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.ddp_find_unused)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda"
                else contextlib.nullcontext())
    logger = Logger(out, info.is_main)

    def save(name: str) -> None:
        rngs = du.all_gather_objects(rng_state(), info)  # every rank's stream, so each resumes its own
        if info.is_main:
            save_training_checkpoint(
                out / name, model.state_dict(), tracker_config(model, method), optimizer.state_dict(),
                {"epoch": epoch, "step": step, "step_in_epoch": step_in_epoch}, rngs,
                train_config=config.to_dict(cfg), world_size=info.world_size, torch=torch.__version__)
        du.barrier(info)

    def finished() -> bool:
        return cfg.max_steps > 0 and step >= cfg.max_steps

    net.train()
    while epoch < cfg.epochs and not finished():
        dataset.set_epoch(epoch)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(cfg.optim, epoch)
        all_batches = epoch_batches(dataset, cfg, epoch, info)
        batches = all_batches[step_in_epoch:]
        if cfg.max_steps > 0:
            batches = batches[:cfg.max_steps - step]
        # The loader's own generator keeps it from drawing on the training RNG stream (which a
        # resumed run restores mid-epoch, after the uninterrupted run made its loader).
        loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=cfg.data.num_workers,
                            generator=torch.Generator().manual_seed(cfg.seed + epoch))
        bar = tqdm(loader, desc=f"epoch {epoch}", initial=step_in_epoch, total=len(all_batches),
                   disable=not info.is_main, dynamic_ncols=True)
        t0, done = time.perf_counter(), 0
        for clips in bar:
            if step <= cfg.optim.warmup_iters:  # the last pass restores the full LR
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * lr_factor(cfg.optim, epoch, step)
            losses, grad_norm = train_step(net, optimizer, to_device(clips, device), autocast, cfg.optim.clip_max_norm)
            step, step_in_epoch, done = step + 1, step_in_epoch + 1, done + 1

            if step % cfg.log_interval == 0 or step == 1:
                value = losses["loss"].item()
                if not math.isfinite(value):
                    raise ValueError(f"loss is {value} at step {step} (epoch {epoch}); lower optim.lr or check the data")
                record = {"step": step, "epoch": epoch, "lr": cfg.optim.lr * lr_factor(cfg.optim, epoch),
                          **{k: float(v.detach()) for k, v in losses.items()},
                          "it_s": round(done / (time.perf_counter() - t0), 3)}
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                logger.log(record)
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{record['lr']:.1e}", refresh=False)
            if step % cfg.ckpt_interval == 0 and not finished():
                save("last")
        bar.close()
        if step_in_epoch < len(all_batches):  # stopped by max_steps inside the epoch
            break
        epoch, step_in_epoch = epoch + 1, 0
        if cfg.keep_interval and epoch % cfg.keep_interval == 0:
            save(f"epoch_{epoch:04d}")
        save("last")
    if step_in_epoch > 0 or step == 0:  # stopped inside an epoch: `last` resumes from there;
        save("last")                      # no step at all (epochs: 0): the initial, e.g. pretrained, model
    logger.close()
    du.cleanup(info)
    return model


def export_model(stem: str | Path, name: str, dtype: str = "float32", limit_mb: float = 20.0) -> Path:
    """Copy a trained model into the package as built-in `name` (or to a path, when `name` has a '/').

    dtype="float16" halves the file: floating-point weights are stored rounded to float16 and
    loading casts them back into the model's float32 parameters.
    """
    state, meta = checkpoint.load_model(stem)
    if dtype not in ("float32", "float16"):
        raise config.ConfigError(f"--export-dtype must be float32 or float16, got {dtype!r}")
    if dtype == "float16":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    target = export_path(name)
    saved = checkpoint.save_model(target, state, meta["config"], **{**meta["provenance"], "exported_from": str(stem),
                                                                   "weights_dtype": dtype})
    size_mb = saved.with_suffix(".safetensors").stat().st_size / 1e6
    print(f"exported {stem} -> {saved}.safetensors ({size_mb:.1f} MB, {dtype})")
    if target.parent == WEIGHTS_DIR and size_mb > limit_mb:
        print(f"warning: {size_mb:.1f} MB is above the {limit_mb:.0f} MB limit for built-in models"
              + (" (--export-dtype float16 halves it)" if dtype == "float32" else ""))
    if target.parent == WEIGHTS_DIR and name not in BUILTIN:
        print(f"note: add {name!r} to trackformers.trackers.registry.BUILTIN to load it by name")
    return saved


# ---------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config (YAML)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. optim.lr=1e-4 or model.num_queries=100 (repeatable)")
    parser.add_argument("--out", default=None, help="output folder (default: the config's `out`)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                        help="continue from OUT/last if it exists (or from the given checkpoint stem)")
    parser.add_argument("--export", default=None, metavar="NAME",
                        help="after training, copy the final model to the built-in weights as NAME (or to a path)")
    parser.add_argument("--export-dtype", default="float32", choices=["float32", "float16"],
                        help="storage type of the exported weights (float16: half the size)")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out else [])
    cfg = config.load(TrainConfig, args.config, overrides)
    method_name(cfg)
    train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        plot_training_log(Path(cfg.out))
        if args.export:
            export_model(Path(cfg.out) / "last", args.export, args.export_dtype)
    return 0


def plot_training_log(out: Path) -> Path | None:
    """OUT/loss.png: the logged loss against the step (the whole run, resumed parts included)."""
    from trackformers.viz import plot_curves
    if not (out / "log.jsonl").is_file():
        return None
    records = [json.loads(line) for line in open(out / "log.jsonl")]
    return plot_curves(out / "loss.png", {"loss": ([r["step"] for r in records], [r["loss"] for r in records])},
                       xlabel="step", ylabel="loss", title=out.name)
