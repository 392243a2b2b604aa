"""Multi-process training under torchrun: process group set-up and the few collectives used.

`torchrun --nproc_per_node N -m trackformers.cli train CONFIG` (or `--nnodes` for several
machines) sets RANK / WORLD_SIZE / LOCAL_RANK; without them everything here is a no-op and
training runs as a single process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (env://): nccl on CUDA, gloo on CPU.

    Returns the process's rank info and the device it trains on.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = torch.cuda.is_available() if device == "auto" else str(device).startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ValueError(f"device {device}: CUDA is not available on this machine")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
        dev = torch.device("cuda", info.local_rank)
    else:
        dev = torch.device("cpu")
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://",
                                rank=info.rank, world_size=info.world_size)
    return info, dev


def all_gather_objects(obj, info: DistInfo) -> list:
    """[obj of rank 0, obj of rank 1, ...] (just [obj] in a single process)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
