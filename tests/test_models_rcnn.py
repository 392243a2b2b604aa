"""Faster R-CNN pieces against hand-worked values and brute-force loops."""
import math

import torch

from trackformers.models.rcnn import box_coder
from trackformers.models.rcnn.anchors import base_anchors, grid_anchors, valid_anchors
from trackformers.models.rcnn.faster_rcnn import FasterRCNN, FasterRCNNConfig
from trackformers.models.rcnn.roi_head import DetectionConfig, map_levels, multiclass_nms
from trackformers.models.rcnn.sampling import AssignerConfig, SamplerConfig, assign, sample


def test_base_anchors_hand_worked():
    a = base_anchors(4, [0.5, 1.0, 2.0], [8.0])
    # ratio = h / w at area (4 * 8)^2: w = 32 / sqrt(r), h = 32 * sqrt(r), centred on (0, 0)
    for row, r in zip(a, [0.5, 1.0, 2.0]):
        w, h = 32 / math.sqrt(r), 32 * math.sqrt(r)
        torch.testing.assert_close(row, torch.tensor([-w / 2, -h / 2, w / 2, h / 2]))


def test_grid_anchor_order_and_valid_flags():
    base = base_anchors(16, [0.5, 1.0, 2.0], [8.0])
    g = grid_anchors(base, 16, (2, 3))
    assert g.shape == (2 * 3 * 3, 4)
    # location (y=1, x=2) is the 6th location; its anchors are rows 15..17, shifted by (32, 16)
    torch.testing.assert_close(g[15:18], base + torch.tensor([32.0, 16.0, 32.0, 16.0]))
    v = valid_anchors(16, 3, (2, 3), (20, 33))  # ceil(20/16)=2 rows, ceil(33/16)=3 cols: all valid
    assert v.all()
    v = valid_anchors(16, 3, (2, 3), (16, 17))  # 1 row, 2 cols
    assert v.reshape(2, 3, 3)[:, :, 0].tolist() == [[True, True, False], [False, False, False]]


def test_box_coder_hand_worked_and_round_trip():
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])  # centre (20, 40), size (20, 40)
    # dx = 0.5 -> centre x + 10; dw = log 2 -> width 40
    out = box_coder.decode(box, torch.tensor([[0.5, 0.0, math.log(2), 0.0]]))
    torch.testing.assert_close(out, torch.tensor([[10.0, 20.0, 50.0, 60.0]]))
    # stds scale the deltas: 5 * 0.1 = 0.5 again
    out = box_coder.decode(box, torch.tensor([[5.0, 0.0, 0.0, 0.0]]), stds=(0.1, 0.1, 0.2, 0.2))
    torch.testing.assert_close(out, torch.tensor([[20.0, 20.0, 40.0, 60.0]]))
    # the log-ratio is clamped at log(1000 / 16): width at most 62.5x
    out = box_coder.decode(box, torch.tensor([[0.0, 0.0, 100.0, 0.0]]))
    assert abs((out[0, 2] - out[0, 0]).item() - 20 * 62.5) < 1e-3
    # clipping to the image when a max shape is given
    out = box_coder.decode(box, torch.tensor([[0.0, 0.0, math.log(4), 0.0]]), max_shape=(50, 45))
    torch.testing.assert_close(out, torch.tensor([[0.0, 20.0, 45.0, 50.0]]))
    g = torch.Generator().manual_seed(0)
    boxes = torch.rand(20, 2, generator=g) * 50
    boxes = torch.cat([boxes, boxes + 5 + torch.rand(20, 2, generator=g) * 30], 1)
    targets = boxes + torch.randn(20, 4, generator=g)
    stds = (0.1, 0.1, 0.2, 0.2)
    torch.testing.assert_close(box_coder.decode(boxes, box_coder.encode(boxes, targets, stds=stds), stds=stds), targets)
    # class-specific deltas (N, 4C) decode every class against the same box
    d = torch.randn(20, 8, generator=g) * 0.1
    two = box_coder.decode(boxes, d)
    torch.testing.assert_close(two[:, 4:], box_coder.decode(boxes, d[:, 4:]))


def test_level_mapping_hand_worked():
    def square(s):
        return [0.0, 0.0, s, s]
    boxes = torch.tensor([square(10), square(111.9), square(112.1), square(223), square(225), square(447),
                          square(449), square(2000)])
    assert map_levels(boxes).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_assign_hand_worked():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],   # IoU 1 with gt 0
                          [0.0, 0.0, 10.0, 5.0],    # IoU 0.5 with gt 0
                          [0.0, 0.0, 10.0, 3.0],    # IoU 0.3
                          [50.0, 50.0, 60.0, 60.0],  # IoU 0
                          [20.0, 0.0, 30.0, 6.0]])  # IoU 0.6 with gt 1, its best
    cfg = AssignerConfig(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, match_low_quality=False)
    assert assign(boxes, gt, cfg).tolist() == [1, -1, -1, 0, -1]
    cfg.match_low_quality = True   # gt 1's best box (0.6 >= 0.3) becomes positive
    assert assign(boxes, gt, cfg).tolist() == [1, -1, -1, 0, 2]
    assert assign(boxes, gt[:0], cfg).tolist() == [0] * 5


def test_sample_counts_and_order():
    torch.manual_seed(0)
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [40.0, 40.0, 60.0, 60.0]])
    jitter = torch.rand(300, 4) * 2
    props = torch.cat([gt[0] + jitter[:150], gt[1] + jitter[150:] * 2, torch.rand(100, 4).sort(1).values * 300])
    s = sample(props, gt, torch.tensor([0, 0]), AssignerConfig(0.7, 0.5, 0.5), SamplerConfig(
        num=64, pos_fraction=0.5, neg_pos_ub=3, instance_balanced=True), background=1)
    assert s.num_pos == 32 and len(s.boxes) <= 64
    # instance balanced: 16 positives from each object
    assert s.gt_index.bincount().tolist() == [16, 16]
    assert (s.labels[:32] == 0).all() and (s.labels[32:] == 1).all()


def test_multiclass_nms_equals_loop():
    g = torch.Generator().manual_seed(3)
    n, c = 60, 3
    xy = torch.rand(n, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 20], 1).repeat(1, c)
    boxes = boxes + torch.randn(n, 4 * c, generator=g)
    scores = torch.rand(n, c + 1, generator=g).softmax(-1)
    out_b, out_s, out_l = multiclass_nms(boxes, scores, DetectionConfig(score_thr=0.2, nms_iou=0.5, max_per_img=15))
    cand = [(scores[i, k].item(), i, k) for i in range(n) for k in range(c) if scores[i, k] > 0.2]
    cand.sort(key=lambda t: -t[0])
    kept = []
    for s, i, k in cand:
        b = boxes[i, 4 * k:4 * k + 4]
        if all(k2 != k or _iou(b, boxes[i2, 4 * k2:4 * k2 + 4]) <= 0.5 for _, i2, k2 in kept):
            kept.append((s, i, k))
    kept = kept[:15]
    assert out_l.tolist() == [k for _, _, k in kept]
    torch.testing.assert_close(out_s, torch.tensor([s for s, _, _ in kept]))


def _iou(a, b):
    iw = (torch.min(a[2], b[2]) - torch.max(a[0], b[0])).clamp(min=0)
    ih = (torch.min(a[3], b[3]) - torch.max(a[1], b[1])).clamp(min=0)
    inter = iw * ih
    return (inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)).item()


def test_faster_rcnn_shapes_and_caffe_stride():
    m = FasterRCNN(FasterRCNNConfig(backbone_width=8, fpn_channels=32, fc_channels=64))
    assert m.backbone.layer2[0].conv1.stride == (2, 2) and m.backbone.layer2[0].conv2.stride == (1, 1)
    feats = m.extract(torch.randn(1, 3, 96, 128))
    assert [f.shape[-2:] for f in feats] == [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2)]
    boxes, scores, labels = m.detect(feats)[0]
    assert boxes.shape[1] == 4 and len(boxes) == len(scores) == len(labels) <= 100
    assert (scores[:-1] >= scores[1:]).all()
