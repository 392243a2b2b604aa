"""QDTrack's memo tracker against a hand-worked case and against a naive re-implementation of
mmtracking's QuasiDenseTracker (dicts and loops, written here)."""
import torch

from trackformers.trackers.qdtrack import QDTrackConfig
from trackformers.trackers.qdtrack import QDMemo, associate


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class NaiveTracker:
    """The official tracker's rules, one detection at a time."""

    def __init__(self, c):
        self.c, self.tracks, self.backdrops, self.num = c, {}, [], 0

    def track(self, boxes, scores, labels, embeds, frame):
        c = self.c
        if len(boxes) == 0:
            return []
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        dets = [(boxes[i], scores[i], labels[i], embeds[i]) for i in order]
        valid = []
        for i in range(len(dets)):
            thr = c.nms_backdrop_iou_thr if dets[i][1] < c.obj_score_thr else c.nms_class_iou_thr
            if not any(_iou(dets[i][0], dets[j][0]) > thr for j in range(i)):
                valid.append(i)
        dets = [dets[i] for i in valid]
        ids = [-1] * len(dets)
        if self.tracks:
            memo = [(k, v["embed"], v["label"]) for k, v in self.tracks.items()]
            for bd in self.backdrops:
                memo += [(-1, e, lab) for e, lab in bd]
            m_emb = torch.stack([e for _, e, _ in memo])
            feats = torch.stack([d[3] for d in dets]) @ m_emb.t()
            s = (feats.softmax(1) + feats.softmax(0)) / 2
            for i, d in enumerate(dets):
                for j, (_, _, lab) in enumerate(memo):
                    if c.with_cats and lab != d[2]:
                        s[i, j] = 0
            for i, d in enumerate(dets):
                conf, j = s[i].max(0)
                mid = memo[int(j)][0]
                if conf > c.match_score_thr and mid > -1:
                    if d[1] > c.obj_score_thr:
                        ids[i] = mid
                        for r in range(len(dets)):
                            if r != i:
                                s[r, j] = 0
                    elif conf > c.nms_conf_thr:
                        ids[i] = -2
        for i, d in enumerate(dets):
            if ids[i] == -1 and d[1] > c.init_score_thr:
                ids[i] = self.num
                self.num += 1
        for i, d in enumerate(dets):
            if ids[i] > -1:
                if ids[i] in self.tracks:
                    t = self.tracks[ids[i]]
                    t.update(box=d[0], label=d[2], last=frame,
                             embed=(1 - c.memo_momentum) * t["embed"] + c.memo_momentum * d[3])
                else:
                    self.tracks[ids[i]] = dict(box=d[0], label=d[2], last=frame, embed=d[3])
        bd = [(d[3], d[2]) for i, d in enumerate(dets)
              if ids[i] == -1 and not any(_iou(d[0], dets[j][0]) > c.nms_backdrop_iou_thr for j in range(i))]
        self.backdrops.insert(0, bd)
        for k in [k for k, v in self.tracks.items() if frame - v["last"] >= c.memo_tracklet_frames]:
            self.tracks.pop(k)
        if len(self.backdrops) > c.memo_backdrop_frames:
            self.backdrops.pop()
        return [(d[0], ids[i]) for i, d in enumerate(dets)]


def test_hand_worked_two_frames():
    c = QDTrackConfig(init_score_thr=0.8, memo_tracklet_frames=2)
    e = torch.eye(4) * 10
    memo = QDMemo.empty(4)
    boxes = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], [1, 0, 11, 10], [80, 0, 90, 10.0]])
    scores = torch.tensor([0.9, 0.95, 0.85, 0.3])
    # box 2 overlaps box 0 (IoU 0.82 > 0.7): a duplicate; box 3 too weak to start a track
    order, ids, memo = associate(memo, boxes, scores, torch.zeros(4, dtype=torch.long), e, c)
    assert order.tolist() == [1, 0, 3] and ids.tolist() == [0, 1, -1]
    assert memo.ids.tolist() == [0, 1] and len(memo.bd_boxes) == 1  # box 3 is the backdrop
    # frame 2: the objects swap places: association follows the embeddings, not the boxes
    boxes2 = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60.0]])
    new = torch.stack([e[1] + 0.3 * e[2], e[0]])
    order, ids, memo = associate(memo, boxes2, torch.tensor([0.9, 0.9]), torch.zeros(2, dtype=torch.long), new, c)
    assert order.tolist() == [0, 1] and ids.tolist() == [0, 1]
    # embedding update: 0.2 old + 0.8 new (track 0 had e[1]); its box is the new one
    torch.testing.assert_close(memo.embeds[0], 0.2 * e[1] + 0.8 * new[0])
    assert memo.boxes[0].tolist() == [0, 0, 10, 10]
    # a weak detection matching a track is a suppressed duplicate (-2), not a backdrop, not a birth
    order, ids, memo = associate(memo, boxes2[:1] + 30, torch.tensor([0.4]), torch.zeros(1, dtype=torch.long),
                                 e[0:1], c)
    assert ids.tolist() == [-2] and len(memo.bd_boxes) == 0
    # no detections: nothing changes; then track 1 (last seen at frame 1) is forgotten at frame 4
    _, ids, memo = associate(memo, torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long),
                             torch.zeros(0, 4), c)
    assert memo.ids.tolist() == [0, 1]
    _, ids, memo = associate(memo, boxes2[:1] + 200, torch.tensor([0.2]), torch.zeros(1, dtype=torch.long),
                             e[3:4], c)
    assert memo.ids.tolist() == [] and memo.frame == 5


def test_equals_naive_official_loop():
    g = torch.Generator().manual_seed(0)
    c = QDTrackConfig(init_score_thr=0.7, obj_score_thr=0.5, memo_tracklet_frames=3, memo_backdrop_frames=2)
    n_obj, dim = 12, 16
    protos = torch.randn(n_obj, dim, generator=g) * 3
    pos = torch.rand(n_obj, 2, generator=g) * 200
    naive, memo = NaiveTracker(c), QDMemo.empty(dim)
    matched_any = False
    for frame in range(15):
        present = torch.rand(n_obj, generator=g) < 0.75
        n_dup = 3
        idx = torch.cat([torch.nonzero(present).squeeze(1), torch.randint(0, n_obj, (n_dup,), generator=g)])
        pos = pos + torch.randn(n_obj, 2, generator=g) * 2
        xy = pos[idx] + torch.randn(len(idx), 2, generator=g) * 1.5
        boxes = torch.cat([xy, xy + 20], 1)
        scores = torch.rand(len(idx), generator=g) * 0.7 + 0.3
        labels = torch.randint(0, 2, (len(idx),), generator=g) * (torch.rand(len(idx), generator=g) < 0.2)
        embeds = protos[idx] + torch.randn(len(idx), dim, generator=g) * 0.5
        expected = naive.track(boxes.tolist(), scores.tolist(), labels.tolist(), embeds, frame)
        order, ids, memo = associate(memo, boxes, scores, labels, embeds, c)
        assert ids.tolist() == [i for _, i in expected], frame
        torch.testing.assert_close(boxes[order], torch.tensor([b for b, _ in expected]).reshape(-1, 4))
        assert sorted(memo.ids.tolist()) == sorted(naive.tracks)
        for k, v in naive.tracks.items():
            torch.testing.assert_close(memo.embeds[memo.ids.tolist().index(k)], v["embed"])
        matched_any |= bool((ids >= 0).sum() > 0) and frame > 0
    assert matched_any and naive.num > n_obj // 2
