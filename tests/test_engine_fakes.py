"""Tiny stand-ins for a tracker and a clip dataset, used by the engine tests.

They follow the tracker contract (trackers/tracker.py: Config, training_loss, new_state, track) with a few
hundred parameters, so the engine's loops can be tested in seconds. Run as a script under
torchrun, this module trains one on each rank and saves that rank's final weights.
"""
from __future__ import annotations

import os
import random
import signal
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from trackformers.trackers.tracker import Tracker


@dataclass
class InputConfig:
    short_side: int = 32
    max_size: int = 48


@dataclass
class TinyConfig:
    hidden: int = 6
    dropout: float = 0.2
    grad_checkpointing: bool = False
    score_thresh: float = 0.5
    crash_at: int = 0                  # raise in track() at this 1-based frame (0: never)
    crash_hard: bool = False           # ... or end the process at once (no cleanup, no buffer flush)
    kill_at: int = 0                   # SIGKILL this process at this 1-based training step / tracked frame
    input: InputConfig = field(default_factory=InputConfig)


class TinyTracker(Tracker):
    """A 'tracker' whose training loss uses dropout (RNG) and whose track() reports scripted boxes.

    track(): frame t (1-based) reports ids 0 and 1 (id 1 only from frame 2 on) with normalised
    cxcywh boxes (0.2 + 0.01 t, 0.3, 0.1, 0.2) and (0.6, 0.5 + 0.01 t, 0.2, 0.1), scores 0.9, 0.8,
    the boxes whose score is below `score_thresh` left out.
    """

    Config = TinyConfig

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = nn.Sequential(nn.Conv2d(3, cfg.hidden, 3, stride=2))  # named backbone.0.*
        self.head = nn.Linear(cfg.hidden, 4)
        self.drop = nn.Dropout(cfg.dropout)

    def training_loss(self, clips: list) -> dict:
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.cfg.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        total, n = 0.0, 0
        for clip in clips:
            for image, target in clip:
                feat = self.backbone(image[None]).mean((2, 3))
                pred = self.head(self.drop(feat)).sigmoid()
                total = total + ((pred - target["boxes"].mean(0, keepdim=True)) ** 2).sum()
                n += 1
        loss = total / n
        return {"loss": loss, "loss_l2": loss.detach()}

    def new_state(self) -> dict:
        return {"t": 0}

    def track(self, image: torch.Tensor, state: dict, orig_size=None) -> tuple[dict, dict]:
        t = state["t"] + 1
        if t == self.cfg.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if t == self.cfg.crash_at:
            if self.cfg.crash_hard:
                os._exit(17)
            raise RuntimeError(f"simulated crash at frame {t}")
        boxes = torch.tensor([[0.2 + 0.01 * t, 0.3, 0.1, 0.2], [0.6, 0.5 + 0.01 * t, 0.2, 0.1]])
        scores = torch.tensor([0.9, 0.8])
        keep = (scores >= self.cfg.score_thresh) & torch.tensor([True, t > 1])
        result = {"ids": torch.tensor([0, 1])[keep], "boxes": boxes[keep], "scores": scores[keep],
                  "labels": torch.tensor([0, 0])[keep]}
        return result, {"t": t}


def scripted_tracks(t: int) -> list[tuple[int, list[float], float]]:
    """What TinyTracker reports at frame t, as (id, cxcywh, score): the tests' independent copy."""
    rows = [(0, [0.2 + 0.01 * t, 0.3, 0.1, 0.2], 0.9)]
    if t > 1:
        rows.append((1, [0.6, 0.5 + 0.01 * t, 0.2, 0.1], 0.8))
    return rows


class TinyClips(torch.utils.data.Dataset):
    """Clips of 2 random 3x12x12 frames; every item draws from torch, numpy and python RNGs."""

    def __init__(self, n: int = 12):
        self.n = n
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> list:
        clip = []
        for _ in range(2):
            image = torch.rand(3, 12, 12) + float(np.random.rand()) + random.random()
            boxes = torch.rand(3, 4) * 0.5 + 0.25
            clip.append((image, {"boxes": boxes, "labels": torch.zeros(3, dtype=torch.int64),
                                 "ids": torch.arange(3), "size": torch.tensor([12, 12])}))
        return clip


def make_dataset(data_cfg) -> TinyClips:
    return TinyClips(n=12)


def tiny_train_config(out: str, **kw):
    from trackformers.engine.train import TrainConfig
    from trackformers.config import from_dict
    base = {
        "model": {"method": "test_engine_fakes:TinyTracker", "hidden": 6},
        "data": {"builder": "test_engine_fakes:make_dataset"},
        "optim": {"lr": 1e-2, "lr_drop": [2], "clip_max_norm": 0.5},
        "epochs": 3, "batch_size": 2, "out": out, "device": "cpu", "seed": 7,
        "log_interval": 1, "ckpt_interval": 4,
    }
    base.update(kw)
    return from_dict(TrainConfig, base)


if __name__ == "__main__":  # torchrun --nproc_per_node 2 tests/test_engine_fakes.py OUT
    from safetensors.torch import save_file

    from trackformers.engine.train import train
    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    model = train(tiny_train_config(out, epochs=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.safetensors")
