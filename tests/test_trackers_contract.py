"""The tracker contract's shared pieces: TrackState plumbing (subclass fields and context kept),
the runtime lifecycle against the official loop, tracklet-aware assignment and the clip loss."""
import dataclasses
import itertools

import pytest
import torch

from trackformers.trackers.assignment import ClipLoss, match_tracklets, track_targets
from trackformers.trackers.lifecycle import Rules, advance, assign_new_ids, report_mask, update
from trackformers.trackers.query_tracker import QueryTracker
from trackformers.trackers.state import Context, TrackState


def runtime_update(state, birth, keep, miss, tol, **kw):
    return update(state, Rules(birth, keep, miss, tol, **kw))


def _state(n: int, seed: int = 0, next_id: int = 7, **changes) -> TrackState:
    g = torch.Generator().manual_seed(seed)
    s = TrackState.new_rows(torch.randn(n, 6, generator=g), torch.randn(n, 2, generator=g),
                            embed_dim=3, num_classes=2,
                            memory={"long": torch.randn(n, 3, generator=g)}, context=Context(next_id=next_id))
    s = s.replace(ids=torch.arange(n) - 1, scores=torch.rand(n, generator=g),
                  misses=torch.randint(0, 3, (n,), generator=g), boxes=torch.rand(n, 4, generator=g))
    return s.replace(**changes)


def test_index_cat_to_apply_to_every_row_field_and_memory():
    s = _state(5)
    mask = torch.tensor([True, False, True, True, False])
    sub = s[mask]
    assert len(sub) == 3 and sub.context.next_id == 7
    assert torch.equal(sub.ids, torch.tensor([-1, 1, 2]))
    assert torch.equal(sub.queries, s.queries[[0, 2, 3]])
    assert torch.equal(sub.memory["long"], s.memory["long"][[0, 2, 3]])
    assert torch.equal(s[torch.tensor([4, 0])].refs, s.refs[[4, 0]])
    assert len(s[2]) == 1 and torch.equal(s[-1].ids, torch.tensor([3]))

    both = TrackState.cat([sub, _state(2, seed=1, next_id=11)])
    assert len(both) == 5 and both.context.next_id == 7  # the first state's context
    assert TrackState.cat([sub, sub], context=Context(next_id=11)).context.next_id == 11
    assert torch.equal(both.misses[:3], sub.misses) and both.memory["long"].shape == (5, 3)
    with pytest.raises(ValueError, match="memory keys"):
        TrackState.cat([sub, sub.replace(memory={})])

    half = s.to(torch.float64)
    assert half.queries.dtype == torch.float64 and half.memory["long"].dtype == torch.float64
    assert half.ids.dtype == torch.long and half.misses.dtype == torch.long

    empty = TrackState.empty(6, 2, 3, 2, memory_dims={"long": (3,)})
    assert len(empty) == 0 and len(TrackState.cat([empty, s])) == 5


@dataclasses.dataclass
class _Rows(TrackState):
    extra: torch.Tensor = None


def test_a_subclass_keeps_its_class_fields_and_context_through_row_operations():
    base = _state(4, next_id=3).with_context(frame=5, features="prev")
    s = _Rows(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, extra=torch.arange(4.0))
    assert _Rows.row_fields()[-1] == "extra"
    for out in (s[torch.tensor([3, 1])], s.to(torch.float64), s.detach(), TrackState.cat([s, s[:1]])):
        assert type(out) is _Rows and out.context == Context(frame=5, next_id=3, features="prev")
        assert out.extra.shape == (len(out),) and out.memory["long"].shape == (len(out), 3)
    assert s[torch.tensor([3, 1])].extra.tolist() == [3.0, 1.0]
    assert TrackState.cat([s, s[:1]]).extra.tolist() == [0.0, 1.0, 2.0, 3.0, 0.0]


def test_advance_is_the_mask_form_of_the_lifecycle():
    s = _state(5).replace(ids=torch.tensor([0, 1, 2, -1, -1]), misses=torch.tensor([0, 1, 2, 0, 0]),
                          ages=torch.tensor([4, 3, 2, 0, 0])).with_context(next_id=3)
    out = advance(s, born=torch.tensor([False, False, False, False, True]),
                  kept=torch.tensor([True, False, False, False, False]),
                  missed=torch.tensor([False, True, True, False, False]), miss_tolerance=3)
    assert out.ids.tolist() == [0, 1, -1, -1, 3] and out.context.next_id == 4
    assert out.misses.tolist() == [0, 2, 3, 0, 0] and out.ages.tolist() == [5, 4, 3, 0, 0]


def test_without_miss_reset_a_revived_track_keeps_its_count():
    # Trackformer: a re-queried inactive track that scores again keeps its inactive count.
    s = _state(2).replace(ids=torch.tensor([0, 1]), misses=torch.tensor([2, 2]), scores=torch.tensor([0.9, 0.1]))
    assert update(s, Rules(0.5, 0.5, 0.5, 4)).misses.tolist() == [0, 3]
    assert update(s, Rules(0.5, 0.5, 0.5, 4, reset_misses=False)).misses.tolist() == [2, 3]


def test_assign_new_ids_hands_out_consecutive_ids_in_row_order():
    ids = torch.tensor([-1, 4, -1, -1, 2, -1])
    born = torch.tensor([True, False, False, True, False, True])
    new, nxt = assign_new_ids(ids, born, 10)
    assert new.tolist() == [10, 4, -1, 11, 2, 12] and nxt == 13


def _naive_runtime(ids, scores, misses, ages, next_id, birth, keep, miss_t, tol):
    """The official RuntimeTrackerBase.update written as its row loop."""
    ids, misses, ages = list(ids), list(misses), list(ages)
    for i in range(len(ids)):
        if scores[i] >= keep:
            misses[i] = 0
    for i in range(len(ids)):
        if ids[i] == -1 and scores[i] >= birth:
            ids[i] = next_id
            next_id += 1
            ages[i] = 0
        elif ids[i] >= 0:
            ages[i] += 1
            if scores[i] < miss_t:
                misses[i] += 1
                if misses[i] >= tol:
                    ids[i] = -1
    return ids, misses, ages, next_id


@pytest.mark.parametrize("thresholds", [(0.7, 0.7, 0.6, 2), (0.5, 0.5, 0.5, 3), (0.3, 0.8, 0.4, 1)])
def test_runtime_update_matches_the_official_loop(thresholds):
    g = torch.Generator().manual_seed(3)
    state = _state(40)
    next_id = 7
    for frame in range(6):
        scores = torch.rand(len(state), generator=g)
        state = state.replace(scores=scores)
        want = _naive_runtime(state.ids.tolist(), scores.tolist(), state.misses.tolist(),
                              state.ages.tolist(), next_id, *thresholds)
        state = runtime_update(state, *thresholds)
        assert state.ids.tolist() == want[0], frame
        assert state.misses.tolist() == want[1]
        assert state.ages.tolist() == want[2]
        assert state.context.next_id == want[3]
        next_id = want[3]
        # the tracker drops dead rows and adds fresh candidates, as between frames
        state = TrackState.cat([state[state.ids >= 0], _state(10, seed=frame).replace(
            ids=torch.full((10,), -1), misses=torch.zeros(10, dtype=torch.long))])


def test_birth_nms_keeps_detections_off_tracks_seen_this_frame():
    # rows: a seen track, a missed track (score under miss_thresh), and three candidates: on the
    # seen track (IoU 0.81), on the missed one (IoU 1), and on nothing. Hand-worked IoUs.
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2],
                          [0.31, 0.31, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2], [0.5, 0.1, 0.1, 0.1]])
    s = _state(5).replace(ids=torch.tensor([3, 4, -1, -1, -1]), scores=torch.tensor([0.9, 0.2, 0.9, 0.9, 0.9]),
                          boxes=boxes, misses=torch.zeros(5, dtype=torch.long)).with_context(next_id=10)
    # (0.19 * 0.19) / (2 * 0.04 - 0.19 * 0.19) = 0.8223
    assert runtime_update(s, 0.5, 0.5, 0.5, 5).ids.tolist() == [3, 4, 10, 11, 12]         # off: all born
    assert runtime_update(s, 0.5, 0.5, 0.5, 5, birth_nms_iou=0.82).ids.tolist() == [3, 4, -1, 10, 11]
    assert runtime_update(s, 0.5, 0.5, 0.5, 5, birth_nms_iou=0.83).ids.tolist() == [3, 4, 10, 11, 12]

def test_report_mask_thresholds_score_and_pixel_area():
    s = _state(3).replace(ids=torch.tensor([0, 1, -1]), scores=torch.tensor([0.9, 0.9, 0.9]),
                          boxes=torch.tensor([[0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.01, 0.01], [0.5, 0.5, 0.5, 0.5]]))
    # 0.1 * 0.1 * 200 * 100 = 200 px^2 > 100; 0.01 * 0.01 * 20000 = 2 px^2
    assert report_mask(s, 0.7, 100, (100, 200)).tolist() == [True, False, False]
    assert report_mask(s.replace(scores=torch.tensor([0.7, 0.8, 0.9])), 0.7).tolist() == [False, True, False]


def _l1_matcher(logits, boxes, labels, tgt_boxes):
    """Brute force over assignments: minimum total L1 box distance (needs queries >= targets)."""
    cost = torch.cdist(boxes, tgt_boxes, p=1)
    rows = min(itertools.permutations(range(len(boxes)), len(tgt_boxes)),
               key=lambda p: float(sum(cost[i, j] for j, i in enumerate(p))))
    return torch.tensor(rows, dtype=torch.long), torch.arange(len(tgt_boxes))


def test_match_tracklets_hand_worked_case():
    # rows: 0,1 detect queries; 2 track id 5; 3 track id 9 (gone this frame); 4 FP row (id -1)
    ids = torch.tensor([-1, -1, 5, 9, -1])
    candidates = ids == -1
    boxes = torch.tensor([[0.2, 0.2, 0.1, 0.1],    # near target id 3
                          [0.8, 0.8, 0.1, 0.1],    # far from both new targets
                          [0.5, 0.5, 0.1, 0.1],
                          [0.1, 0.9, 0.1, 0.1],
                          [0.6, 0.3, 0.1, 0.1]])   # near target id 4
    target = {"ids": torch.tensor([4, 5, 3]), "labels": torch.zeros(3, dtype=torch.long),
              "boxes": torch.tensor([[0.6, 0.32, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1], [0.21, 0.2, 0.1, 0.1]])}
    a = match_tracklets(ids, candidates, torch.zeros(5, 1), boxes, target, _l1_matcher)
    # the track keeps its identity even though row 1 is closer to that target
    assert a.gt_idx.tolist() == [2, -1, 1, -1, 0]
    assert a.ids.tolist() == [3, -1, 5, 9, 4]
    assert a.num_disappeared == 1
    assert track_targets(torch.tensor([5, -1, 3, 8]), target["ids"]).tolist() == [1, -1, 2, -1]


def test_match_tracklets_without_free_targets_or_candidates():
    ids = torch.tensor([2, -1])
    target = {"ids": torch.tensor([2]), "labels": torch.zeros(1, dtype=torch.long), "boxes": torch.rand(1, 4)}
    a = match_tracklets(ids, ids == -1, torch.zeros(2, 1), torch.rand(2, 4), target, _l1_matcher)
    assert a.gt_idx.tolist() == [0, -1] and a.ids.tolist() == [2, -1] and a.num_disappeared == 0
    empty = {"ids": torch.zeros(0, dtype=torch.long), "labels": torch.zeros(0, dtype=torch.long),
             "boxes": torch.zeros(0, 4)}
    a = match_tracklets(ids, ids == -1, torch.zeros(2, 1), torch.rand(2, 4), empty, _l1_matcher)
    assert a.gt_idx.tolist() == [-1, -1] and a.num_disappeared == 1


def test_clip_loss_divides_the_sum_over_frames_once():
    loss = ClipLoss()
    loss.add({"loss_ce": torch.tensor(3.0), "aux0/loss_ce": torch.tensor(1.0), "loss_bbox": torch.tensor(2.0)}, 4)
    loss.add({"loss_ce": torch.tensor(5.0), "aux0/loss_ce": torch.tensor(1.0), "loss_bbox": torch.tensor(4.0)}, 2)
    out = loss.result({"loss_ce": 2.0, "loss_bbox": 5.0})
    assert out["loss_ce"].item() == pytest.approx(8 / 6) and out["aux0/loss_ce"].item() == pytest.approx(2 / 6)
    assert out["loss"].item() == pytest.approx((2 * 8 + 2 * 2 + 5 * 6) / 6)
    empty = ClipLoss()
    empty.add({"loss_ce": torch.tensor(3.0)}, 0)  # no samples: clamp the normaliser at 1
    assert empty.result({"loss_ce": 1.0})["loss"].item() == 3.0


def test_target_iou_updates_assigned_rows_only():
    rows = _state(3).replace(boxes=torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]]),
                             iou=torch.tensor([0.0, 0.7, 0.9]))
    target = {"boxes": torch.tensor([[0.6, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]])}
    iou = QueryTracker.target_iou(rows, torch.tensor([0, -1, 1]), target, torch.tensor([True, False, True]))
    # row 0: overlap 0.1 x 0.2 = 0.02, union 0.04 + 0.04 - 0.02 = 0.06; row 2: 0.1 x 0.1 box at the
    # corner of target 1: no overlap (x 0.05..0.15 vs 0.2..0.4); row 1 keeps its last IoU
    assert iou.tolist() == pytest.approx([1 / 3, 0.7, 0.0])
