"""Box ops against hand-worked examples."""
import math

import pytest
import torch

from trackformers.ops.box_ops import (box_cxcywh_to_xyxy, box_iou, box_xywh_to_xyxy, box_xyxy_to_cxcywh,
                                      generalized_box_iou, inverse_sigmoid)


def test_conversions_round_trip():
    cxcywh = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.3, 0.2, 0.2]])
    xyxy = torch.tensor([[0.4, 0.3, 0.6, 0.7], [0.0, 0.2, 0.2, 0.4]])
    torch.testing.assert_close(box_cxcywh_to_xyxy(cxcywh), xyxy)
    torch.testing.assert_close(box_xyxy_to_cxcywh(xyxy), cxcywh)
    torch.testing.assert_close(box_xywh_to_xyxy(torch.tensor([10.0, 20.0, 5.0, 8.0])), torch.tensor([10.0, 20.0, 15.0, 28.0]))


def test_iou_and_giou_hand_worked():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0],    # overlap 1, union 7, hull 9
                      [0.0, 0.0, 2.0, 2.0],    # identical
                      [3.0, 0.0, 4.0, 1.0]])   # disjoint: union 5, hull 4x2=8
    iou, union = box_iou(a, b)
    torch.testing.assert_close(iou, torch.tensor([[1 / 7, 1.0, 0.0]]))
    torch.testing.assert_close(union, torch.tensor([[7.0, 4.0, 5.0]]))
    giou = generalized_box_iou(a, b)
    torch.testing.assert_close(giou, torch.tensor([[1 / 7 - 2 / 9, 1.0, 0.0 - 3 / 8]]))


def test_giou_rejects_degenerate_boxes():
    with pytest.raises(ValueError, match="degenerate"):
        generalized_box_iou(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))


def test_inverse_sigmoid_eps():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    expected = torch.tensor([math.log(1e-5 / 1.0), math.log(0.25 / 0.75), 0.0, math.log(1.0 / 1e-5)])
    torch.testing.assert_close(inverse_sigmoid(x), expected)
    assert inverse_sigmoid(torch.tensor(0.0), eps=1e-3).item() == pytest.approx(math.log(1e-3))
