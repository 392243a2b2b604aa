"""`convert --from qdtrack` on synthetic state dicts in the official key layouts (no official
checkpoint is available here), plus the official test pipeline's resize and normalisation."""
import numpy as np
import pytest
import torch

from trackformers.convert.cli import convert_file
from trackformers.convert.qdtrack import convert
from trackformers.trackers.qdtrack import QDTrack, QDTrackConfig
from trackformers.trackers.registry import FramePreparer, load_model_file

CFG = {"detector": {"backbone_width": 8, "fpn_channels": 32, "fc_channels": 64},
       "embed": {"conv_channels": 32, "fc_channels": 48, "embed_channels": 16, "gn_groups": 8}}


def _model():
    from trackformers.config import from_dict
    torch.manual_seed(0)
    return QDTrack(from_dict(QDTrackConfig, CFG)).eval()


def _official(model, det, embed):
    """Our weights under the official names (reference §4.7), BN counters added, conv1 as BGR."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("detector."):
            k = det + k[len("detector."):]
        elif k.startswith("embed_head."):
            k = embed + k[len("embed_head."):]
        sd[k] = v.clone()
        if k.endswith("running_var"):
            sd[k[:-len("running_var")] + "num_batches_tracked"] = torch.tensor(1000)
    sd[det + "backbone.conv1.weight"] = sd[det + "backbone.conv1.weight"].flip(1)
    return sd


@pytest.mark.parametrize("det,embed", [("detector.", "track_head.embed_head."),
                                       ("detector.", "track_head.track_head."),
                                       ("", "roi_head.track_head.")])
def test_convert_layouts_reproduce_the_model(det, embed):
    model = _model()
    sd = _official(model, det, embed)
    # the official names and shapes of the reference's table
    assert sd[det + "rpn_head.rpn_cls.weight"].shape == (3, 32, 1, 1)
    assert sd[det + "rpn_head.rpn_reg.weight"].shape == (12, 32, 1, 1)
    assert sd[det + "roi_head.bbox_head.fc_cls.weight"].shape == (2, 64)
    assert sd[det + "roi_head.bbox_head.fc_reg.weight"].shape == (4, 64)
    assert sd[det + "neck.lateral_convs.3.conv.weight"].shape == (32, 256, 1, 1)
    assert sd[embed + "convs.3.gn.weight"].shape == (32,) and embed + "convs.0.conv.bias" not in sd
    assert sd[det + "backbone.layer1.0.downsample.1.num_batches_tracked"].shape == ()
    out = convert(sd, ["embed.gn_groups=8"])
    assert out.config["detector"]["backbone_depth"] == 50 and out.config["detector"]["num_classes"] == 1
    assert out.config["embed"]["embed_channels"] == 16 and out.config["detector"]["backbone_style"] == "caffe"
    assert all("num_batches_tracked" in k for k in out.dropped)
    for k, v in model.state_dict().items():
        assert torch.equal(out.state_dict[k], v), k


def test_convert_file_then_track(tmp_path):
    model = _model()
    torch.save({"meta": {"epoch": 4}, "state_dict": _official(model, "detector.", "track_head.embed_head.")},
               tmp_path / "qdtrack.pth")
    convert_file("qdtrack", tmp_path / "qdtrack.pth", tmp_path / "qd", ["embed.gn_groups=8", "init_score_thr=0.0"])
    loaded, _ = load_model_file(tmp_path / "qd")
    assert loaded.cfg.init_score_thr == 0.0
    image = torch.randn(3, 64, 96)
    a, _ = loaded.track(image, loaded.new_state(), (128, 192))
    model.cfg.init_score_thr = 0.0
    b, _ = model.track(image, model.new_state(), (128, 192))
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_official_test_pipeline_resize_and_normalisation():
    prep = FramePreparer(QDTrackConfig().input)
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    x = prep(frame)
    assert x.shape == (3, 612, 1088)  # keep ratio into (1088, 1088): 1920 * 1088 / 1920, int(1080 * 0.5667 + 0.5)
    small = prep(frame[:100, :200])   # upscaled: long side to 1088 (short side 544 <= 1088)
    assert small.shape == (3, 544, 1088)
    # RGB in [0, 1] with the rescaled mean / std == BGR 0-255 minus the official BGR mean
    flat = np.ascontiguousarray(frame[:4, :4])
    bgr = flat[..., ::-1].astype(np.float32) - np.array([103.53, 116.28, 123.675], np.float32)
    ours = prep.normalise([flat], [{"boxes": np.zeros((0, 4), np.float32)}])[0][0].numpy()  # (3, h, w) RGB
    np.testing.assert_allclose(ours[::-1].transpose(1, 2, 0), bgr, atol=2e-3)
