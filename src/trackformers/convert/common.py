"""Shared machinery for converting official checkpoints to trackformers state dicts.

A converter declares, for one official format:
- `renames`: ordered (regex, replacement) pairs; an official key becomes ours through the
  first one that matches (most keys keep their name: our modules use the official names);
- `drops`: (regex, reason, alias) triples for keys that are deliberately not kept, e.g. the
  duplicated box-head aliases of box refinement; `alias` (a replacement template) names the
  official key the dropped one duplicates, and the two must be equal, so nothing is lost.
`map_state_dict` applies them and checks the result against the model built from the
inferred config: an official key neither mapped nor dropped, a model key left unfilled or a
shape that differs is an error naming the key. Dropped keys are reported with their reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import Tensor


class ConversionError(ValueError):
    """An official checkpoint that does not fit the model: names the offending key."""


@dataclass
class Rules:
    """How one official format maps onto our names (see the module docstring)."""
    renames: list[tuple[str, str]] = field(default_factory=list)
    drops: list[tuple[str, str, str | None]] = field(default_factory=list)


@dataclass
class Converted:
    """A converted checkpoint: our state dict, our config dict, and what was dropped (key -> reason)."""
    state_dict: dict[str, Tensor]
    config: dict
    dropped: dict[str, str]


def rename_key(key: str, renames: list[tuple[str, str]]) -> str:
    """`key` rewritten by the first matching (regex, replacement); unchanged if none matches."""
    for pattern, repl in renames:
        new, n = re.subn(f"^{pattern}", repl, key)
        if n:
            return new
    return key


def map_state_dict(official: dict[str, Tensor], expected: dict[str, Tensor], rules: Rules) -> tuple[dict, dict]:
    """Map `official` onto the keys/shapes of `expected` (our model's state dict).

    Returns (state_dict, dropped {official key: reason}). Raises ConversionError naming the
    first unknown, missing, duplicated or mis-shaped key.
    """
    out: dict[str, Tensor] = {}
    source: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for key, value in official.items():
        drop = next(((p, reason, alias) for p, reason, alias in rules.drops if re.match(f"^{p}", key)), None)
        if drop is not None:
            pattern, reason, alias = drop
            if alias is not None:
                kept = re.sub(f"^{pattern}", alias, key)
                if kept not in official:
                    raise ConversionError(f"{key}: dropped as an alias of {kept}, which is missing")
                if official[kept].shape != value.shape or not torch.equal(official[kept], value):
                    raise ConversionError(f"{key}: expected to duplicate {kept}, but the tensors differ")
            dropped[key] = reason
            continue
        ours = rename_key(key, rules.renames)
        if ours not in expected:
            raise ConversionError(f"unknown key {key!r} (as {ours!r}): not part of the model built from this config")
        if ours in out:
            raise ConversionError(f"{key!r} and {source[ours]!r} both map to {ours!r}")
        if tuple(value.shape) != tuple(expected[ours].shape):
            raise ConversionError(f"{key}: shape {tuple(value.shape)} does not match the model's "
                                  f"{ours} {tuple(expected[ours].shape)}")
        out[ours] = value.to(expected[ours].dtype)
        source[ours] = key
    missing = [k for k in expected if k not in out]
    if missing:
        raise ConversionError(f"missing key {missing[0]!r} (and {len(missing) - 1} more): the checkpoint does not "
                              f"provide it for this config")
    return out, dropped


def layer_count(state_dict: dict, prefix: str) -> int:
    """Number of indexed sub-modules `prefix{i}.` present (e.g. 'transformer.encoder.layers.')."""
    found = {int(m.group(1)) for k in state_dict if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def require(state_dict: dict, key: str) -> Tensor:
    """state_dict[key], or a ConversionError naming the key (wrong --from format, usually)."""
    if key not in state_dict:
        raise ConversionError(f"missing key {key!r}: is this the right --from format?")
    return state_dict[key]


def summarize_dropped(dropped: dict[str, str]) -> list[str]:
    """One line per reason: 'N keys dropped (reason), e.g. KEY'."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in dropped.items():
        by_reason.setdefault(reason, []).append(key)
    return [f"{len(keys)} key(s) dropped ({reason}), e.g. {keys[0]}" for reason, keys in by_reason.items()]
