"""ResNet backbone: torchvision parameter names, official Deformable DETR weights by prefix."""
import os

import pytest
import torch

from trackformers.checkpoint import load_official
from trackformers.models.backbone import FrozenBatchNorm2d, ResNet, build_backbone, downsample_mask


def torchvision_resnet_keys(depth):
    """torchvision's ResNet state-dict keys (without fc), written from the architecture rules."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    convs = 2 if depth < 50 else 3
    bn = ["weight", "bias", "running_mean", "running_var"]
    keys = ["conv1.weight"] + [f"bn1.{b}" for b in bn]
    for stage, n in enumerate(blocks, 1):
        for i in range(n):
            for c in range(1, convs + 1):
                keys.append(f"layer{stage}.{i}.conv{c}.weight")
                keys += [f"layer{stage}.{i}.bn{c}.{b}" for b in bn]
            # A projection shortcut wherever the shape changes: stage 1 of the bottleneck
            # nets (64 -> 256 channels) and the first block of stages 2-4.
            if i == 0 and (stage > 1 or depth >= 50):
                keys.append(f"layer{stage}.0.downsample.0.weight")
                keys += [f"layer{stage}.0.downsample.1.{b}" for b in bn]
    return keys


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_parameter_names_are_torchvision(depth):
    net = ResNet(depth, return_stages=(2, 3, 4))
    assert list(net.state_dict()) == torchvision_resnet_keys(depth)


def test_channels_strides_and_dilation():
    x = torch.randn(1, 3, 64, 96)
    net = build_backbone(50, width=8)
    assert net.num_channels == [64, 128, 256] and net.strides == [8, 16, 32]
    assert [tuple(f.shape) for f in net(x)] == [(1, 64, 8, 12), (1, 128, 4, 6), (1, 256, 2, 3)]
    dc5 = build_backbone(18, width=8, dilation=True)
    assert dc5.strides == [8, 16, 16]
    assert dc5.layer4[0].conv2.dilation == (1, 1) and dc5.layer4[1].conv2.dilation == (2, 2)
    assert [tuple(f.shape) for f in dc5(x)][-1] == (1, 64, 4, 6)
    assert build_backbone(50, width=8, num_feature_levels=1).num_channels == [256]


def test_frozen_stages():
    net = build_backbone(18, width=8, frozen_stages=1)
    trainable = {n.split(".")[0] for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"layer2", "layer3", "layer4"}
    assert not any(p.requires_grad for p in build_backbone(18, width=8, frozen_stages=-1).parameters())


def test_frozen_batchnorm_formula():
    bn = FrozenBatchNorm2d(3)
    bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    bn.running_mean.copy_(torch.tensor([0.5, 0.0, 2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    x = torch.randn(2, 3, 4, 4)
    ref = torch.nn.functional.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, 1e-5)
    torch.testing.assert_close(bn(x), ref)
    # torchvision checkpoints carry num_batches_tracked; it is ignored, not an error
    state = dict(bn.state_dict(), num_batches_tracked=torch.tensor(7))
    FrozenBatchNorm2d(3).load_state_dict(state)


def test_mask_downsampling_is_nearest():
    mask = torch.zeros(1, 10, 10, dtype=torch.bool)
    mask[:, :, 7:] = True
    # nearest: output column i reads input column floor(i * 10 / 5) = 0, 2, 4, 6, 8
    assert downsample_mask(mask, (5, 5))[0, 0].tolist() == [False, False, False, False, True]


def test_official_backbone_loads_by_prefix_and_matches(shared_dir):
    """The fixture's R50 backbone (keys backbone.0.body.*) loads with no key left over and
    reproduces the official C3/C4/C5 probes on the fixture's first image."""
    folder = os.path.join(shared_dir, "fixtures", "deformable_detr")
    sd = load_official(os.path.join(folder, "checkpoint_plain_fp16.pt"))
    prefix = "backbone.0.body."
    net = build_backbone(50)
    net.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}, strict=True)
    record = torch.load(os.path.join(folder, "outputs.pt"), weights_only=False)["outputs"]["plain"]["single0"]
    image = torch.load(os.path.join(folder, "images.pt"), weights_only=False)["resized_rgb_uint8"][0]
    x = image.permute(2, 0, 1).float().div(255)
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        feats = net(x[None])
    for feat, probe in zip(feats, record["backbone"]):
        assert list(feat.shape) == probe["shape"]
        torch.testing.assert_close(feat.flatten()[probe["flat_index"]], probe["values"].float(), rtol=1e-4, atol=1e-4)
