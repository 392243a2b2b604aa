"""Faults: SIGKILL mid-training and mid-checkpoint, SIGKILL mid-tracking, read-only and full
output folders, crafted checkpoints. Nothing is lost that was finished, nothing half-written
looks complete, and no input file runs code."""
import json
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from test_engine_fakes import TinyConfig, TinyTracker, tiny_train_config
from test_track_cli import expected_rows, frames, write_images
from trackformers import checkpoint, cli
from trackformers.config import to_dict
from trackformers.data.mot import read_mot
from trackformers.engine.train import train
from trackformers.engine.train_state import load_training_checkpoint

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
# The children compute with as many threads as this process: bit-identity holds per thread count.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]),
           OMP_NUM_THREADS=str(torch.get_num_threads()), TRACKFORMERS_TRUSTED_MODULES="test_engine_fakes")


def child(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=timeout)


def cli_child(*argv: str) -> str:
    return f"import sys; from trackformers.cli import main; sys.exit(main({list(map(str, argv))!r}))"


def train_yaml(tmp_path) -> Path:
    """The tiny config as a YAML file (18 steps: 3 epochs x 6 batches; saves at 4, 6, 8, 12, 16, 18)."""
    cfg = to_dict(tiny_train_config(str(tmp_path / "unused")))
    del cfg["out"]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def assert_same_run(full: Path, split: Path) -> None:
    a, b = load_training_checkpoint(full / "last"), load_training_checkpoint(split / "last")
    assert a["progress"] == b["progress"] == {"epoch": 3, "step": 18, "step_in_epoch": 0}
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for pid in a["optimizer"]["state"]:
        for k, v in a["optimizer"]["state"][pid].items():
            assert torch.equal(v, b["optimizer"]["state"][pid][k]), (pid, k)
    # The model file users load is byte-identical, and the log has each step once, the same.
    assert (full / "last.safetensors").read_bytes() == (split / "last.safetensors").read_bytes()
    def losses(run):
        return [(r["step"], r["loss"]) for r in map(json.loads, open(run / "log.jsonl"))]
    assert losses(split) == losses(full) and [s for s, _ in losses(full)] == list(range(1, 19))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    train(tiny_train_config(str(out)))
    return out


def test_sigkill_at_a_random_step_then_resume_is_bit_identical(tmp_path, full_run):
    step = int(np.random.default_rng(18).integers(5, 18))  # seeded: a step after a checkpoint
    cfg, split = train_yaml(tmp_path), tmp_path / "split"
    proc = child(cli_child("train", cfg, "--out", split, "--set", f"model.kill_at={step}"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    saved = load_training_checkpoint(split / "last")["progress"]["step"]
    assert saved == max(s for s in (4, 6, 8, 12, 16) if s < step)
    assert cli.main(["train", str(cfg), "--out", str(split), "--resume"]) == 0
    assert_same_run(full_run, split)


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, full_run):
    # Killed half-way through writing the third training state (step 8): the step-6 one stays.
    cfg, split = train_yaml(tmp_path), tmp_path / "split"
    code = f"""
import os, signal
from trackformers import checkpoint
original, saves = checkpoint.atomic_write, []
def atomic_write(path, write):
    if str(path).endswith(".train.safetensors"):
        saves.append(path)
        if len(saves) == 3:
            def cut(tmp):
                write(tmp)
                os.truncate(tmp, os.path.getsize(tmp) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            return original(path, cut)
    return original(path, write)
checkpoint.atomic_write = atomic_write
{cli_child("train", cfg, "--out", split)}
"""
    proc = child(code)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert list(split.glob(".last.train.safetensors.*.tmp"))  # the cut-off write, under a temporary name
    assert load_training_checkpoint(split / "last")["progress"]["step"] == 6
    assert cli.main(["train", str(cfg), "--out", str(split), "--resume"]) == 0
    assert not list(split.glob(".*.tmp"))  # the next save cleared it
    assert_same_run(full_run, split)


@pytest.fixture
def tiny_model(tmp_path):
    cfg = TinyConfig()
    return str(checkpoint.save_model(tmp_path / "tiny", TinyTracker(cfg).state_dict(),
                                     {"method": "test_engine_fakes:TinyTracker", **to_dict(cfg)}))


def test_sigkill_mid_video_keeps_every_tracked_frame(tmp_path, tiny_model):
    write_images(tmp_path / "clip", frames(12))
    kill = int(np.random.default_rng(7).integers(2, 12))
    proc = child(cli_child("track", tmp_path / "clip", "--model", tiny_model, "--out", tmp_path / "out",
                           "--no-progress", "--set", f"kill_at={kill}"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (tmp_path / "out" / "clip.txt").exists()  # nothing passes for a whole result
    got = read_mot(tmp_path / "out" / "clip.txt.part")  # it parses, and holds frames 1..kill-1
    want = expected_rows(kill - 1)
    np.testing.assert_allclose(got[:, :7], want, atol=0.005 + 1e-9)
    assert cli.main(["track", str(tmp_path / "clip"), "--model", tiny_model, "--out", str(tmp_path / "out"),
                     "--no-progress"]) == 0
    assert (tmp_path / "out" / "clip.txt").is_file() and not (tmp_path / "out" / "clip.txt.part").exists()


def one_line(capsys, argv, code=1):
    capsys.readouterr()
    assert cli.main(list(map(str, argv))) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_read_only_output_folder_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    folders = [tmp_path / "afile" / "out"]  # under a file: cannot be created
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o555)
        folders.append(tmp_path / "ro")
    elif not os.access("/sys", os.W_OK) or os.path.ismount("/sys"):
        folders.append(Path("/sys"))  # root ignores permission bits; sysfs refuses new files
    for out in folders:
        # Model and source do not exist: the output folder is checked first, before any work.
        err = one_line(capsys, ["track", tmp_path / "nosource", "--model", tmp_path / "nomodel", "--out", out])
        assert f"output folder {out} is not writable" in err
        err = one_line(capsys, ["train", train_yaml(tmp_path), "--out", out])
        assert f"output folder {out} is not writable" in err


def test_full_disk_mid_sequence_is_one_line_and_leaves_no_complete_looking_file(tmp_path, tiny_model, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    write_images(tmp_path / "clip", frames(3))
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.txt.part").symlink_to("/dev/full")  # every write fails with ENOSPC
    err = one_line(capsys, ["track", tmp_path / "clip", "--model", tiny_model, "--out", out, "--no-progress"])
    assert "clip.txt.part" in err and "No space left on device" in err
    assert not (out / "clip.txt").exists() and not (out / "summary.json").exists()


def test_crafted_checkpoint_pair_runs_no_code_on_resume(tmp_path, capsys):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    cfg, out = train_yaml(tmp_path), tmp_path / "run"
    out.mkdir()
    payload = pickle.dumps({"model": Payload()})
    for name in ("last.train.safetensors", "last.safetensors"):
        (out / name).write_bytes(payload)
    (out / "last.json").write_text(json.dumps({"format": "trackformers/1", "config": {"method": "os:system"}}))
    err = one_line(capsys, ["train", cfg, "--out", out, "--resume"])
    assert "last.train.safetensors" in err
    # A well-formed safetensors file whose JSON metadata is hostile: still one line, no code.
    hostile = {"progress": {"epoch": 0, "step": "__import__('os')", "step_in_epoch": 0}, "rng": [],
               "param_groups": [], "scalars": {}, "model_meta": {"config": {"method": "os:system"}, "provenance": {}}}
    save_file({"model.head.weight": torch.zeros(4, 6)}, str(out / "last.train.safetensors"),
              metadata={"trackformers_train": json.dumps(hostile)})
    err = one_line(capsys, ["train", cfg, "--out", out, "--resume"])
    assert "damaged training state" in err
    hostile["progress"]["step"] = 3
    save_file({"model.head.weight": torch.zeros(4, 6)}, str(out / "last.train.safetensors"),
              metadata={"trackformers_train": json.dumps(hostile)})
    err = one_line(capsys, ["train", cfg, "--out", out, "--resume"])
    assert "weights do not fit" in err and "missing" in err
    assert not marker.exists()


def test_no_unpickling_anywhere_in_the_package():
    """Every loader in src/ is safetensors, JSON, YAML safe_load or torch.load(weights_only=True)."""
    risky = re.compile(r"\bpickle\.loads?\(|\bnp\.load\(|allow_pickle=True|yaml\.load\(|yaml\.unsafe_load|"
                       r"\bmarshal\.|\bshelve\.|\bdill\.|\bjoblib\.")
    hits = []
    for path in (SRC / "trackformers").rglob("*.py"):
        text = path.read_text()
        hits += [f"{path}: {m.group(0)}" for m in risky.finditer(text)]
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                hits.append(f"{path}: torch.load without weights_only=True")
    assert not hits, hits
