"""The training configuration: plain data, loaded from YAML with `--set key=value` overrides.

A config file has the sections below plus `model: {method: NAME, ...the method's config...}`
(see configs/<method>/*.yaml). Unknown keys are errors, by their dotted name.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OptimConfig:
    optimizer: str = "adamw"               # adamw | sgd (QDTrack's official schedule)
    momentum: float = 0.9                  # sgd only
    warmup_iters: int = 0                  # linear warm-up over the first steps (mmcv 'linear'), 0: none
    warmup_ratio: float = 0.001            # ... from lr * warmup_ratio to lr
    lr: float = 2e-4
    lr_backbone_mult: float = 0.1          # parameters whose name contains one of lr_backbone_names
    lr_backbone_names: list[str] = field(default_factory=lambda: ["backbone"])
    lr_linear_proj_mult: float = 0.1       # Deformable DETR's sampling offsets / reference points
    lr_linear_proj_names: list[str] = field(default_factory=lambda: ["reference_points", "sampling_offsets"])
    weight_decay: float = 1e-4
    lr_drop: list[int] = field(default_factory=lambda: [100])  # epochs at which the LR is multiplied by lr_drop_factor
    lr_drop_factor: float = 0.1
    clip_max_norm: float = 0.1             # 0 disables gradient clipping


@dataclass
class DatasetConfig:
    name: str = "synthetic"                # dancetrack, sportsmot, mot17, mot20, crowdhuman, bdd100k, synthetic
    root: str = "data/synth/simple"
    split: str = "train"
    options: dict = field(default_factory=dict)  # reader options, e.g. {detector: SDP} for MOT17


@dataclass
class SamplerConfig:
    """Clip length grows at the `steps` epochs through `lengths`; frame stride up to `intervals`."""
    lengths: list[int] = field(default_factory=lambda: [2, 3, 4, 5])
    steps: list[int] = field(default_factory=lambda: [50, 90, 150])
    intervals: list[int] = field(default_factory=lambda: [10])
    modes: list[str] = field(default_factory=lambda: ["random_interval"])


@dataclass
class DataConfig:
    datasets: list[DatasetConfig] = field(default_factory=lambda: [DatasetConfig()])  # concatenated
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    # Clip augmentation (MOTR recipe): flip, then resize the short side to one of `scales` (long
    # side <= max_size) or resize to `crop_scales` -> random crop within `crop_size` -> resize.
    scales: list[int] = field(default_factory=lambda: list(range(608, 993, 32)))
    max_size: int = 1536
    crop_scales: list[int] = field(default_factory=lambda: [800, 1000, 1200])
    crop_size: list[int] = field(default_factory=lambda: [800, 1200])
    overflow: bool = False                 # keep boxes unclipped by crops (MOTR's later recipe)
    hsv: bool = True                       # HSV colour jitter
    max_shift: int = 50                    # static images -> pseudo-clips drifting up to this many pixels
    builder: str = ""                      # "package.module:function(data_config) -> Dataset" replaces all of the above
    num_workers: int = 0


@dataclass
class TrainConfig:
    model: dict = field(default_factory=lambda: {"method": "motr"})  # {method: NAME, ...the method's config...}
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 200                      # 0: no training, `last` is the (pretrained) initial model
    batch_size: int = 1                    # clips per process
    max_steps: int = 0                     # stop after this many optimizer steps in total (0: run all epochs)
    amp: bool = False                      # bf16 autocast on CUDA (ignored on CPU)
    grad_checkpointing: bool = False       # passed to the model config as grad_checkpointing
    pretrained: str = ""                   # model file whose matching weights initialise the model
    out: str = "runs/train"
    device: str = "auto"
    seed: int = 42
    log_interval: int = 10                 # steps between log lines
    ckpt_interval: int = 500               # steps between `last` checkpoints (also written at each epoch end)
    keep_interval: int = 0                 # epochs between kept `epoch_NNNN` copies (0: none)
    ddp_find_unused: bool = True           # trackers may leave some parameters unused on a step
