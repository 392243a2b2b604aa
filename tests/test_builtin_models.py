"""The built-in models shipped in the package: small, loadable by name, and the demo runs on them."""
import json

import numpy as np
import pytest

import trackformers
from trackformers.cli import main
from trackformers.trackers import registry


def _shipped(name: str):
    stem = registry.WEIGHTS_DIR / registry.BUILTIN[name][0]
    if not stem.with_suffix(".safetensors").is_file():
        pytest.skip(f"built-in {name} is not shipped yet")
    return stem


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_builtin_is_small_and_tracks_by_name(name):
    stem = _shipped(name)
    assert stem.with_suffix(".safetensors").stat().st_size <= 20 * 10**6
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["config"]["method"] in registry.METHODS
    tracker = trackformers.load_tracker(name)
    tracks = tracker.step(np.full((180, 320, 3), 127, np.uint8))
    assert tracks.boxes.shape == (len(tracks), 4) and len(tracks.ids) == len(tracks)


def test_demo_runs_on_the_builtin_model(tmp_path, capsys):
    _shipped("motr-synth")
    assert main(["demo", "--seed", "5", "--frames", "12", "--out", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "HOTA" in out and "IDF1" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 12 and set(summary["metrics"]) == {"HOTA", "DetA", "AssA", "MOTA", "IDF1"}
    (txt,) = [p for p in tmp_path.glob("*.txt")]
    rows = [line.split(",") for line in txt.read_text().splitlines()]
    assert len(rows) == summary["boxes"] and all(1 <= int(r[0]) <= 12 for r in rows)


def test_demo_draws_the_preset_asked_for(tmp_path, capsys):
    _shipped("motr-synth")
    assert main(["demo", "--preset", "dance", "--seed", "5", "--frames", "4", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert "'dance' video" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "data" / "demo").iterdir() if p.is_dir()] == ["dance0001"]
