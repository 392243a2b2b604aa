"""`convert --from sambamotr` on official-layout state dicts built from the reference key lists
(every official key and shape, random values): all keys mapped or dropped, the config read from
the shapes, the Samba tensors landing where the official names say."""
import os
import re

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
    samba = "query_updater.sequence_model.layers."
    same_name = [samba + "3.mixer.self_attn_layers.0.k_proj_weight", samba + "0.mixer.A_log",
                 samba + "1.mixer.conv1d.weight", "query_updater.norm_emb.weight"]
    renamed = [("detector.tgt_embed.weight" if variant == "dab" else "detector.query_embed.weight", "det_query_embed"),
               ("detector.backbone.layer4.2.bn3.running_var", "backbone.backbone.backbone.layer4.2.bn3.running_var")]
    for ours, theirs in [(k, k) for k in same_name] + renamed:
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


def test_convert_then_track_cli_reproduces_the_model(tmp_path):
    """An official-layout file of a tiny SambaMOTR -> `trackformers convert --from sambamotr` ->
    `trackformers track`: the written tracks are those of the original model, tracked here."""
    import cv2
    import numpy as np

    from test_memotr_convert import TINY, TO_OFFICIAL
    from trackformers import cli
    from trackformers.data.mot import read_mot
    from trackformers.trackers.registry import StreamingTracker

    torch.manual_seed(0)
    settings = {"samba_num_layers": 2, "samba_ffn_dim": 16, "det_score_thresh": 0.0, "track_score_thresh": 0.0,
                "update_thresh": 0.01, "result_score_thresh": 0.0, "area_threshold": 0.0}  # untrained: scores ~ 0.01
    model = SambaMOTR(from_dict(SambaMOTR.Config, {**TINY, **settings})).eval()
    official = {}
    for k, v in model.state_dict().items():
        for pattern, repl in TO_OFFICIAL:
            k, n = re.subn(pattern, repl, k)
            if n:
                break
        official[k] = v
    for k in [k for k in official if k.startswith("bbox_embed.")]:
        official["transformer.decoder." + k] = official[k]
    torch.save({"model": official}, tmp_path / "sambamotr.pth")
    runtime = ("det_", "track_", "update", "result", "area")  # not in the shapes: given to convert
    sets = ["detector.backbone_depth=18"] + [f"{k}={v}" for k, v in settings.items() if k.startswith(runtime)]
    args = ["convert", "--from", "sambamotr", tmp_path / "sambamotr.pth", "--out", tmp_path / "converted"]
    assert cli.main([str(a) for a in args] + [f"--set={s}" for s in sets]) == 0

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    (tmp_path / "clip").mkdir()
    for i, im in enumerate(images, 1):
        cv2.imwrite(str(tmp_path / "clip" / f"{i:06d}.png"), im[..., ::-1])
    assert cli.main(["track", str(tmp_path / "clip"), "--model", str(tmp_path / "converted"), "--out",
                     str(tmp_path / "out"), "--no-progress"]) == 0
    got = read_mot(tmp_path / "out" / "clip.txt")

    direct = StreamingTracker(model)  # the original model, before the round trip
    want = []
    for t, im in enumerate(images, 1):
        r = direct.step(im)
        for tid, (x1, y1, x2, y2), s in zip(r.ids.tolist(), r.boxes.tolist(), r.scores.tolist()):
            want.append([t, tid, x1, y1, x2 - x1, y2 - y1])
    want = np.array(want)
    assert len(want) > 4 and got.shape[0] == len(want)
    np.testing.assert_array_equal(got[:, :2], want[:, :2])
    np.testing.assert_allclose(got[:, 2:6], want[:, 2:6], atol=0.006)  # written with 2 decimals
