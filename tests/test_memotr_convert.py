"""`convert --from memotr`: official key names <-> ours, dropped aliases, and errors naming the key."""
import re

import pytest
import torch

from trackformers.config import from_dict
from trackformers.convert.common import ConversionError
from trackformers.convert.memotr import convert
from trackformers.trackers.memotr import MeMOTR

TINY = {"detector": {"backbone_depth": 18, "backbone_width": 8, "hidden_dim": 32, "nheads": 8,
                     "num_feature_levels": 4, "enc_layers": 1, "dec_layers": 2, "dim_feedforward": 64,
                     "num_queries": 6, "num_classes": 3, "with_box_refine": True, "dropout": 0.0}}
# Ours -> official, written out independently of the converter's rules.
TO_OFFICIAL = [(r"^detector\.(tgt_embed|query_embed)\.weight$", "det_query_embed"),
               (r"^detector\.refpoint_embed\.weight$", "det_anchor"),
               (r"^detector\.backbone\.", "backbone.backbone.backbone."),
               (r"^detector\.input_proj\.", "feature_projs."),
               (r"^detector\.transformer\.decoder\.anchor_pos\.", "transformer.decoder."),
               (r"^detector\.", ""),
               (r"^query_updater\.confidence_weight\.", "query_updater.confidence_weight_net.0.")]


def official_state_dict(use_dab=True):
    torch.manual_seed(0)
    model = MeMOTR(from_dict(MeMOTR.Config, {**TINY, "use_dab": use_dab}))
    out = {}
    for k, v in model.state_dict().items():
        for pattern, repl in TO_OFFICIAL:
            k, n = re.subn(pattern, repl, k)
            if n:
                break
        out[k] = v.half()  # official files in the fixture are float16
    for k in list(out):  # box refinement registers the box heads a second time
        if k.startswith("bbox_embed."):
            out["transformer.decoder." + k] = out[k].clone()
    return model, out


@pytest.mark.parametrize("use_dab", [True, False])
def test_every_key_mapped_or_dropped(use_dab):
    model, official = official_state_dict(use_dab)
    c = convert(official, ["detector.backbone_depth=18"])
    assert c.config["use_dab"] is use_dab
    assert c.config["detector"]["num_classes"] == 3 and c.config["detector"]["num_queries"] == 6
    assert c.config["detector"]["dim_feedforward"] == 64 and c.config["detector"]["dec_layers"] == 2
    assert c.config["detector"]["pos_temperature"] == 20.0  # MeMOTR's, not Deformable DETR's 10000
    assert set(c.dropped) == {k for k in official if k.startswith("transformer.decoder.bbox_embed.")}
    assert len(c.state_dict) + len(c.dropped) == len(official)
    for k, v in model.state_dict().items():
        assert torch.equal(c.state_dict[k], v.half().float()), k


def test_overrides_reach_the_config():
    _, official = official_state_dict()
    c = convert(official, ["miss_tolerance=7", "anchor_sine_order=yxwh"])
    assert c.config["miss_tolerance"] == 7 and c.config["anchor_sine_order"] == "yxwh"


def test_unknown_key_is_named():
    _, official = official_state_dict()
    official["query_updater.extra.weight"] = torch.zeros(3)
    with pytest.raises(ConversionError, match=r"query_updater\.extra\.weight"):
        convert(official)


def test_missing_key_is_named():
    _, official = official_state_dict()
    del official["query_updater.memory_norm.weight"]
    with pytest.raises(ConversionError, match=r"missing key 'query_updater\.memory_norm\.weight'"):
        convert(official)


def test_shape_mismatch_is_named():
    _, official = official_state_dict()
    official["query_updater.short_memory_fusion.layers.0.weight"] = torch.zeros(5, 5)
    with pytest.raises(ConversionError, match=r"query_updater\.short_memory_fusion\.layers\.0\.weight: shape \(5, 5\)"):
        convert(official)


def test_alias_that_differs_is_an_error():
    _, official = official_state_dict()
    official["transformer.decoder.bbox_embed.0.layers.0.bias"] += 1
    with pytest.raises(ConversionError, match=r"transformer\.decoder\.bbox_embed\.0\.layers\.0\.bias"):
        convert(official)


def test_init_from_a_coco_dab_detector():
    """A DAB-Deformable-DETR checkpoint starts a MeMOTR as the original's load_pretrained_model:
    detector by name, COCO class rows 1..K for K <= 3, the query updater at its init."""
    import re as _re

    from trackformers.models.dab import DABDeformableDETR, DABDetectorConfig
    torch.manual_seed(0)
    det = DABDeformableDETR(DABDetectorConfig(backbone_depth=18, backbone_width=8, hidden_dim=32, nheads=8,
                                              enc_layers=1, dec_layers=2, dim_feedforward=64, num_queries=6,
                                              num_classes=91))
    official = {}
    for k, v in det.state_dict().items():
        k = _re.sub(r"^backbone\.", "backbone.0.body.", k).replace("decoder.anchor_pos.", "decoder.")
        official[k] = v
    for k in list(official):
        if k.startswith("bbox_embed."):
            official["transformer.decoder." + k] = official[k]
    c = convert(official)
    sd = c.state_dict
    assert c.config["use_dab"] and c.config["detector"]["pos_temperature"] == 20.0
    assert torch.equal(sd["detector.class_embed.1.weight"], official["class_embed.1.weight"][1:2])
    assert torch.equal(sd["detector.tgt_embed.weight"], official["tgt_embed.weight"])
    assert torch.equal(sd["detector.transformer.decoder.anchor_pos.query_scale.layers.0.weight"],
                       official["transformer.decoder.query_scale.layers.0.weight"])
    model = MeMOTR(from_dict(MeMOTR.Config, {k: v for k, v in c.config.items() if k != "method"}))
    model.load_state_dict(sd)  # complete: the query updater comes from MeMOTR's own init
    eight = convert(official, ["detector.num_classes=8"])
    assert eight.state_dict["detector.class_embed.0.weight"].shape == (8, 32)
    assert "class_embed.0.weight" in eight.dropped and "8 classes" in eight.dropped["class_embed.0.weight"]


def test_cli_error_is_one_line_naming_the_key(tmp_path, capsys):
    from trackformers.cli import main
    _, official = official_state_dict()
    del official["query_updater.query_pos_head.layers.1.bias"]
    torch.save({"model": official}, tmp_path / "memotr.pth")
    assert main(["convert", "--from", "memotr", str(tmp_path / "memotr.pth"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "query_updater.query_pos_head.layers.1.bias" in err[0]
    assert not (tmp_path / "out.safetensors").exists()
