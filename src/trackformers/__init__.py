"""trackformers: end-to-end multi-object tracking with transformers, in plain PyTorch.

The public API is imported lazily so that `import trackformers` (and `trackformers eval`)
does not pull in torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "load_tracker": "trackformers.trackers.registry",
    "read_frames": "trackformers.data.sources",
    "evaluate": "trackformers.eval.evaluate",
    "generate_synthetic": "trackformers.data.synthetic",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'trackformers' has no attribute {name!r}")
