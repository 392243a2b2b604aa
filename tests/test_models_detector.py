"""Small detectors end to end: outputs of every variant, gradients, and overfitting synthetic frames."""
import pytest
import torch

from trackformers.checkpoint import save_model
from trackformers.config import to_dict
from trackformers.data.synthetic import generate_synthetic
from trackformers.data.sources import load_frames
from trackformers.models.detector import DetectorConfig, build_detector, pad_images
from trackformers.models.load import load_detector
from trackformers.models.postprocess import postprocess
from trackformers.models.train_detector import DetectorTraining, DetectorTrainingConfig, evaluate_ap, fit


def tiny(**kw):
    base = dict(backbone_depth=18, backbone_width=16, hidden_dim=64, nheads=4, num_feature_levels=2, enc_layers=1,
                dec_layers=3, dim_feedforward=128, dropout=0.0, num_queries=20, num_classes=1)
    return DetectorConfig(**{**base, **kw})


@pytest.mark.parametrize("variant", [{}, {"with_box_refine": True}, {"with_box_refine": True, "two_stage": True},
                                     {"num_feature_levels": 4}])
def test_variants_forward_and_backward(variant):
    torch.manual_seed(0)
    model = build_detector(tiny(**variant))
    images, masks = pad_images([torch.randn(3, 64, 96), torch.randn(3, 48, 80)])
    out = model(images, masks)
    assert out["pred_logits"].shape == (2, 20, 1) and out["pred_boxes"].shape == (2, 20, 4)
    assert len(out["aux_outputs"]) == 2
    assert ((out["pred_boxes"] > 0) & (out["pred_boxes"] < 1)).all()
    assert ("enc_outputs" in out) == variant.get("two_stage", False)
    out["pred_logits"].sum().backward()
    # frozen stem + layer1 (default frozen_stages=1), trainable layer4
    assert model.backbone.layer1[0].conv1.weight.grad is None
    assert model.backbone.layer4[0].conv1.weight.grad.abs().sum() > 0
    shared = not variant.get("with_box_refine", False)
    assert (model.class_embed[0] is model.class_embed[2]) == shared


def test_pad_images():
    a, b = torch.ones(3, 4, 6), 2 * torch.ones(3, 5, 3)
    batch, mask = pad_images([a, b])
    assert batch.shape == (2, 3, 5, 6) and mask.shape == (2, 5, 6)
    assert mask[0].sum() == 5 * 6 - 4 * 6 and not mask[0, :4].any() and mask[0, 4].all()
    assert not mask[1, :, :3].any() and mask[1, :, 3:].all() and batch[1, :, :, 3:].abs().sum() == 0
    assert torch.equal(batch[1, :, :, :3], b)
    assert pad_images([a, b], size_divisibility=4)[0].shape == (2, 3, 8, 8)


def test_postprocess_scales_to_pixels():
    logits = torch.tensor([[[0.0, 3.0], [1.0, -2.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.25, 0.25, 0.5, 0.5]]])
    res = postprocess(logits, boxes, torch.tensor([[100, 200]]), top_k=2)[0]
    assert res["labels"].tolist() == [1, 0] and res["queries"].tolist() == [0, 1]
    torch.testing.assert_close(res["scores"], torch.sigmoid(torch.tensor([3.0, 1.0])))
    torch.testing.assert_close(res["boxes"][0], torch.tensor([80.0, 30.0, 120.0, 70.0]))


def test_overfits_synthetic_frames(tmp_path):
    """The detector-pretraining stage in miniature: 6 synthetic frames, ~150 steps on CPU,
    AP@0.5 on those frames >= 0.9 (an untrained model scores ~0)."""
    generate_synthetic(str(tmp_path), preset="simple", seqs=2, frames=3, size=(128, 96), seed=3)
    frames = load_frames(str(tmp_path))
    assert len(frames) == 6 and sum(len(t["labels"]) for _, t in frames) > 10
    torch.manual_seed(0)
    model = DetectorTraining(DetectorTrainingConfig(detector=tiny(with_box_refine=True, frozen_stages=0)))
    before = evaluate_ap(model.detector, frames)
    losses = fit(model, frames, steps=150, lr=1e-3, lr_backbone=1e-3, batch_size=6, clip_max_norm=0.5)
    ap = evaluate_ap(model.detector, frames)
    assert before < 0.2 and losses[-1] < 0.2 * losses[0]
    assert ap >= 0.9, ap


def test_load_detector_from_a_training_file(tmp_path):
    """A file written for DetectorTraining (weights under `detector.`) loads as a plain detector."""
    torch.manual_seed(0)
    training = DetectorTraining(DetectorTrainingConfig(detector=tiny()))
    config = {"method": "trackformers.models.train_detector:DetectorTraining", **to_dict(training.cfg)}
    save_model(tmp_path / "det", training.state_dict(), config)
    model = load_detector(tmp_path / "det")
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images)["pred_logits"], training.detector.eval()(images)["pred_logits"])


def test_detector_pretraining_config_runs_in_the_engine(tmp_path):
    """configs/detector/synth_simple.yaml trains through `trackformers train` (2 steps on a tiny
    synthetic set) and its output loads as a detector."""
    import os

    from trackformers.cli import main as cli_main

    config = os.path.join(os.path.dirname(__file__), "..", "configs", "detector", "synth_simple.yaml")
    generate_synthetic(str(tmp_path / "syn"), preset="simple", seqs=1, frames=3, size=(96, 64), seed=0)
    out = tmp_path / "run"
    args = ["train", config, "--out", str(out), "--set", f"data.datasets=[{{name: synthetic, root: {tmp_path / 'syn'}}}]",
            "--set", "max_steps=2", "--set", "batch_size=2", "--set", "data.scales=[64]", "--set", "data.max_size=96",
            "--set", "data.crop_scales=[64]", "--set", "data.crop_size=[48,64]", "--set", "device=cpu"]
    assert cli_main(args) == 0
    detector = load_detector(out / "last")
    import yaml
    with open(config) as f:
        expected = yaml.safe_load(f)["model"]["detector"]
    assert detector.cfg.num_queries == expected["num_queries"] and detector.cfg.with_box_refine
    assert detector.cfg.num_feature_levels == expected["num_feature_levels"]


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = DetectorTraining(DetectorTrainingConfig(detector=tiny(with_box_refine=True, frozen_stages=0)))
    frames = [(torch.randn(3, 64, 96), {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.4]])})]
    grads = []
    for flag in (False, True):
        model.cfg.grad_checkpointing = flag
        model.zero_grad()
        model.training_loss([frames])["loss"].backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
