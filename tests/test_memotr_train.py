"""A tiny MeMOTR trains on a synthetic clip: the loss falls and tracks keep their identities."""
import torch

from trackformers.config import from_dict
from trackformers.trackers.memotr import MeMOTR

TINY = {"detector": {"backbone_depth": 18, "backbone_width": 8, "frozen_stages": 0, "hidden_dim": 32, "nheads": 4,
                     "num_feature_levels": 3, "enc_layers": 1, "dec_layers": 3, "dim_feedforward": 64,
                     "num_queries": 10, "num_classes": 1, "with_box_refine": True, "dropout": 0.0},
        "size_divisibility": 32}


def synthetic_clip(length: int, h: int = 64, w: int = 96):
    """Two coloured rectangles moving linearly on a dark background; ids 3 and 7."""
    frames = []
    for t in range(length):
        image = torch.full((3, h, w), -1.0)
        boxes = torch.tensor([[0.30 + 0.05 * t, 0.50, 0.25, 0.40], [0.70, 0.40 - 0.03 * t, 0.20, 0.30]])
        for (cx, cy, bw, bh), channel in zip(boxes.tolist(), (0, 2)):
            image[channel, int((cy - bh / 2) * h):int((cy + bh / 2) * h), int((cx - bw / 2) * w):int((cx + bw / 2) * w)] = 2.0
        frames.append((image, {"boxes": boxes, "labels": torch.zeros(2, dtype=torch.long), "ids": torch.tensor([3, 7]),
                               "size": torch.tensor([h, w]), "orig_size": torch.tensor([h, w])}))
    return frames


def test_loss_decreases_and_tracks_keep_ids():
    torch.manual_seed(0)
    model = MeMOTR(from_dict(MeMOTR.Config, TINY)).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = [synthetic_clip(3), synthetic_clip(2)]  # several clips of different lengths in one batch
    losses = []
    for _ in range(25):
        out = model.training_loss(batch)
        assert torch.isfinite(out["loss"]) and {"loss_ce", "loss_bbox", "loss_giou", "aux0/loss_ce"} <= set(out)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses

    # The same per-frame step as inference: frame 0 matches detect rows to both objects; those
    # rows become tracks that carry the objects' ids into frame 1 and are supervised by them.
    clip = synthetic_clip(2)
    state = model.new_state()
    out = model.step(clip[0][0][None], None, [state])[0]
    from trackformers.trackers.assignment import ClipLoss
    rows = model.supervise(out, clip[0][1], ClipLoss())
    assert sorted(rows.ids[rows.ids >= 0].tolist()) == [3, 7]
    selected = model.training_tracks(out, rows)
    # the original's filter: a propagated row whose box overlaps its target less than 0.5 loses its id
    assert ((selected.ids >= 0) == (selected.iou >= 0.5)).all()
    model.cfg.train_iou_thresh = 0.0  # keep both (a few steps do not localise to IoU 0.5)
    state = model.training_tracks(out, rows)
    assert {3, 7} <= set(state.ids.tolist())
    out = model.step(clip[1][0][None], None, [state])[0]
    rows = model.supervise(out, clip[1][1], ClipLoss())
    tracks = rows[model.cfg.detector.num_queries:]
    for tid in (3, 7):  # a track keeps its identity's target; no detect row takes that object again
        row = tracks[tracks.ids == tid]
        assert clip[1][1]["ids"][row.gt_idx].tolist() == [tid]
    assert (rows.ids[:model.cfg.detector.num_queries] < 0).all()


def test_inference_ids_are_never_reused():
    torch.manual_seed(0)
    model = MeMOTR(from_dict(MeMOTR.Config, {**TINY, "det_score_thresh": 0.0, "track_score_thresh": 2.0,
                                             "miss_tolerance": 1})).eval()
    state, seen = model.new_state(), []
    for image, _ in synthetic_clip(3):
        result, state = model.track(image, state)
        # threshold 0: every detect query is born; keep-alive impossible: every track dies next frame
        assert len(state) == model.cfg.detector.num_queries
        seen.append(state.ids.tolist())
    assert seen == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]


def test_deformable_detr_variant_trains_and_tracks():
    """use_dab=false: Deformable DETR queries (positional half + content), 2-d points in the
    detection-only layer, the updater's learned positional half."""
    torch.manual_seed(0)
    model = MeMOTR(from_dict(MeMOTR.Config, {**TINY, "use_dab": False, "update_thresh": 0.0})).train()
    out = model.training_loss([synthetic_clip(2)])
    out["loss"].backward()
    grads = [p.grad for n, p in model.named_parameters() if "linear_pos1" in n or "reference_points" in n]
    assert len(grads) == 4 and all(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    state = model.new_state()
    assert state.queries.shape[1] == 2 * 32
    model.cfg.det_score_thresh = 0.0  # every detect query is born
    for image, _ in synthetic_clip(2):
        result, state = model.track(image, state)
    assert len(state) == 20 and state.ids.tolist() == list(range(20))


def test_gradient_checkpointing_changes_nothing():
    """Recomputing the encoder and decoder in backward gives the same loss and gradients."""
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = MeMOTR(from_dict(MeMOTR.Config, {**TINY, "grad_checkpointing": checkpointing})).train()
        out = model.training_loss([synthetic_clip(3)])
        out["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_track_dropping_and_false_positive_insertion():
    """TP_DROP_RATE / FP_INSERT_RATE selection: certain drops and certain insertions."""
    from trackformers.trackers.state import TrackState
    torch.manual_seed(0)
    model = MeMOTR(from_dict(MeMOTR.Config, TINY))
    C = 32
    boxes = torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]])

    def rows(ids, iou, boxes):
        r = TrackState.new_rows(torch.randn(len(ids), C), torch.randn(len(ids), 4), C, 1, model._memory(len(ids), boxes))
        return r.replace(ids=torch.tensor(ids), iou=torch.tensor(iou), boxes=boxes)

    tracks = rows([4, 5, 6], [0.9, 0.3, 0.8], boxes)        # track 5 is badly localised: not propagated
    unmatched = rows([-1, -1, -1], [0.0, 0.0, 0.0],
                     torch.tensor([[0.52, 0.5, 0.1, 0.1], [0.9, 0.1, 0.1, 0.1], [0.21, 0.2, 0.1, 0.1]]))
    model.cfg.fp_insert_rate = 1.0                           # every kept track brings its nearest FP
    out = model.augmented_tracks(tracks, unmatched)
    assert out.ids.tolist() == [4, 6, -1, -1]
    torch.testing.assert_close(out.boxes[2:], unmatched.boxes[[0, 2]])  # sorted unique: rows 0 (near 6), 2 (near 4)
    model.cfg.tp_drop_rate, model.cfg.fp_insert_rate = 1.0, 0.0  # every track dropped
    assert len(model.augmented_tracks(tracks, unmatched)) == 0
