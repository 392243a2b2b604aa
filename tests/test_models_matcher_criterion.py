"""Matcher vs brute force, focal loss vs its formula, criterion normalisation, AP by hand."""
import itertools
import math

import numpy as np
import pytest
import torch

from trackformers.models.ap import average_precision
from trackformers.models.criterion import SetCriterion, sigmoid_focal_loss
from trackformers.models.matcher import HungarianMatcher, match_cost
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, generalized_box_iou


def random_boxes(n, g):
    cxcy = torch.rand(n, 2, generator=g) * 0.6 + 0.2
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.05
    return torch.cat([cxcy, wh], 1)


@pytest.mark.parametrize("seed", range(4))
def test_matcher_is_optimal_against_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    Q, K = 5, 3
    outputs = {"pred_logits": torch.randn(2, Q, K, generator=g), "pred_boxes": torch.stack([random_boxes(Q, g) for _ in range(2)])}
    targets = [{"labels": torch.randint(0, K, (n,), generator=g), "boxes": random_boxes(n, g)} for n in (3, 0)]
    indices = HungarianMatcher()(outputs, targets)
    assert len(indices[1][0]) == 0
    # brute force over every injective assignment of the 3 targets to 5 queries
    t = targets[0]
    prob = outputs["pred_logits"][0].sigmoid()
    def cost(q, j):
        p = prob[q, t["labels"][j]]
        focal = 0.25 * (1 - p) ** 2 * -math.log(p + 1e-8) - 0.75 * p ** 2 * -math.log(1 - p + 1e-8)
        l1 = (outputs["pred_boxes"][0, q] - t["boxes"][j]).abs().sum()
        giou = generalized_box_iou(box_cxcywh_to_xyxy(outputs["pred_boxes"][0, q:q + 1]),
                                   box_cxcywh_to_xyxy(t["boxes"][j:j + 1]))[0, 0]
        return float(2 * focal + 5 * l1 - 2 * giou)
    best = min(itertools.permutations(range(Q), 3), key=lambda qs: sum(cost(q, j) for j, q in enumerate(qs)))
    src, tgt = indices[0]
    assert dict(zip(tgt.tolist(), src.tolist())) == dict(enumerate(best))
    torch.testing.assert_close(match_cost(outputs["pred_logits"][0], outputs["pred_boxes"][0], t["labels"], t["boxes"])[2, 1],
                               torch.tensor(cost(2, 1)), rtol=1e-5, atol=1e-5)


def test_sigmoid_focal_loss_formula():
    x = torch.tensor([2.0, -1.0, 0.5])
    t = torch.tensor([1.0, 0.0, 0.0])
    p = torch.sigmoid(x)
    expected = torch.stack([-0.25 * (1 - p[0]) ** 2 * torch.log(p[0]),
                            -0.75 * p[1] ** 2 * torch.log(1 - p[1]),
                            -0.75 * p[2] ** 2 * torch.log(1 - p[2])])
    torch.testing.assert_close(sigmoid_focal_loss(x, t), expected)


def test_criterion_values_and_normalisation():
    """Given indices, every term equals its direct formula divided by the number of boxes."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 2, generator=g)
    boxes = torch.stack([random_boxes(4, g) for _ in range(2)])
    targets = [{"labels": torch.tensor([1, 0]), "boxes": random_boxes(2, g)},
               {"labels": torch.tensor([1]), "boxes": random_boxes(1, g)}]
    indices = [(torch.tensor([3, 0]), torch.tensor([0, 1])), (torch.tensor([2]), torch.tensor([0]))]
    aux = {"pred_logits": logits * 0.5, "pred_boxes": boxes}
    crit = SetCriterion(num_classes=2)
    losses = crit({"pred_logits": logits, "pred_boxes": boxes, "aux_outputs": [aux]}, targets, indices)
    onehot = torch.zeros(2, 4, 2)
    onehot[0, 3, 1] = onehot[0, 0, 0] = onehot[1, 2, 1] = 1
    p = logits.sigmoid()
    focal = torch.where(onehot > 0, -0.25 * (1 - p) ** 2 * p.log(), -0.75 * p ** 2 * (1 - p).log())
    torch.testing.assert_close(losses["loss_ce"], focal.sum() / 3)
    pairs = [(boxes[0, 3], targets[0]["boxes"][0]), (boxes[0, 0], targets[0]["boxes"][1]), (boxes[1, 2], targets[1]["boxes"][0])]
    torch.testing.assert_close(losses["loss_bbox"], sum((a - b).abs().sum() for a, b in pairs) / 3)
    gious = [generalized_box_iou(box_cxcywh_to_xyxy(a[None]), box_cxcywh_to_xyxy(b[None]))[0, 0] for a, b in pairs]
    torch.testing.assert_close(losses["loss_giou"], sum(1 - x for x in gious) / 3)
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou", "loss_ce_0", "loss_bbox_0", "loss_giou_0"}
    torch.testing.assert_close(losses["loss_bbox_0"], losses["loss_bbox"])
    total = crit.total(losses)
    torch.testing.assert_close(total, 2 * (losses["loss_ce"] + losses["loss_ce_0"]) + 5 * 2 * losses["loss_bbox"]
                               + 2 * 2 * losses["loss_giou"])
    # an explicit normaliser replaces the box count
    torch.testing.assert_close(crit({"pred_logits": logits, "pred_boxes": boxes}, targets, indices, num_boxes=6)["loss_ce"],
                               focal.sum() / 6)


def test_two_stage_encoder_loss_is_class_agnostic():
    g = torch.Generator().manual_seed(1)
    out = {"pred_logits": torch.randn(1, 3, 4, generator=g), "pred_boxes": random_boxes(3, g)[None]}
    targets = [{"labels": torch.tensor([3]), "boxes": random_boxes(1, g)}]
    losses = SetCriterion(4)(dict(out, enc_outputs=out), targets)
    binary = SetCriterion(4)(out, [dict(targets[0], labels=torch.tensor([0]))])
    torch.testing.assert_close(losses["loss_ce_enc"], binary["loss_ce"])


def test_average_precision_hand_worked():
    """2 images, 3 ground-truth boxes of class 0. Ranked detections: TP, FP, TP, FP(duplicate)
    -> precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3; AP = 1/3 * 1 + 1/3 * 2/3 = 5/9."""
    gts = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), "labels": np.array([0, 0])},
           {"boxes": np.array([[0, 0, 10, 10]], float), "labels": np.array([0])}]
    dets = [{"boxes": np.array([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 9]], float),
             "scores": np.array([0.9, 0.8, 0.5]), "labels": np.array([0, 0, 0])},
            {"boxes": np.array([[1, 0, 11, 10]], float), "scores": np.array([0.7]), "labels": np.array([0])}]
    # image 0: 0.9 TP (gt0); 0.5 overlaps gt0 (taken) -> FP; image 1: 0.7 IoU 9/11 -> TP
    # ranked: 0.9 TP, 0.8 FP, 0.7 TP, 0.5 FP
    result = average_precision(dets, gts)
    assert result["AP"] == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    perfect = average_precision([{"boxes": g["boxes"], "scores": np.ones(len(g["boxes"])), "labels": g["labels"]} for g in gts], gts)
    assert perfect["AP"] == pytest.approx(1.0)
    assert average_precision(dets, gts, iou_threshold=0.95)["AP"] == pytest.approx(1 / 3 * 1)


def _normalizer_worker(rank, init_file, results):
    import torch.distributed as dist

    from trackformers.models.criterion import num_boxes_normalizer

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        results[rank] = float(num_boxes_normalizer([3, 5][rank], "cpu"))
    finally:
        dist.destroy_process_group()


def test_num_boxes_is_averaged_across_processes(tmp_path):
    """Two processes with 3 and 5 target boxes both normalise by (3 + 5) / 2 = 4."""
    import torch.multiprocessing as mp

    results = mp.Manager().dict()
    mp.spawn(_normalizer_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    assert dict(results) == {0: 4.0, 1: 4.0}
