"""Configuration as plain data: nested dataclasses, YAML files and `--set a.b=c` overrides.

Every config class is a dataclass; nested sections are dataclass fields. `from_dict` builds
one from a (possibly partial) dict and rejects unknown keys by their dotted name, so a typo
in a YAML file or a `--set` is an error, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """An unknown key or a value of the wrong type, named by its dotted path."""


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=path)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                pass
        raise ConfigError(f"{path}: {value!r} does not fit {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        (arg, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, arg, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, (bool, int)):
            return bool(value)
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and out != value:
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return out
    if tp is str:
        return str(value)
    return value  # Any, dict, ...


def from_dict(cls: type[T], data: dict | None, prefix: str = "") -> T:
    """Build dataclass `cls` from `data`; missing keys take defaults, unknown keys are errors."""
    data = dict(data or {})
    types = _field_types(cls)
    unknown = sorted(set(data) - set(types))
    if unknown:
        names = ", ".join(f"{prefix}.{k}" if prefix else k for k in unknown)
        raise ConfigError(f"unknown config key {names} (known: {', '.join(types)})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        default = _default(fields[k])
        if isinstance(v, dict) and dataclasses.is_dataclass(default):
            # A partial section overrides only what it names: the rest keeps the defaults of
            # *this* field (e.g. MeMOTR's detector), not those of the section's class.
            v = merge(to_dict(default), v)
        kwargs[k] = _coerce(v, types[k], f"{prefix}.{k}" if prefix else k)
    return cls(**kwargs)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def to_dict(cfg: Any) -> dict:
    """A plain, YAML/JSON-serialisable dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def parse_overrides(items: list[str] | None) -> dict:
    """['a.b=3', 'c=[1,2]'] -> {'a': {'b': 3}, 'c': [1, 2]}; values are parsed as YAML scalars."""
    out: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is both a value and a section")
        node[leaf] = value
    return out


def merge(base: dict, update: dict) -> dict:
    """Deep-merge `update` into a copy of `base`."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Config of type `cls` from an optional YAML file plus `--set` overrides."""
    data = load_yaml(path) if path else {}
    if path:
        try:  # the file alone first, so that its mistakes are named by the file
            from_dict(cls, data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return from_dict(cls, merge(data, parse_overrides(overrides)))


def replace(cfg: T, overrides: list[str] | dict | None) -> T:
    """A copy of `cfg` with dotted overrides applied (unknown keys are errors)."""
    update = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    return from_dict(type(cfg), merge(to_dict(cfg), update))
