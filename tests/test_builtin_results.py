"""The built-in models give bit-identical result files on a fixed synthetic set.

The reference files in tests/fixtures/builtin_results/ were written by the tracker code of
commit 9c88280 (before the tracker-contract redesign, issue #13); any change to the trackers'
arithmetic that moves a box by one float32 ulp, or any id, shows up here.
Regenerate (only when a change is meant to alter results): python tests/test_builtin_results.py
"""
import sys
from pathlib import Path

import pytest

from trackformers.data.synthetic import generate_synthetic
from trackformers.engine.track import track_source
from trackformers.trackers import registry

REFERENCE = Path(__file__).parent / "fixtures" / "builtin_results"
MODELS = ("motr-synth", "memotr-synth", "iou-baseline-synth")
PRESETS = ("simple", "dance")


def _write_set(root: Path) -> None:
    for preset in PRESETS:
        generate_synthetic(str(root / preset), preset=preset, seqs=1, frames=24, size=(640, 360),
                           seed=4242, split="test")


def _track(model: str, root: Path, out: Path) -> dict[str, str]:
    tracker = registry.load_tracker(model, device="cpu")
    texts = {}
    for preset in PRESETS:
        track_source(tracker, str(root / preset / "test"), out / preset, progress=False)
        for txt in sorted((out / preset).glob("*.txt")):
            texts[f"{model}.{preset}.{txt.stem}.txt"] = txt.read_text()
    return texts


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    _write_set(root)
    return root


@pytest.mark.parametrize("model", MODELS)
def test_builtin_result_files_are_unchanged(model, synth_set, tmp_path):
    if model not in registry.installed_builtins():
        pytest.skip(f"built-in {model} is not shipped")
    texts = _track(model, synth_set, tmp_path)
    assert texts, "no sequence was tracked"
    for name, text in texts.items():
        expected = (REFERENCE / name).read_text()
        assert text.count("\n") == expected.count("\n") > 0, name
        assert text == expected, f"{name}: first differing row " + next(
            f"{a!r} != {b!r}" for a, b in zip(text.splitlines(), expected.splitlines()) if a != b)


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write_set(tmp / "data")
        REFERENCE.mkdir(parents=True, exist_ok=True)
        for model in MODELS:
            for name, text in _track(model, tmp / "data", tmp / model).items():
                (REFERENCE / name).write_text(text)
                print(name, text.count("\n"), "rows", file=sys.stderr)
