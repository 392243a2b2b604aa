"""Convert an official checkpoint (.pth) to a trackformers model file (safetensors + JSON).

    trackformers convert --from deformable_detr r50_deformable_detr-checkpoint.pth --out models/ddetr
    trackformers convert --from motr motr_final.pth --out models/motr --set detector.nheads=8

The `.pth` is read with `torch.load(weights_only=True)` (never unpickled). Each format's
converter is a module with `convert(state_dict, overrides) -> Converted`; the table below maps
`--from` names to them and imports only the one asked for.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
from pathlib import Path

from trackformers.cli import UsageError

CONVERTERS = {
    "deformable_detr": "trackformers.convert.deformable_detr",
    "dab_deformable_detr": "trackformers.convert.dab_deformable_detr",
    "motr": "trackformers.convert.motr",
    "memotr": "trackformers.convert.memotr",
    "sambamotr": "trackformers.convert.sambamotr",
    "trackformer": "trackformers.convert.trackformer",
    "torchvision_resnet": "trackformers.convert.torchvision_resnet",
    "qdtrack": "trackformers.convert.qdtrack",
}


def converter(name: str):
    """The `convert` function of format `name`; a clear error if it is unknown or not installed."""
    if name not in CONVERTERS:
        raise UsageError(f"unknown --from {name!r} (choose from {', '.join(CONVERTERS)})")
    try:
        module = importlib.import_module(CONVERTERS[name])
    except ModuleNotFoundError as e:
        if e.name != CONVERTERS[name]:
            raise
        raise UsageError(f"--from {name}: converter not available in this installation ({e.name} missing)") from None
    return module.convert


def convert_file(name: str, src: str | Path, out: str | Path, overrides: list[str] | None = None):
    """Convert `src` (.pth) to the model file `out` (.safetensors + .json); returns the Converted."""
    from trackformers.checkpoint import load_official, save_model

    convert = converter(name)
    official = load_official(src)
    # converters that read files beside the checkpoint (TrackFormer's config.yaml) take its path
    extra = {"checkpoint": src} if "checkpoint" in inspect.signature(convert).parameters else {}
    result = convert(official, overrides or [], **extra)
    save_model(out, result.state_dict, result.config, converted_from=name, source=str(src),
               dropped=result.dropped, overrides=list(overrides or []))
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="official .pth file")
    parser.add_argument("--from", dest="fmt", required=True, choices=sorted(CONVERTERS), help="checkpoint format")
    parser.add_argument("--out", required=True, help="output stem: writes OUT.safetensors and OUT.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config value the checkpoint's shapes cannot tell (e.g. nheads=8); repeatable")


def run(args: argparse.Namespace) -> int:
    from trackformers.convert.common import summarize_dropped

    result = convert_file(args.fmt, args.checkpoint, args.out, args.overrides)
    stem = Path(args.out)
    print(f"converted {len(result.state_dict)} tensors from {args.checkpoint} ({args.fmt}) -> "
          f"{stem.with_suffix('.safetensors')} + {stem.with_suffix('.json')}")
    for line in summarize_dropped(result.dropped):
        print(f"  {line}")
    return 0
