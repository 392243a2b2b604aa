"""TrackFormer training: frame pairs, three-step matching, track-query augmentation, the loop.

No fixture covers training; the tests check what the paper's recipe implies on tiny models:
the loss falls on synthetic pairs, tracks keep their identity's target, false-positive and
vanished track queries learn background, the FN/FP sampling follows the official counts, and
`trackformers train`-style training on the synthetic benchmark resumes bit-identically.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trackformers.config import from_dict, load_yaml, merge
from trackformers.trackers.trackformer import Trackformer

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "trackformer"
TINY = {"detector": {"backbone_depth": 18, "backbone_width": 8, "frozen_stages": 0, "hidden_dim": 96, "nheads": 4,
                     "num_feature_levels": 2, "enc_layers": 1, "dec_layers": 2, "dim_feedforward": 64,
                     "num_queries": 8, "num_classes": 1, "with_box_refine": True, "dropout": 0.0,
                     "offset_normalizer_hw": False},
        "size_divisibility": 32}


def tiny(**changes) -> Trackformer:
    return Trackformer(from_dict(Trackformer.Config, merge(TINY, changes)))


def pair(shift: float = 0.04, h: int = 64, w: int = 96):
    """Two frames of two rectangles (ids 3, 7) moving by `shift`."""
    frames = []
    for t in range(2):
        image = torch.full((3, h, w), -1.0)
        boxes = torch.tensor([[0.30 + shift * t, 0.50, 0.25, 0.40], [0.70, 0.40 - shift * t, 0.20, 0.30]])
        for (cx, cy, bw, bh), ch in zip(boxes.tolist(), (0, 2)):
            image[ch, int((cy - bh / 2) * h):int((cy + bh / 2) * h), int((cx - bw / 2) * w):int((cx + bw / 2) * w)] = 2.0
        frames.append((image, {"boxes": boxes, "labels": torch.zeros(2, dtype=torch.long), "ids": torch.tensor([3, 7])}))
    return frames


@pytest.mark.parametrize("multi_frame, steps", [(True, 20), (False, 3)])
def test_loss_falls_on_frame_pairs(multi_frame, steps):
    """Multi-frame: the loss falls; single-frame Trackformer (multi-frame off) trains too."""
    torch.manual_seed(0)
    model = tiny(multi_frame_attention=multi_frame).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = [pair(), pair(-0.03)]
    losses = []
    for _ in range(steps):
        out = model.training_loss(batch)
        assert {"loss", "loss_ce", "loss_bbox", "loss_giou", "aux0/loss_ce"} <= set(out)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert all(math.isfinite(v) for v in losses)
    if steps >= 8:
        assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4, losses


def test_three_step_matching():
    """Track queries take their identity's target whatever the cost, false-positive (-1) and
    vanished (99) track queries get none, the object queries share the remaining targets."""
    torch.manual_seed(0)
    model = tiny()
    target = {"boxes": torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2]]), "labels": torch.zeros(2, dtype=torch.long),
              "ids": torch.tensor([3, 7])}
    track_ids = torch.tensor([7, -1, 99])
    n = 3 + model.cfg.detector.num_queries
    boxes = torch.rand(n, 4) * 0.5 + 0.25
    boxes[1] = target["boxes"][0]  # the FP query sits exactly on target 0: it must still not take it
    gt_idx = model.assign(track_ids, torch.zeros(n, 1), boxes, target)
    assert gt_idx[:3].tolist() == [1, -1, -1]
    assert (gt_idx[3:] == 0).sum() == 1 and (gt_idx[3:] == 1).sum() == 0


def test_track_query_sampling_follows_the_official_counts():
    """One kept count for the batch in [0, min matches], FPs <= ceil(0.1 * kept), drawn from
    unmatched outputs; the kept queries carry their previous targets' ids."""
    model = tiny(track_query_false_positive_prob=0.5)
    Q = model.cfg.detector.num_queries
    prev_targets = [{"boxes": torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1]]),
                     "labels": torch.zeros(3, dtype=torch.long), "ids": torch.tensor([1, 2, 3])},
                    {"boxes": torch.tensor([[0.3, 0.3, 0.1, 0.1], [0.6, 0.6, 0.1, 0.1]]),
                     "labels": torch.zeros(2, dtype=torch.long), "ids": torch.tensor([5, 6])}]
    targets = [{"ids": torch.tensor([2, 3, 4])}, {"ids": torch.tensor([6])}]
    prev_out = [(torch.randn(2, Q, 1), torch.rand(2, Q, 4) * 0.5 + 0.25, torch.randn(Q, 96)) for _ in range(2)]
    seen_keep = set()
    for seed in range(30):
        torch.manual_seed(seed)
        queries = model.sample_track_queries(prev_out, prev_targets, targets)
        kept = [int((ids >= 0).sum()) for ids, _, _ in queries]
        assert kept[0] == kept[1] <= 2  # the batch shares one count, at most min(3, 2) matches
        seen_keep.add(kept[0])
        for (ids, embeds, boxes), pt, (_, bx, hs) in zip(queries, prev_targets, prev_out):
            n_fp = int((ids < 0).sum())
            assert n_fp <= math.ceil(0.5 * kept[0]) and len(embeds) == len(boxes) == len(ids)
            assert set(ids[ids >= 0].tolist()) <= set(pt["ids"].tolist())
            rows = [int(torch.nonzero((hs == e).all(1))[0]) for e in embeds]  # the outputs they were made from
            assert len(set(rows)) == len(rows) and torch.equal(boxes, bx[-1, rows])
    assert seen_keep == {0, 1, 2}


def test_train_on_the_synthetic_benchmark_resumes_exactly(tmp_path):
    from trackformers.data.synthetic import generate_synthetic
    from trackformers.engine.train import TrainConfig, train

    generate_synthetic(str(tmp_path / "synth"), "simple", seqs=1, frames=8, size=(96, 64), seed=0)
    cfg = load_yaml(CONFIGS / "synth.yaml")
    cfg["model"] = merge(cfg["model"], TINY)
    cfg["data"] = merge(cfg["data"], {"datasets": [{"name": "synthetic", "root": str(tmp_path / "synth"), "split": "train"}],
                                      "scales": [64], "max_size": 96, "crop_scales": [64], "crop_size": [48, 64]})

    def config(out, **kw):
        return from_dict(TrainConfig, {**cfg, "epochs": 1, "batch_size": 2, "device": "cpu", "seed": 3,
                                       "log_interval": 1, "out": str(out), **kw})
    full = train(config(tmp_path / "full"))
    train(config(tmp_path / "split", max_steps=2))
    resumed = train(config(tmp_path / "split"), resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
