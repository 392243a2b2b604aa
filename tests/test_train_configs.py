"""Every shipped training config loads: known keys only, and a model config its method accepts."""
from pathlib import Path

import pytest

from trackformers.config import from_dict, load
from trackformers.engine.train_config import TrainConfig
from trackformers.trackers.registry import method_class

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.stem}" for p in CONFIGS])
def test_config_loads_and_its_model_config_is_valid(path):
    cfg = load(TrainConfig, path)
    model = dict(cfg.model)
    cls = method_class(model.pop("method"))
    from_dict(cls.Config, model)  # unknown or mistyped model keys raise here
    assert cfg.epochs > 0 and cfg.batch_size > 0 and cfg.data.datasets
    assert all(d < cfg.epochs for d in cfg.optim.lr_drop)


def test_configs_exist_for_every_method_and_the_synthetic_presets():
    names = {f"{p.parent.name}/{p.stem}" for p in CONFIGS}
    assert {"motr/dancetrack", "motr/sportsmot", "motr/mot17", "motr/synth", "memotr/synth", "baseline/synth",
            "qdtrack/mot17", "qdtrack/synth"} <= names


def test_baseline_uses_the_detector_and_input_size_of_motr_synth():
    root = Path(__file__).resolve().parents[1] / "configs"
    motr, base = load(TrainConfig, root / "motr/synth.yaml"), load(TrainConfig, root / "baseline/synth.yaml")
    assert base.model["detector"] == motr.model["detector"] and base.model["input"] == motr.model["input"]
    assert base.data.datasets == motr.data.datasets and base.data.scales == motr.data.scales
    memotr = load(TrainConfig, root / "memotr/synth.yaml")  # the same size, data and schedule as motr-synth
    assert memotr.model["input"] == motr.model["input"]
    assert (memotr.data.datasets, memotr.data.sampler, memotr.data.scales) == (motr.data.datasets, motr.data.sampler, motr.data.scales)
    assert (memotr.optim, memotr.epochs, memotr.batch_size) == (motr.optim, motr.epochs, motr.batch_size)


def test_sambamotr_configs_follow_the_official_longer_recipe():
    root = Path(__file__).resolve().parents[1] / "configs"
    for name, epochs, miss in (("dancetrack", 20, 50), ("sportsmot", 28, 50), ("bft", 30, 20)):
        cfg = load(TrainConfig, root / f"sambamotr/{name}.yaml")
        assert cfg.data.sampler.lengths == [10] and cfg.model["no_grad_frames"] == 5, name
        assert (cfg.epochs, cfg.model["miss_tolerance"]) == (epochs, miss), name
    samba, memotr = load(TrainConfig, root / "sambamotr/synth.yaml"), load(TrainConfig, root / "memotr/synth.yaml")
    assert samba.model["detector"] == memotr.model["detector"] and samba.model["input"] == memotr.model["input"]
    assert (samba.optim, samba.epochs, samba.batch_size) == (memotr.optim, memotr.epochs, memotr.batch_size)
    assert samba.model["no_grad_frames"] < min(samba.data.sampler.lengths)


def test_qdtrack_synth_uses_the_detector_input_and_data_of_motr_synth_and_takes_its_pretraining():
    root = Path(__file__).resolve().parents[1] / "configs"
    motr, qd = load(TrainConfig, root / "motr/synth.yaml"), load(TrainConfig, root / "qdtrack/synth.yaml")
    assert qd.model["method"] == "qdtrack_detr"
    assert qd.model["detector"] == motr.model["detector"] and qd.model["input"] == motr.model["input"]
    assert (qd.data.datasets, qd.data.scales, qd.data.crop_size) == (motr.data.datasets, motr.data.scales,
                                                                     motr.data.crop_size)
    assert qd.data.sampler.lengths == [2]  # a key and a reference frame
    # `pretrained: runs/detector-synth/last` (a DetectorTraining / iou_baseline run) fills every
    # detector weight: the same names and shapes under `detector.`
    from trackformers.trackers.baseline import IoUBaseline
    model, base = method_class("qdtrack_detr"), IoUBaseline
    b = load(TrainConfig, root / "baseline/synth.yaml").model
    m = dict(qd.model)
    m.pop("method")
    b.pop("method")
    own = model(from_dict(model.Config, m)).state_dict()
    det = base(from_dict(base.Config, b)).state_dict()
    assert {k: v.shape for k, v in own.items() if k.startswith("detector.")} == {k: v.shape for k, v in det.items()}
