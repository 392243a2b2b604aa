from dataclasses import dataclass, field

import pytest

from trackformers.config import ConfigError, from_dict, load, parse_overrides, replace, to_dict


@dataclass
class Inner:
    lr: float = 1e-4
    steps: list[int] = field(default_factory=lambda: [10, 20])


@dataclass
class Outer:
    name: str = "x"
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    tuned: Inner = field(default_factory=lambda: Inner(lr=0.5, steps=[7]))  # defaults unlike Inner's


def test_overrides_parse_yaml_scalars_and_nest():
    assert parse_overrides(["inner.lr=0.5", "flag=true", "inner.steps=[1,2,3]"]) == {
        "inner": {"lr": 0.5, "steps": [1, 2, 3]}, "flag": True}


def test_replace_applies_and_keeps_the_rest():
    cfg = replace(Outer(), ["inner.lr=2", "name=y"])
    assert cfg.inner.lr == 2.0 and isinstance(cfg.inner.lr, float)
    assert cfg.name == "y" and cfg.inner.steps == [10, 20]
    assert to_dict(cfg)["inner"]["lr"] == 2.0


def test_unknown_key_is_named_by_its_dotted_path():
    with pytest.raises(ConfigError, match="inner.lrr"):
        replace(Outer(), ["inner.lrr=1"])


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="inner.lr"):
        from_dict(Outer, {"inner": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides(["noequals"])


def test_load_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: z\ninner:\n  steps: [5]\n")
    cfg = load(Outer, p, ["flag=1"])
    assert (cfg.name, cfg.inner.steps, cfg.flag) == ("z", [5], True)
    with pytest.raises(FileNotFoundError):
        load(Outer, tmp_path / "missing.yaml")


def test_partial_section_keeps_the_fields_own_defaults():
    cfg = from_dict(Outer, {"tuned": {"lr": 0.25}})
    assert cfg.tuned.lr == 0.25 and cfg.tuned.steps == [7]  # not Inner's [10, 20]
    assert replace(Outer(), ["tuned.steps=[1]"]).tuned.lr == 0.5
