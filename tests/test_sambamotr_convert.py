"""`convert --from sambamotr` on official-layout state dicts built from the reference key lists
(every official key and shape, random values): all keys mapped or dropped, the config read from
the shapes, the Samba tensors landing where the official names say."""
import os

import pytest
import torch

from trackformers.config import from_dict
from trackformers.convert.sambamotr import convert
from trackformers.trackers.sambamotr import SambaMOTR


def official_from_key_list(shared_dir, variant):
    path = os.path.join(shared_dir, "reference", "keys_memotr_samba_motip", f"keys_sambamotr_{variant}.tsv")
    gen = torch.Generator().manual_seed(0)
    sd = {}
    for line in open(path):
        key, shape = line.rstrip("\n").split("\t")
        shape = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
        sd[key] = torch.randn(shape, generator=gen).half()  # the official files are float16 or 32
    for key in sd:  # box refinement registers the box heads twice: the same tensors
        if key.startswith("transformer.decoder.bbox_embed."):
            sd[key] = sd[key[len("transformer.decoder."):]]
    return sd


@pytest.mark.parametrize("variant", ["dab", "ddetr"])
def test_official_layout_converts_and_loads(shared_dir, variant):
    official = official_from_key_list(shared_dir, variant)
    assert len(official) == (754 if variant == "dab" else 753)
    c = convert(official, ["miss_tolerance=45"] if variant == "ddetr" else [])
    cfg = c.config
    assert cfg["method"] == "sambamotr" and cfg["use_dab"] is (variant == "dab")
    assert cfg["detector"]["dim_feedforward"] == (2048 if variant == "dab" else 1024)  # from the shapes
    assert cfg["detector"]["num_queries"] == 300 and cfg["detector"]["num_classes"] == 1
    assert (cfg["state_dim"], cfg["expand"], cfg["conv_dim"], cfg["samba_num_layers"], cfg["samba_num_attn_layers"],
            cfg["samba_ffn_dim"], cfg["with_self_attn"]) == (16, 2, 4, 4, 1, 128, True)
    assert cfg["miss_tolerance"] == (45 if variant == "ddetr" else 50)
    assert set(c.dropped) == {k for k in official if k.startswith("transformer.decoder.bbox_embed.")}
    assert len(c.state_dict) + len(c.dropped) == len(official)

    from_dict(SambaMOTR.Config, {k: v for k, v in cfg.items() if k != "method"})  # a valid config
    # (convert already checked every key and shape against the model built from that config)
    qu = "query_updater.sequence_model.layers.3.mixer."
    for ours, theirs in [("query_updater.sequence_model.layers.3.mixer.self_attn_layers.0.k_proj_weight",
                          qu + "self_attn_layers.0.k_proj_weight"),
                         ("query_updater.sequence_model.layers.0.mixer.A_log", "query_updater.sequence_model.layers.0.mixer.A_log"),
                         ("query_updater.norm_emb.weight", "query_updater.norm_emb.weight"),
                         ("detector.tgt_embed.weight" if variant == "dab" else "detector.query_embed.weight", "det_query_embed"),
                         ("detector.backbone.layer4.2.bn3.running_var", "backbone.backbone.backbone.layer4.2.bn3.running_var")]:
        assert torch.equal(c.state_dict[ours], official[theirs].float()), ours
    if variant == "ddetr":
        assert torch.equal(c.state_dict["query_updater.norm_pos.bias"], official["query_updater.norm_pos.bias"].float())


def test_a_memotr_checkpoint_is_refused_by_name():
    from trackformers.convert.common import ConversionError
    official = {"det_query_embed": torch.zeros(300, 256), "det_anchor": torch.zeros(300, 4)}
    with pytest.raises(ConversionError, match="A_log|level_embed"):
        convert(official)


def test_init_from_a_coco_dab_detector():
    """A COCO DAB-Deformable-DETR checkpoint starts a SambaMOTR: detector by name, the person
    row of the class head, the Samba updater at its own init."""
    import re

    from trackformers.models.dab import DABDeformableDETR, DABDetectorConfig
    torch.manual_seed(0)
    det = DABDeformableDETR(DABDetectorConfig(backbone_depth=18, backbone_width=8, hidden_dim=32, nheads=8,
                                              enc_layers=1, dec_layers=2, dim_feedforward=64, num_queries=6,
                                              num_classes=91))
    official = {re.sub(r"^backbone\.", "backbone.0.body.", k).replace("decoder.anchor_pos.", "decoder."): v
                for k, v in det.state_dict().items()}
    for k in [k for k in official if k.startswith("bbox_embed.")]:
        official["transformer.decoder." + k] = official[k]
    c = convert(official, ["samba_num_layers=2"])
    assert c.config["method"] == "sambamotr" and c.config["samba_num_layers"] == 2
    assert torch.equal(c.state_dict["detector.class_embed.1.weight"], official["class_embed.1.weight"][1:2])
    model = SambaMOTR(from_dict(SambaMOTR.Config, {k: v for k, v in c.config.items() if k != "method"}))
    model.load_state_dict(c.state_dict)  # complete, the Samba updater included
    assert "query_updater.sequence_model.layers.1.mixer.A_log" in c.state_dict
