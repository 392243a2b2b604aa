"""The official-MOTR converter: inferred config, key mapping, and errors that name the key."""
from pathlib import Path

import pytest
import torch

from trackformers.checkpoint import load_official
from trackformers.convert.common import ConversionError
from trackformers.convert.motr import convert


@pytest.fixture(scope="module")
def official(shared_dir):
    path = Path(shared_dir) / "fixtures" / "motr" / "checkpoint_fp16.pt"
    if not path.is_file():
        pytest.skip("MOTR fixture not available")
    return load_official(path)


def test_config_from_shapes_and_every_key_accounted_for(official):
    c = convert(official, ["miss_tolerance=2"])
    d = c.config["detector"]
    assert c.config["method"] == "motr" and c.config["extra_track_attn"] is True
    assert (d["backbone_depth"], d["hidden_dim"], d["num_queries"], d["num_classes"]) == (50, 256, 300, 1)
    assert (d["enc_layers"], d["dec_layers"], d["dim_feedforward"], d["num_feature_levels"]) == (6, 6, 1024, 4)
    assert d["with_box_refine"] and d["dropout"] == 0.0 and (d["enc_n_points"], d["dec_n_points"]) == (4, 4)
    assert c.config["qim"]["hidden_dim"] == 1024 and c.config["qim"]["update_query_pos"] is True
    assert c.config["miss_tolerance"] == 2
    # 659 official keys = 621 kept + 36 box-head aliases + the unused track_embed.norm3 (2)
    assert len(official) == 659 and len(c.state_dict) == 621 and len(c.dropped) == 38
    assert sum(k.startswith("transformer.decoder.bbox_embed.") for k in c.dropped) == 36
    assert set(k for k in c.dropped if k.startswith("track_embed.")) == {"track_embed.norm3.weight",
                                                                         "track_embed.norm3.bias"}
    assert torch.equal(c.state_dict["qim.linear_feat2.weight"], official["track_embed.linear_feat2.weight"])
    assert torch.equal(c.state_dict["detector.backbone.layer3.5.conv2.weight"],
                       official["backbone.0.body.layer3.5.conv2.weight"])
    assert torch.equal(c.state_dict["detector.transformer.decoder.layers.2.update_attn.in_proj_weight"],
                       official["transformer.decoder.layers.2.update_attn.in_proj_weight"])


def test_unknown_key_is_named(official):
    bad = dict(official, **{"track_embed.extra.weight": torch.zeros(3)})
    with pytest.raises(ConversionError, match=r"track_embed\.extra\.weight"):
        convert(bad)


def test_missing_key_is_named(official):
    bad = {k: v for k, v in official.items() if k != "transformer.decoder.layers.3.norm4.bias"}
    with pytest.raises(ConversionError, match=r"transformer\.decoder\.layers\.3\.norm4\.bias"):
        convert(bad)


def test_shape_mismatch_is_named(official):
    bad = dict(official, **{"track_embed.linear_pos2.bias": torch.zeros(7)})
    with pytest.raises(ConversionError, match=r"track_embed\.linear_pos2\.bias.*\(7,\)"):
        convert(bad)


def test_an_alias_that_differs_is_an_error(official):
    key = "transformer.decoder.bbox_embed.4.layers.2.bias"
    bad = dict(official, **{key: official[key] + 1})
    with pytest.raises(ConversionError, match=key.replace(".", r"\.")):
        convert(bad)


def test_cli_reports_dropped_keys_and_fails_in_one_line(official, shared_dir, tmp_path, capsys):
    from trackformers.cli import main
    src = Path(shared_dir) / "fixtures" / "motr" / "checkpoint_fp16.pt"
    assert main(["convert", "--from", "motr", str(src), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "36 key(s) dropped" in out and "track_embed.norm3" in out
    torch.save({"model": dict(official, **{"qim_typo.weight": torch.zeros(1)})}, tmp_path / "bad.pth")
    assert main(["convert", "--from", "motr", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "qim_typo.weight" in err and len(err.strip().splitlines()) == 1
