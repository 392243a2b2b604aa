"""`convert --from dab_deformable_detr` on the official key layout, and the DAB detector's forward
against a decoder loop written out in the test."""
import math
import re
from pathlib import Path

import pytest
import torch

from trackformers.convert.common import ConversionError
from trackformers.convert.dab_deformable_detr import convert
from trackformers.models.dab import DABDeformableDETR, DABDetectorConfig


def official_layout(shared_dir) -> dict[str, tuple[int, ...]]:
    """key -> shape of the official DAB-Deformable-DETR R50 (reference/keys_.../dab.txt)."""
    path = Path(shared_dir) / "reference" / "keys_motr_trackformer_detr" / "dab.txt"
    shapes = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^(\S+) \(([\d, ]*)\)$", line.strip())
        if m:
            shapes[m.group(1)] = tuple(int(x) for x in m.group(2).split(",") if x.strip())
    assert len(shapes) == 604
    return shapes


def test_official_layout_converts_completely(shared_dir):
    shapes = official_layout(shared_dir)
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(s, generator=g) for k, s in shapes.items() if not k.startswith("transformer.decoder.bbox_embed.")}
    for k in shapes:  # box refinement registers the box heads twice
        if k.startswith("transformer.decoder.bbox_embed."):
            sd[k] = sd[k[len("transformer.decoder."):]]
    c = convert(sd)
    cfg = c.config
    assert cfg["method"] == "dab_deformable_detr"
    assert (cfg["num_classes"], cfg["num_queries"], cfg["dim_feedforward"], cfg["backbone_depth"]) == (91, 300, 2048, 50)
    assert cfg["inverse_sigmoid_eps"] == 1e-3 and cfg["anchor_sine_order"] == "yxwh"
    assert len(c.dropped) == 36 and len(c.state_dict) == 604 - 36
    assert torch.equal(c.state_dict["transformer.decoder.anchor_pos.ref_point_head.layers.0.weight"],
                       sd["transformer.decoder.ref_point_head.layers.0.weight"])
    assert torch.equal(c.state_dict["backbone.layer4.2.bn3.running_var"], sd["backbone.0.body.layer4.2.bn3.running_var"])
    del sd["refpoint_embed.weight"]
    with pytest.raises(ConversionError, match="refpoint_embed.weight"):
        convert(sd)


def test_dab_detector_forward_matches_a_written_out_decoder():
    torch.manual_seed(0)
    cfg = DABDetectorConfig(backbone_depth=18, backbone_width=8, hidden_dim=32, nheads=4, num_feature_levels=4,
                            enc_layers=1, dec_layers=3, dim_feedforward=64, num_queries=7, num_classes=3)
    model = DABDeformableDETR(cfg).eval()
    images, masks = torch.randn(2, 3, 64, 96), torch.zeros(2, 64, 96, dtype=torch.bool)
    masks[1, :, 80:] = True  # padding: valid ratios != 1
    with torch.no_grad():
        out = model(images, masks)
        srcs, lm, pos = model.features(images, masks)
        enc = model.transformer.encode(srcs, lm, pos)
        dec = model.transformer.decoder
        tgt = model.tgt_embed.weight[None].expand(2, -1, -1)
        ref = model.refpoint_embed.weight.sigmoid()[None].expand(2, -1, -1)
        vr = torch.cat((enc.valid_ratios, enc.valid_ratios), -1)  # (B, L, 4)
        logits = []
        for lid, layer in enumerate(dec.layers):
            anchor = ref * vr[:, 0][:, None]                        # level-0 anchor
            ys = []  # sine of (y, x, w, h), 16 features each: sin/cos alternating per frequency pair
            for c in (1, 0, 2, 3):
                v = anchor[..., c:c + 1] * 2 * math.pi / 10000 ** (2 * (torch.arange(16) // 2) / 16)
                ys.append(torch.where(torch.arange(16) % 2 == 0, v.sin(), v.cos()))
            raw = dec.anchor_pos.ref_point_head(torch.cat(ys, -1))
            qpos = raw if lid == 0 else dec.anchor_pos.query_scale(tgt) * raw
            tgt = layer(tgt, qpos, ref[:, :, None] * vr[:, None], enc.memory, enc.spatial_shapes,
                        enc.level_start_index, enc.padding_mask)
            logits.append(model.class_embed[lid](tgt))
            r = ref.clamp(1e-3, 1 - 1e-3)  # DAB's inverse sigmoid eps
            ref = (model.bbox_embed[lid](tgt) + torch.log(r / (1 - r))).sigmoid()
    torch.testing.assert_close(out["pred_logits"], logits[-1], rtol=0, atol=1e-5)
    torch.testing.assert_close(out["aux_outputs"][0]["pred_logits"], logits[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(out["inter_references"][-1], ref, rtol=0, atol=1e-5)


def test_cli_convert_then_detector_loader(tmp_path):
    """`trackformers convert --from dab_deformable_detr` -> load_detector gives the same model."""
    from trackformers.cli import main
    from trackformers.models.load import load_detector
    torch.manual_seed(1)
    cfg = DABDetectorConfig(backbone_depth=18, backbone_width=8, hidden_dim=32, nheads=4, num_feature_levels=4,
                            enc_layers=1, dec_layers=2, dim_feedforward=64, num_queries=5, num_classes=2)
    model = DABDeformableDETR(cfg).eval()
    official = {}
    for k, v in model.state_dict().items():  # our names -> the official ones
        k = re.sub(r"^backbone\.", "backbone.0.body.", k)
        official[k.replace("decoder.anchor_pos.", "decoder.")] = v
    for k in list(official):
        if k.startswith("bbox_embed."):
            official["transformer.decoder." + k] = official[k]
    torch.save({"model": official}, tmp_path / "dab.pth")
    assert main(["convert", "--from", "dab_deformable_detr", str(tmp_path / "dab.pth"), "--out", str(tmp_path / "dab"),
                 "--set", "nheads=4"]) == 0
    loaded = load_detector(tmp_path / "dab")
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images)["pred_boxes"], model(images)["pred_boxes"], rtol=0, atol=0)
