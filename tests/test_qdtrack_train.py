"""QDTrack on a tiny Faster R-CNN trains on CPU (SGD + warm-up as configs/qdtrack): the loss falls."""
import torch

from trackformers.engine.train import build_optimizer, lr_factor
from trackformers.engine.train_config import OptimConfig
from trackformers.trackers.registry import build_tracker

TINY = {"method": "qdtrack", "detector": {"backbone_depth": 18, "backbone_width": 8, "fpn_channels": 32,
                                          "fc_channels": 64, "frozen_stages": 0, "rcnn_train_rois": 128,
                                          "rpn_train": {"nms_pre": 300, "max_per_img": 150},
                                          "rpn_test": {"nms_pre": 300, "max_per_img": 150}},
        "track_rois": 64,
        "embed": {"conv_channels": 32, "fc_channels": 64, "embed_channels": 32, "gn_groups": 8}}


def _clip(g, n=3):
    """Two frames of n bright squares on a dark background moving a little, ids kept."""
    frames = []
    xy = torch.rand(n, 2, generator=g) * 0.6 + 0.2
    for t in range(2):
        im = torch.full((3, 96, 128), -1.0)
        c = xy + 0.02 * t
        wh = torch.full((n, 2), 0.18)
        for (cx, cy), (w, h), k in zip(c.tolist(), wh.tolist(), range(n)):
            im[k % 3, int((cy - h / 2) * 96):int((cy + h / 2) * 96), int((cx - w / 2) * 128):int((cx + w / 2) * 128)] = 1.5
        frames.append((im, {"boxes": torch.cat([c, wh], 1), "labels": torch.zeros(n, dtype=torch.long),
                            "ids": torch.arange(n)}))
    return frames


def test_qdtrack_loss_decreases_with_sgd_warmup():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = build_tracker(TINY)
    data = [_clip(g) for _ in range(2)]
    optim = OptimConfig(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4, lr_backbone_mult=1.0,
                        warmup_iters=5, warmup_ratio=0.1, lr_drop=[100], clip_max_norm=35)
    opt = build_optimizer(model, optim)
    assert isinstance(opt, torch.optim.SGD)
    history = []
    model.train()
    for step in range(20):
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(optim, 0, step)
        losses = model.training_loss(data)
        opt.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), optim.clip_max_norm)
        opt.step()
        history.append({k: float(v) for k, v in losses.items()})
    first = sum(h["loss"] for h in history[:3]) / 3
    last = sum(h["loss"] for h in history[-3:]) / 3
    assert last < 0.7 * first, (first, last)
    assert history[-1]["loss_track"] < history[0]["loss_track"]
    assert abs(lr_factor(optim, 0, 0) - 0.1) < 1e-9 and lr_factor(optim, 0, 5) == 1.0
