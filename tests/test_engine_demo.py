"""`trackformers demo`, `trackformers bench`, and exporting a trained model as a built-in one."""
import json
import sys
from pathlib import Path

import cv2
import pytest
import torch

from test_engine_fakes import TinyConfig, TinyTracker, tiny_train_config
from trackformers import checkpoint, cli, evaluate
from trackformers.config import to_dict
from trackformers.trackers import registry


@pytest.fixture
def tiny_model(tmp_path):
    cfg = TinyConfig()
    return str(checkpoint.save_model(tmp_path / "tiny", TinyTracker(cfg).state_dict(),
                                     {"method": "test_engine_fakes:TinyTracker", **to_dict(cfg)}))


def test_demo_without_weights_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "empty")
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "motr-synth" in err and "trackformers train configs/motr/synth.yaml" in err
    assert not (tmp_path / "demo").exists()  # failed before generating anything


def test_demo_tracks_a_fresh_video_and_scores_it(tmp_path, tiny_model, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--model", tiny_model, "--seed", "3", "--frames", "6", "--size", "96x64",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["frames"] == 6
    assert (out / "simple0001.txt").is_file() and (out / "simple0001.mp4").stat().st_size > 0
    # The printed metrics are those of `trackformers eval` on the same files.
    want = evaluate(out / "data" / "demo", out, benchmark="generic")["COMBINED"]
    assert summary["metrics"] == {k: want[k] for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1")}
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == "  ".join(f"{k} {100 * want[k]:.1f}" for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1"))


def test_bench_reports_metrics_and_fps_per_preset_and_model(tmp_path, tiny_model):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_track import ratios
    from trackformers.engine.bench import run_benchmark
    report = run_benchmark([tiny_model, tiny_model], ["simple"], seqs=1, frames=4, size=(96, 64), seed=5,
                           device="cpu", work_dir=str(tmp_path))
    row = report["simple"][tiny_model]
    want = evaluate(tmp_path / "data" / "simple" / "test", tmp_path / "results" / "simple" / "tiny",
                    benchmark="generic")["COMBINED"]
    assert {k: row[k] for k in ("HOTA", "MOTA", "IDF1")} == {k: round(want[k], 5) for k in ("HOTA", "MOTA", "IDF1")}
    assert row["frames"] == 4 and row["fps"] > 0
    report["simple"]["other"] = dict(row, HOTA=row["HOTA"] / 2)
    assert ratios(report, tiny_model)["simple"]["other"]["HOTA"] == 0.5
    # A training config stands for its (untrained) architecture: speed before weights exist.
    yaml_cfg = tmp_path / "tiny.yaml"
    yaml_cfg.write_text("model: {method: 'test_engine_fakes:TinyTracker', hidden: 4}\n")
    report = run_benchmark([str(yaml_cfg)], ["simple"], seqs=1, frames=3, size=(96, 64), seed=5, device="cpu")
    assert report["simple"][str(yaml_cfg)]["frames"] == 3 and report["simple"][str(yaml_cfg)]["fps"] > 0


def test_bench_command_prints_one_table_of_every_model_and_preset(tmp_path, tiny_model, capsys):
    args = ["bench", "--models", tiny_model, tiny_model + ".safetensors", "--presets", "simple", "dance",
            "--seqs", "1", "--frames", "3", "--size", "96x64", "--device", "cpu", "--json", str(tmp_path / "r.json"),
            "--plot", str(tmp_path / "r.png")]
    assert cli.main(args) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    image = cv2.imread(str(tmp_path / "r.png"))
    assert image is not None and image.shape[1] > image.shape[0] > 200  # two panels side by side
    lines = [line for line in capsys.readouterr().out.strip().splitlines() if not line.startswith("plot ->")]
    assert lines[0].split() == ["set", "model", "HOTA", "DetA", "AssA", "MOTA", "IDF1", "FPS"]
    rows = [line.split() for line in lines[1:-1] if not line.startswith("-")]
    assert [r[:2] for r in rows] == [[p, m] for p in ("simple", "dance") for m in (tiny_model, tiny_model + ".safetensors")]
    for preset, model, *cells in rows:
        r = report[preset][model]
        assert cells == [f"{100 * r[k]:.1f}" for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1")] + [f"{r['fps']:.1f}"]

def test_train_export_makes_a_loadable_model(tmp_path, monkeypatch):
    from trackformers.engine.train import export_model, train
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr("trackformers.engine.train.WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setitem(registry.BUILTIN, "tiny-synth", ("tiny-synth", "train it"))
    trained = train(tiny_train_config(str(tmp_path / "run"), max_steps=2))
    export_model(tmp_path / "run" / "last", "tiny-synth")
    tracker = registry.load_tracker("tiny-synth")
    for k, v in trained.state_dict().items():
        assert tracker.model.state_dict()[k].equal(v)
    # float16 storage: half the bytes, loaded back into float32 parameters as the rounded values.
    half = export_model(tmp_path / "run" / "last", str(tmp_path / "half"), dtype="float16")
    from safetensors.torch import load_file
    assert {v.dtype for v in load_file(str(half.with_suffix(".safetensors"))).values()} == {torch.float16}
    model, meta = registry.load_model_file(half)
    assert meta["provenance"]["weights_dtype"] == "float16" and meta["provenance"]["step"] == 2
    for k, v in trained.state_dict().items():
        got = model.state_dict()[k]
        assert got.dtype == torch.float32 and got.equal(v.half().float())


def test_train_command_line_runs_resumes_and_exports(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {method: 'test_engine_fakes:TinyTracker'}\n"
                   "data: {builder: 'test_engine_fakes:make_dataset'}\n"
                   "epochs: 2\nbatch_size: 3\ndevice: cpu\nlog_interval: 1\n")
    out = tmp_path / "run"
    assert cli.main(["train", str(cfg), "--out", str(out), "--set", "max_steps=3", "--set", "optim.lr=0.05"]) == 0
    assert cli.main(["train", str(cfg), "--out", str(out)]) == 2  # would overwrite the run
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["train", str(cfg), "--out", str(out), "--set", "optim.lr=0.05", "--resume",
                     "--export", str(tmp_path / "final")]) == 0
    steps = [json.loads(line)["step"] for line in open(out / "log.jsonl")]
    assert steps == list(range(1, 9))  # 12 clips / 3 = 4 steps per epoch, 2 epochs, resumed after 3
    assert (out / "loss.png").stat().st_size > 0  # the loss curve of the whole run
    _, meta = registry.load_model_file(tmp_path / "final")
    assert meta["provenance"]["step"] == 8 and meta["provenance"]["train_config"]["optim"]["lr"] == 0.05
    assert cli.main(["train", str(cfg), "--out", str(tmp_path / "bad"), "--set", "optim.lrr=1"]) == 2
