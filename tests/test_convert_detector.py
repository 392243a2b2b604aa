"""Official Deformable DETR checkpoints -> our model, against the official recorded outputs."""
import os
import re

import pytest
import torch

from trackformers.cli import main as cli_main
from trackformers.checkpoint import load_model, load_official
from trackformers.convert.common import ConversionError
from trackformers.convert.deformable_detr import convert
from trackformers.data.transforms import ToTensorNormalize
from trackformers.models.backbone import ResNet
from trackformers.models.detector import pad_images
from trackformers.models.load import load_detector
from trackformers.models.postprocess import postprocess


def fixture(shared_dir, name):
    return os.path.join(shared_dir, "fixtures", "deformable_detr", name)


def fixture_batch(shared_dir, indices):
    """The official preprocessing: the recorded PIL resize output, ToTensor + Normalize, padded."""
    resized = torch.load(fixture(shared_dir, "images.pt"), weights_only=False)["resized_rgb_uint8"]
    images, _ = ToTensorNormalize()([resized[i].numpy() for i in indices], [{"boxes": []} for _ in indices])
    return pad_images(images)


def unmatched(a, b, score_tol=2e-4, box_tol=1e-2):
    """Detections of `a` with no detection in `b` of the same label, score and pixel box."""
    same = ((a["labels"][:, None] == b["labels"][None]) & ((a["scores"][:, None] - b["scores"][None]).abs() < score_tol)
            & ((a["boxes"][:, None] - b["boxes"][None]).abs().amax(-1) < box_tol))
    return a["scores"][~same.any(1)]


def assert_same_detections(ours, ref):
    """Top-100 compared as sets of (label, score, box), not by rank: only detections at the
    cut-off (within 1e-4 of the 100th score, where neighbours are ~1e-6 apart) may differ."""
    assert len(ours["scores"]) == len(ref["scores"]) == 100
    for a, b in ((ref, ours), (ours, ref)):
        missing = unmatched(a, b)
        assert len(missing) <= 2 and bool((missing - a["scores"].min() < 1e-4).all()), missing


@pytest.mark.parametrize("variant,run", [("plain", "single0"), ("box_refine", "batch2")])
def test_converted_model_reproduces_official_outputs(shared_dir, tmp_path, variant, run, capsys):
    out = tmp_path / variant
    assert cli_main(["convert", "--from", "deformable_detr", fixture(shared_dir, f"checkpoint_{variant}_fp16.pt"),
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    if variant == "box_refine":
        assert "36 key(s) dropped (box-refinement alias of bbox_embed.N)" in printed
    model = load_detector(out)
    assert model.cfg.with_box_refine == (variant == "box_refine")
    record = torch.load(fixture(shared_dir, "outputs.pt"), weights_only=False)["outputs"][variant][run]
    images, masks = fixture_batch(shared_dir, record["image_indices"])
    assert list(images.shape) == record["input_shape"] and torch.equal(masks, record["input_mask"])
    with torch.no_grad():
        outputs = model(images, masks)
    torch.testing.assert_close(outputs["pred_logits"], record["pred_logits"], rtol=0, atol=1e-3)
    torch.testing.assert_close(outputs["pred_boxes"], record["pred_boxes"], rtol=0, atol=1e-4)
    layers_logits = torch.stack([a["pred_logits"] for a in outputs["aux_outputs"]] + [outputs["pred_logits"]])
    layers_boxes = torch.stack([a["pred_boxes"] for a in outputs["aux_outputs"]] + [outputs["pred_boxes"]])
    torch.testing.assert_close(layers_logits, record["all_layers_logits"], rtol=0, atol=1e-3)
    torch.testing.assert_close(layers_boxes, record["all_layers_boxes"], rtol=0, atol=1e-4)
    torch.testing.assert_close(outputs["inter_references"], record["inter_references"], rtol=0, atol=1e-4)
    results = postprocess(outputs["pred_logits"], outputs["pred_boxes"], record["orig_target_sizes"])
    for ours, ref in zip(results, record["postprocess"]):
        assert_same_detections(ours, ref)


def test_unknown_missing_and_misshaped_keys_are_named(shared_dir):
    sd = load_official(fixture(shared_dir, "checkpoint_plain_fp16.pt"))
    with pytest.raises(ConversionError, match="unknown key 'transformer.extra.weight'"):
        convert({**sd, "transformer.extra.weight": torch.zeros(1)})
    broken = dict(sd)
    del broken["transformer.encoder.layers.3.norm2.bias"]
    with pytest.raises(ConversionError, match="missing key 'transformer.encoder.layers.3.norm2.bias'"):
        convert(broken)
    bad = dict(sd, **{"input_proj.1.0.bias": torch.zeros(7)})
    with pytest.raises(ConversionError, match=r"input_proj.1.0.bias: shape \(7,\)"):
        convert(bad)
    # box-refinement aliases must really duplicate the head they shadow
    with pytest.raises(ConversionError, match="differ"):
        convert({**sd, "transformer.decoder.bbox_embed.0.layers.0.bias": torch.zeros(256)})


def test_config_inference_and_set(shared_dir):
    sd = load_official(fixture(shared_dir, "checkpoint_plain_fp16.pt"))
    cfg = convert(sd, ["nheads=4"]).config  # 4 heads x 4 levels x 8 points fits the same shapes
    assert (cfg["nheads"], cfg["enc_n_points"], cfg["dec_n_points"]) == (4, 8, 8)
    assert (cfg["hidden_dim"], cfg["num_feature_levels"], cfg["enc_layers"], cfg["dec_layers"]) == (256, 4, 6, 6)
    with pytest.raises(ValueError, match="num_classes"):
        convert(sd, ["num_classes=1"])


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert cli_main(["convert", "--from", "deformable_detr", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "x")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_torchvision_resnet50_loads_with_no_key_left_over(tmp_path):
    """A state dict named as torchvision's resnet50 (with fc and num_batches_tracked) converts
    into the backbone: every backbone key filled, fc/num_batches_tracked dropped with reasons."""
    torch.manual_seed(0)
    tv = {k: torch.randn_like(v) for k, v in ResNet(50).state_dict().items()}
    for k in [k for k in tv if k.endswith("running_var")]:
        tv[k.replace("running_var", "num_batches_tracked")] = torch.tensor(5)
    tv["fc.weight"], tv["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    path = tmp_path / "resnet50.pth"
    torch.save(tv, path)
    assert cli_main(["convert", "--from", "torchvision_resnet", str(path), "--out", str(tmp_path / "r50")]) == 0
    state, meta = load_model(tmp_path / "r50")
    assert meta["config"]["backbone_depth"] == 50 and meta["config"]["method"] == "deformable_detr"
    assert set(state) == {f"backbone.{k}" for k in ResNet(50).state_dict()}
    assert torch.equal(state["backbone.layer3.4.conv2.weight"], tv["layer3.4.conv2.weight"])
    assert sorted(meta["provenance"]["dropped"]) == sorted(k for k in tv if k.startswith("fc.") or "num_batches" in k)


def reference_state_dict(shared_dir, name):
    """Zeros in the shapes of an official key dump (aliases are then trivially identical)."""
    path = os.path.join(shared_dir, "reference", "keys_motr_trackformer_detr", f"{name}.txt")
    sd = {}
    with open(path) as f:
        for line in f:
            key, _, shape = line.strip().partition(" ")
            if key and not key.startswith("TOTAL_KEYS"):
                sd[key] = torch.zeros(tuple(int(n) for n in re.findall(r"\d+", shape)))  # "(256, 256)"
    return sd


@pytest.mark.parametrize("name,expected", [
    ("ddetr_plain", dict(with_box_refine=False, two_stage=False, num_feature_levels=4, num_queries=300)),
    ("ddetr_refine", dict(with_box_refine=True, two_stage=False, num_feature_levels=4)),
    ("ddetr_2stage", dict(with_box_refine=True, two_stage=True, num_feature_levels=4)),
    ("ddetr_ss", dict(with_box_refine=False, two_stage=False, num_feature_levels=1)),
])
def test_every_official_layout_converts(shared_dir, name, expected):
    """The official key dumps of plain / refine / two-stage / single-scale Deformable DETR convert
    with every key mapped or dropped for a stated reason, and the right config inferred."""
    sd = reference_state_dict(shared_dir, name)
    result = convert(sd)
    assert {k: result.config[k] for k in expected} == expected
    assert len(result.state_dict) + len(result.dropped) == len(sd)
    assert all(k.startswith(("transformer.decoder.bbox_embed.", "transformer.decoder.class_embed."))
               for k in result.dropped)


def test_missing_converter_module_is_a_clean_usage_error(monkeypatch, tmp_path, capsys):
    from trackformers.convert import cli as convert_cli
    monkeypatch.setitem(convert_cli.CONVERTERS, "deformable_detr", "trackformers.convert.not_installed")
    path = tmp_path / "x.pth"
    torch.save({"model": {"a": torch.zeros(1)}}, path)
    assert cli_main(["convert", "--from", "deformable_detr", str(path), "--out", str(tmp_path / "y")]) == 2
    assert "converter not available" in capsys.readouterr().err
