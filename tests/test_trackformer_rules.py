"""TrackFormer's runtime rules on hand-made rows: greedy NMS against a brute-force loop, and
the paths the fixture clip does not take (steps_termination > 1, embedding re-id)."""
import torch

from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.trackers.state import Context, TrackState
from trackformers.ops.nms import nms_mask as greedy_nms
from trackformers.trackers.trackformer import Thresholds, alive, step_tracks


def loop_nms(boxes, scores, thresh):
    """torchvision's nms written as the textbook loop (stable order for equal scores)."""
    order = sorted(range(len(boxes)), key=lambda i: -float(scores[i]))
    iou = box_iou(boxes, boxes)[0]
    kept, removed = [], set()
    for i in order:
        if i in removed:
            continue
        kept.append(i)
        removed |= {j for j in order if float(iou[i, j]) > thresh and j != i}
    return sorted(kept)


def test_greedy_nms_matches_the_loop():
    g = torch.Generator().manual_seed(0)
    for trial in range(40):
        n = int(torch.randint(1, 25, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g)
        boxes = torch.cat((xy, xy + 0.1 + 0.3 * torch.rand(n, 2, generator=g)), 1)
        scores = torch.rand(n, generator=g)
        if trial % 3 == 0:
            scores[: n // 2] = float("inf")  # detection NMS: existing tracks tie at +inf
        for thresh in (0.1, 0.3, 0.6):
            assert torch.nonzero(greedy_nms(boxes, scores, thresh)).flatten().tolist() == loop_nms(boxes, scores, thresh)


def rows(ids, boxes, scores, inactive, count_inactive=None, misses=None, embeds=None, next_id=10):
    n = len(ids)
    embeds = torch.eye(n, 4) if embeds is None else embeds
    memory = {"inactive": torch.tensor(inactive, dtype=torch.bool),
              "count_inactive": torch.tensor(count_inactive or [0] * n), "obj_ind": torch.zeros(n, dtype=torch.long)}
    r = TrackState.new_rows(embeds, torch.zeros(n, 2), 4, 2, memory, Context(next_id=next_id))
    logits = torch.tensor([[2.0, -5.0]] * n)
    return r.replace(ids=torch.tensor(ids), boxes=torch.tensor(boxes), scores=torch.tensor(scores), logits=logits,
                     embeds=embeds, misses=torch.tensor(misses or [0] * n))


TH = Thresholds(0.5, 0.5, 0.9, 0.9, steps_termination=2, inactive_patience=3, reid_sim_threshold=0.0,
                reid_score_thresh=0.5)


def test_misses_before_termination_revival_keeps_counters_and_births():
    tracks = rows([0, 1, 2], [[0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1]], [0.9, 0.9, 0.9],
                  [False, False, True], count_inactive=[0, 0, 2], misses=[0, 1, 2])
    preds = tracks.replace(scores=torch.tensor([0.2, 0.2, 0.7]), boxes=tracks.boxes + 0.01)
    dets = rows([-1, -1], [[0.2, 0.2, 0.1, 0.1], [0.3, 0.6, 0.1, 0.1]], [0.8, 0.8], [False, False])
    nxt, ev = step_tracks(tracks, preds, dets, TH)
    # track 0 misses once (stays active with its old box), track 1 reaches 2 misses -> inactive,
    # track 2 is revived with count_inactive 2 and count_termination 2, appended after track 0;
    # detection 0 sits on track 0 (IoU 1 > 0.9): removed by detection NMS; detection 1 is born as 10.
    assert nxt.ids.tolist() == [0, 2, 11, 1] and ev["born"].tolist() == [10, 11]
    assert ev["det_nms_removed"].tolist() == [10] and ev["to_inactive"].tolist() == [1]
    assert nxt.memory["inactive"].tolist() == [False, False, False, True]
    assert nxt.misses.tolist() == [1, 2, 0, 2] and nxt.memory["count_inactive"].tolist() == [0, 2, 0, 1]
    assert torch.equal(nxt.boxes[0], tracks.boxes[0]) and torch.equal(nxt.boxes[1], preds.boxes[2])
    assert nxt.context.next_id == 12


def test_embedding_reid_resets_count_inactive_and_patience_drops():
    tracks = rows([4, 5], [[0.2, 0.2, 0.1, 0.1], [0.6, 0.6, 0.1, 0.1]], [0.9, 0.9], [True, True],
                  count_inactive=[1, 4])
    assert alive(tracks, 3).tolist() == [True, False]
    tracks = tracks[alive(tracks, 3)]
    preds = tracks.replace(scores=torch.tensor([0.1]))
    dets = rows([-1], [[0.4, 0.4, 0.1, 0.1]], [0.8], [False], embeds=tracks.embeds.clone())
    th = Thresholds(**{**TH.__dict__, "reid_sim_threshold": 1e-3})
    nxt, ev = step_tracks(tracks, preds, dets, th)
    assert ev["reid"].tolist() == [4] and ev["born"].tolist() == []
    assert nxt.ids.tolist() == [4] and not nxt.memory["inactive"][0]
    assert nxt.memory["count_inactive"].tolist() == [0] and torch.equal(nxt.boxes[0], dets.boxes[0])
    nxt, ev = step_tracks(tracks, preds, dets, TH)  # threshold 0: never equal embeddings -> a birth
    assert ev["reid"].tolist() == [] and ev["born"].tolist() == [10]
    assert box_cxcywh_to_xyxy(nxt.boxes).shape == (2, 4)
