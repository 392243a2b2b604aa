"""The IoU-Hungarian baseline: association and track lifecycle against hand-worked examples."""
import torch

from trackformers.config import from_dict
from trackformers.trackers.baseline import IoUBaseline, IoUBaselineConfig, associate

TINY_DETECTOR = dict(backbone_depth=18, backbone_width=8, hidden_dim=32, nheads=2, enc_layers=1, dec_layers=1,
                     dim_feedforward=32, num_queries=10, num_feature_levels=1)


def tiny_baseline(**kw) -> IoUBaseline:
    torch.manual_seed(0)
    cfg = {"detector": TINY_DETECTOR, "input": {"short_side": 64, "max_size": 96}, **kw}
    return IoUBaseline(from_dict(IoUBaselineConfig, cfg))


def band(x1, x2):
    """A box spanning x1..x2 and y 0..1: IoUs of bands are 1-D interval overlaps."""
    return [x1, 0.0, x2, 1.0]


def test_association_maximises_total_iou_among_allowed_pairs():
    # IoU(A, d1) = 8/12 = .667, IoU(A, d2) = 5/15 = .333, IoU(B, d1) = 6/14 = .429, IoU(B, d2) = 3/17 = .176.
    # Greedy would take A-d1 and leave B unmatched (B-d2 is below 0.3); the optimum is A-d2 + B-d1 (0.762).
    tracks = torch.tensor([band(0, 10), band(-2, 8)])
    dets = torch.tensor([band(2, 12), band(5, 15)])
    ti, di = associate(tracks, dets, iou_thresh=0.3)
    assert sorted(zip(ti.tolist(), di.tolist())) == [(0, 1), (1, 0)]
    # With a threshold above .34, A-d2 is not allowed: A takes d1 and B stays unmatched.
    ti, di = associate(tracks, dets, iou_thresh=0.34)
    assert list(zip(ti.tolist(), di.tolist())) == [(0, 0)]
    # Different classes never match.
    ti, di = associate(tracks, dets, 0.3, torch.tensor([0, 1]), torch.tensor([1, 1]))
    assert list(zip(ti.tolist(), di.tolist())) == [(1, 0)]
    assert associate(tracks[:0], dets, 0.3)[0].numel() == 0


def cxcywh(x1, y1, x2, y2):
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def dets(model, *rows):
    """rows of (xyxy normalised, score) -> detection rows (class 0)."""
    return model.rows(torch.tensor([cxcywh(*b) for b, _ in rows]).reshape(-1, 4),
                      torch.tensor([s for _, s in rows]), torch.zeros(len(rows), dtype=torch.long))


def test_lifecycle_births_misses_deaths_and_ids_never_reused():
    model = tiny_baseline(score_thresh=0.6, iou_thresh=0.3, miss_tolerance=2)
    a, a2, b = (0.1, 0.1, 0.3, 0.5), (0.12, 0.1, 0.32, 0.5), (0.6, 0.2, 0.8, 0.6)
    state = model.new_state()
    frames = [
        dets(model, (a, 0.9), (b, 0.5)),   # a born as 0; b too weak to be born
        dets(model, (a2, 0.55), (b, 0.7)),  # a2 continues 0 (matching needs no birth score); b born as 1
        dets(model, (b, 0.8)),              # 0 missed once; 1 continues
        dets(model),                      # 0 missed twice -> ends; 1 missed once
        dets(model, (a, 0.9), (b, 0.9)),    # a is a new track (id 2, 0 is never reused); b continues 1
    ]
    expected_ids = [[0], [0, 1], [1], [], [1, 2]]
    expected_boxes = [[a], [a2, b], [b], [], [b, a]]
    expected_scores = [[0.9], [0.55, 0.7], [0.8], [], [0.9, 0.9]]
    for frame, ids, boxes, scores in zip(frames, expected_ids, expected_boxes, expected_scores):
        result, state = model.update(state, frame)
        assert result["ids"].tolist() == ids
        torch.testing.assert_close(result["boxes"], torch.tensor([cxcywh(*bx) for bx in boxes]).reshape(-1, 4))
        torch.testing.assert_close(result["scores"], torch.tensor(scores))
    assert state.ids.tolist() == [1, 2] and state.context.next_id == 3 and state.misses.tolist() == [0, 0]


def test_track_runs_the_detector_and_keeps_confident_boxes():
    model = tiny_baseline(det_thresh=0.0, score_thresh=0.0, max_detections=4).eval()
    found = model.detect(torch.randn(3, 64, 96))
    assert found.boxes.shape == (4, 4) and bool((found.scores[:-1] >= found.scores[1:]).all())
    result, state = model.track(torch.randn(3, 64, 96), model.new_state())
    assert result["ids"].tolist() == [0, 1, 2, 3] and state.context.next_id == 4


def test_training_loss_trains_the_detector_and_its_weights_start_a_motr(tmp_path):
    from trackformers.checkpoint import save_model
    from trackformers.engine.train import load_pretrained
    from trackformers.trackers.motr import MOTR, MOTRConfig
    from trackformers.trackers.registry import tracker_config
    model = tiny_baseline()
    torch.manual_seed(1)
    target = {"boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3]]), "labels": torch.tensor([0]), "ids": torch.tensor([5])}
    clips = [[(torch.randn(3, 64, 96), target), (torch.randn(3, 64, 96), target)]]
    losses = model.training_loss(clips)
    assert {"loss", "loss_ce", "loss_bbox", "loss_giou"} <= set(losses) and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert model.detector.class_embed[0].weight.grad.abs().sum() > 0
    # The detector-pretraining stage: a MOTR with the same detector takes every detector weight.
    save_model(tmp_path / "det", model.state_dict(), tracker_config(model, "iou_baseline"))
    motr = MOTR(from_dict(MOTRConfig, {"detector": TINY_DETECTOR, "qim": {"hidden_dim": 32}}))
    copied, _ = load_pretrained(motr, str(tmp_path / "det"))
    assert copied > 0
    for k, v in model.detector.backbone.state_dict().items():
        assert motr.detector.backbone.state_dict()[k].equal(v)
