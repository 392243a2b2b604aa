"""NMS against the textbook greedy loop written here."""
import torch

from trackformers.ops.nms import batched_nms, nms


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _greedy(boxes, scores, thr, classes=None):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties keep input order
    keep = []
    for i in order:
        if all(_iou(boxes[i], boxes[j]) <= thr or (classes is not None and classes[i] != classes[j]) for j in keep):
            keep.append(i)
    return keep


def _random_boxes(g, n, size=100.0):
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], 1)


def test_nms_equals_greedy_loop_on_dense_clusters():
    g = torch.Generator().manual_seed(0)
    for n, thr in [(1, 0.5), (30, 0.5), (200, 0.7), (300, 0.3)]:
        # clusters of jittered copies make long suppression chains
        centres = _random_boxes(g, max(1, n // 10))
        boxes = centres.repeat_interleave(10, 0)[:n] + torch.randn(n, 4, generator=g) * 3
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        scores = torch.rand(n, generator=g)
        assert nms(boxes, scores, thr).tolist() == _greedy(boxes.tolist(), scores.tolist(), thr)


def test_nms_ties_keep_input_order_and_outside_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [-50, -50, -40, -40], [-49, -49, -39, -39],
                          [100, 100, 100, 100]], dtype=torch.float)
    scores = torch.tensor([0.5, 0.5, 0.9, 0.5, 0.95])  # a tie at 0.5; an empty box (area 0)
    keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == _greedy(boxes.tolist(), scores.tolist(), 0.5) == [4, 2, 0]


def test_nms_empty():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).shape == (0,)


def test_batched_nms_equals_classwise_loop():
    g = torch.Generator().manual_seed(1)
    boxes = _random_boxes(g, 150, 60.0)
    scores = torch.rand(150, generator=g)
    classes = torch.randint(0, 4, (150,), generator=g)
    keep = batched_nms(boxes, scores, classes, 0.5)
    expected = _greedy(boxes.tolist(), scores.tolist(), 0.5, classes.tolist())
    assert sorted(keep.tolist()) == sorted(expected)
    assert (scores[keep].diff() <= 0).all()
    # some box was suppressed only within its class: class-agnostic NMS keeps fewer
    assert len(nms(boxes, scores, 0.5)) < len(keep)
