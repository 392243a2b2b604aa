"""MeMOTR's runtime (births, misses, deaths, labels, result filter) against the official
RuntimeTracker / Submitter logic written as a loop in the test, on a multi-class frame."""
import torch

from trackformers.config import from_dict
from trackformers.trackers.memotr import MeMOTR
from trackformers.trackers.query_tracker import FrameOutput
from trackformers.trackers.state import TrackState

Q, K, C = 6, 3, 32
CFG = {"detector": {"backbone_depth": 18, "backbone_width": 8, "hidden_dim": C, "nheads": 4, "num_feature_levels": 3,
                    "enc_layers": 1, "dec_layers": 2, "dim_feedforward": 64, "num_queries": Q, "num_classes": K,
                    "with_box_refine": True, "dropout": 0.0},
       "det_score_thresh": 0.6, "track_score_thresh": 0.4, "result_score_thresh": 0.5, "miss_tolerance": 2,
       "area_threshold": 100.0}


def official_runtime(ids, labels, misses, det_probs, track_probs, next_id, cfg):
    """RuntimeTracker.update as the original writes it: a loop over tracks, then newborns."""
    ids, misses = list(ids), list(misses)
    for i in range(len(ids)):
        if track_probs[i][labels[i]] < cfg["track_score_thresh"]:
            misses[i] += 1
        else:
            misses[i] = 0
        if misses[i] >= cfg["miss_tolerance"]:
            ids[i] = -1
    born, born_labels, born_ids = [], [], []
    for q in range(len(det_probs)):
        if max(det_probs[q]) >= cfg["det_score_thresh"]:
            born.append(q)
            born_labels.append(max(range(K), key=lambda k: det_probs[q][k]))
            born_ids.append(next_id)
            next_id += 1
    keep = [i for i in range(len(ids)) if ids[i] >= 0]
    return ([ids[i] for i in keep] + born_ids, [labels[i] for i in keep] + born_labels,
            [misses[i] for i in keep] + [0] * len(born), keep, born)


def test_lifecycle_and_report_match_the_official_loop():
    torch.manual_seed(0)
    model = MeMOTR(from_dict(MeMOTR.Config, CFG)).eval()
    # 4 live tracks (ids 0, 1, 2, 5) with birth labels 2, 0, 1, 1 and miss counters 1, 0, 1, 0
    det_logits = torch.tensor([[2.0, -3, -3], [-1, 0.3, -2], [-3, -3, 0.5], [0.0, 0.1, -5], [-5, 3, -5], [-4, -4, -4]])
    trk_logits = torch.tensor([[3.0, -3, -1], [-0.5, 2, 2], [-3, -0.3, -2], [-2, 1, -2]])
    rows = TrackState.cat([model.detect_rows().with_context(next_id=6),
                           TrackState.new_rows(torch.randn(4, C), torch.randn(4, 4), C, K, model._memory(4, torch.zeros(1)))])
    labels = torch.tensor([0] * Q + [2, 0, 1, 1])
    rows = rows.replace(
        ids=torch.tensor([-1] * Q + [0, 1, 2, 5]), misses=torch.tensor([0] * Q + [1, 0, 1, 0]),
        logits=torch.cat((det_logits, trk_logits)), embeds=torch.randn(Q + 4, C),
        boxes=torch.tensor([[0.5, 0.5, 0.2, 0.3]] * (Q + 4)),
        memory=dict(model._memory(Q + 4, torch.zeros(1)), labels=labels))
    penultimate, last_refs = torch.randn(Q + 4, C), torch.randn(Q + 4, 4)
    hs = torch.stack((penultimate, rows.embeds))
    inter = torch.stack((last_refs.sigmoid(), rows.boxes))  # references after each layer (sigmoid space)
    out = FrameOutput(rows, rows.logits[None], rows.boxes[None], hs, inter)

    tracks = model.lifecycle(out)
    prob = rows.logits.sigmoid().tolist()
    want_ids, want_labels, want_misses, kept, born = official_runtime(
        [0, 1, 2, 5], [2, 0, 1, 1], [1, 0, 1, 0], prob[:Q], prob[Q:], 6, CFG)
    assert tracks.ids.tolist() == want_ids
    assert tracks.memory["labels"].tolist() == want_labels
    assert tracks.misses.tolist() == want_misses
    # by hand: detect rows 0, 2, 4 pass 0.6; track 0 (label 2, p=.27) misses a 2nd time and dies;
    # track 1 is missed on its birth label 0 (p=.38) although its best class scores .88
    assert born == [0, 2, 4] and kept == [1, 2, 3] and want_misses[:3] == [1, 0, 0]
    # newborns: content query = last layer's input, reference = its start box, memories = copies
    nb = torch.tensor(born)
    torch.testing.assert_close(tracks.queries[3:], penultimate[nb])
    torch.testing.assert_close(tracks.refs[3:], last_refs[nb], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(tracks.memory["long_memory"][3:], penultimate[nb])
    torch.testing.assert_close(tracks.memory["last_output"][3:], rows.embeds[nb])

    # Result filter: max score > 0.5 and area > 100 px in the original frame (w * h * W * H).
    tracks = tracks.replace(boxes=torch.tensor([[0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.1, 0.05], [0.5, 0.5, 0.01, 0.01],
                                                [0.3, 0.3, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1], [0.2, 0.2, 0.1, 0.1]]))
    areas = [200, 100, 2, 800, 200, 200]  # px^2 in a 200 x 100 frame; 100 is not > 100
    result = model.report(tracks, (200, 100))
    scores = tracks.logits.sigmoid().max(-1).values
    want = [i for i, a in enumerate(areas) if a > 100 and scores[i] > 0.5]
    assert len(want) < len(areas)
    assert result["ids"].tolist() == [want_ids[i] for i in want]
    torch.testing.assert_close(result["scores"], scores[want])
