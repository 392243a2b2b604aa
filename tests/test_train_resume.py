"""The training loop: resume is bit-identical, checkpoints/logs are complete, DDP ranks agree."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from test_engine_fakes import tiny_train_config
from trackformers.config import ConfigError
from trackformers.engine.train import (OptimConfig, build_optimizer, lr_factor, train)
from trackformers.engine.train_state import load_training_checkpoint

TESTS = Path(__file__).resolve().parent


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_is_bit_identical(tmp_path):
    # 3 epochs x 6 batches = 18 steps, LR drop at epoch 2; stop at 7 (inside epoch 1) and resume.
    full = train(tiny_train_config(str(tmp_path / "full")))
    train(tiny_train_config(str(tmp_path / "split"), max_steps=7))
    first = load_training_checkpoint(tmp_path / "split" / "last")
    assert first["progress"] == {"epoch": 1, "step": 7, "step_in_epoch": 1}
    resumed = train(tiny_train_config(str(tmp_path / "split")), resume=True)

    _assert_same_tensors(full.state_dict(), resumed.state_dict())
    a = load_training_checkpoint(tmp_path / "full" / "last")
    b = load_training_checkpoint(tmp_path / "split" / "last")
    assert a["progress"] == b["progress"] == {"epoch": 3, "step": 18, "step_in_epoch": 0}
    _assert_same_tensors(a["model"], b["model"])
    for pid in a["optimizer"]["state"]:  # AdamW moments and step counters, every tensor exactly
        _assert_same_tensors(a["optimizer"]["state"][pid], b["optimizer"]["state"][pid])
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    _assert_same_tensors(a["rng"][0], b["rng"][0])
    assert a["rng"][1] == b["rng"][1]

    # The log of the split run is the full run's log, line for line (losses are bit-identical).
    def losses(run):
        return [(r["step"], r["loss"], r["lr"]) for r in map(json.loads, open(tmp_path / run / "log.jsonl"))]
    assert losses("split") == losses("full")
    assert len(losses("full")) == 18
    assert [lr for _, _, lr in losses("full")][11:13] == [1e-2, pytest.approx(1e-3)]  # drop at epoch 2


def test_model_file_of_a_training_checkpoint_loads_as_a_tracker(tmp_path):
    from trackformers.trackers.registry import load_model_file
    train(tiny_train_config(str(tmp_path), max_steps=3))
    model, meta = load_model_file(tmp_path / "last")
    assert meta["config"]["method"] == "test_engine_fakes:TinyTracker"
    assert meta["provenance"]["step"] == 3 and meta["provenance"]["train_config"]["seed"] == 7
    assert not model.training


def test_a_run_of_no_steps_writes_its_pretrained_model(tmp_path):
    # `epochs: 0` + `pretrained:` assembles a model file from another's weights (the IoU baseline
    # on a trained tracker's detector), ready for --export.
    from trackformers.trackers.registry import load_model_file
    trained = train(tiny_train_config(str(tmp_path / "a"), max_steps=3))
    train(tiny_train_config(str(tmp_path / "b"), epochs=0, pretrained=str(tmp_path / "a" / "last")))
    model, meta = load_model_file(tmp_path / "b" / "last")
    _assert_same_tensors(model.state_dict(), trained.state_dict())
    assert meta["provenance"]["step"] == 0

def test_optimizer_groups_and_schedule():
    from test_engine_fakes import TinyTracker, TinyConfig
    model = TinyTracker(TinyConfig())
    model.register_parameter("sampling_offsets", torch.nn.Parameter(torch.zeros(2)))
    opt = build_optimizer(model, OptimConfig(lr=1e-3, lr_backbone_mult=0.1, lr_linear_proj_mult=0.5))
    groups = {g["name"]: (g["lr"], len(g["params"])) for g in opt.param_groups}
    assert groups == {"backbone": (pytest.approx(1e-4), 2), "linear_proj": (5e-4, 1), "rest": (1e-3, 2)}
    optim = OptimConfig(lr_drop=[3, 5], lr_drop_factor=0.1)
    assert [lr_factor(optim, e) for e in range(7)] == [1, 1, 1, 0.1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]


def test_grad_checkpointing_flag_reaches_the_model_config(tmp_path):
    model = train(tiny_train_config(str(tmp_path), max_steps=1, grad_checkpointing=True))
    assert model.cfg.grad_checkpointing is True
    with pytest.raises(ConfigError, match="hiden"):
        train(tiny_train_config(str(tmp_path / "bad"), model={"method": "test_engine_fakes:TinyTracker", "hiden": 3}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_ranks_end_with_identical_weights(tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(TESTS / "test_engine_fakes.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    _assert_same_tensors(r0, r1)
    # Each rank saw half of each epoch: 12 clips / 2 ranks / batch 2 = 3 steps per epoch, 2 epochs.
    ckpt = load_training_checkpoint(tmp_path / "last")
    assert ckpt["progress"]["step"] == 6 and ckpt["model_meta"]["provenance"]["world_size"] == 2
    with safe_open(str(tmp_path / "last.train.safetensors"), framework="pt") as f:
        assert len(json.loads(f.metadata()["trackformers_train"])["rng"]) == 2  # each rank's RNG streams
    _assert_same_tensors(ckpt["model"], r0)
    # Training really moved the weights away from the shared initialisation.
    from test_engine_fakes import TinyTracker, TinyConfig
    torch.manual_seed(7)
    init = TinyTracker(TinyConfig(hidden=6)).state_dict()
    assert not torch.equal(init["head.weight"], r0["head.weight"])


def test_real_motr_on_synthetic_clips_resumes_bit_identically(tmp_path):
    """The whole data path (synthetic set -> ClipDataset -> transforms) with a tiny MOTR, stopped
    and resumed inside epoch 1, where the clip length has grown from 2 to 3 frames."""
    from trackformers.config import from_dict
    from trackformers.data.synthetic import generate_synthetic
    from trackformers.engine.train import TrainConfig
    generate_synthetic(str(tmp_path / "synth"), "simple", seqs=2, frames=6, size=(96, 64), seed=1)
    cfg = {
        "model": {"method": "motr", "qim": {"hidden_dim": 32}, "input": {"short_side": 64, "max_size": 96},
                  "detector": {"backbone_depth": 18, "backbone_width": 8, "hidden_dim": 32, "nheads": 2,
                               "enc_layers": 1, "dec_layers": 2, "dim_feedforward": 32, "num_queries": 10,
                               "num_feature_levels": 1}},
        "data": {"datasets": [{"name": "synthetic", "root": str(tmp_path / "synth")}],
                 "sampler": {"lengths": [2, 3], "steps": [1], "intervals": [3]}, "scales": [56, 64], "max_size": 96,
                 "crop_scales": [64, 72], "crop_size": [48, 64]},
        "epochs": 2, "batch_size": 4, "device": "cpu", "log_interval": 1}
    full = train(from_dict(TrainConfig, {**cfg, "out": str(tmp_path / "full")}))
    train(from_dict(TrainConfig, {**cfg, "out": str(tmp_path / "split"), "max_steps": 3}))
    resumed = train(from_dict(TrainConfig, {**cfg, "out": str(tmp_path / "split")}), resume=True)
    _assert_same_tensors(full.state_dict(), resumed.state_dict())
    steps = [json.loads(line)["step"] for line in open(tmp_path / "full" / "log.jsonl")]
    assert steps == [1, 2, 3, 4]  # epoch 0: 2 x 5 clips of 2 frames / 4 -> 2 steps; epoch 1: 2 x 4 of 3 -> 2
    assert json.loads(open(tmp_path / "split" / "log.jsonl").readlines()[2])["epoch"] == 1  # resumed mid-epoch 1


def test_resume_starts_a_missing_run_and_a_finished_run_is_never_overwritten(tmp_path):
    first = train(tiny_train_config(str(tmp_path), max_steps=2), resume=True)  # nothing to resume: starts
    assert load_training_checkpoint(tmp_path / "last")["progress"]["step"] == 2
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_train_config(str(tmp_path), max_steps=4))
    again = train(tiny_train_config(str(tmp_path), max_steps=2), resume=True)  # already done: no step taken
    _assert_same_tensors(first.state_dict(), again.state_dict())


def test_data_loader_workers_do_not_change_training(tmp_path):
    # Every clip is drawn from (seed, epoch, index) alone, so worker processes change nothing.
    serial = train(tiny_train_config(str(tmp_path / "w0"), epochs=2))
    cfg = tiny_train_config(str(tmp_path / "w2"), epochs=2)
    cfg.data.num_workers = 2
    _assert_same_tensors(serial.state_dict(), train(cfg).state_dict())


def test_log_lines_are_mirrored_to_tensorboard_when_installed(tmp_path, monkeypatch):
    import types
    scalars = []

    class FakeWriter:  # stands in for tensorboard's SummaryWriter (not installed here)
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            scalars.append((tag, value, step))

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    train(tiny_train_config(str(tmp_path), max_steps=2))
    logged = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert [(t, v, s) for t, v, s in scalars if t == "loss"] == [("loss", r["loss"], r["step"]) for r in logged]
    assert {t for t, _, _ in scalars} == {"lr", "loss", "loss_l2", "it_s", "grad_norm"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_training_on_cuda(tmp_path):
    from trackformers.engine.train import train as run_training
    model = run_training(tiny_train_config(str(tmp_path), max_steps=3, amp=True, device="cuda"))
    assert next(model.parameters()).device.type == "cuda"
    logged = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert len(logged) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in logged)
