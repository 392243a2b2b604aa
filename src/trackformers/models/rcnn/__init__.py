"""The two-stage detector QDTrack runs on: Faster R-CNN with a ResNet-FPN, in plain torch.

anchors.py      anchor grid (mmdet AnchorGenerator, centre offset 0)
box_coder.py    delta xywh encoding with means / stds and the log-ratio clamp
fpn.py          feature pyramid (P2-P5 + max-pooled P6)
sampling.py     max-IoU assignment and random / instance-balanced sampling of RoIs
rpn.py          RPN head: objectness + deltas, proposals (per-level top-k, NMS), loss
roi_head.py     level mapping, multi-level RoIAlign, Shared2FC box head, multiclass NMS, loss
faster_rcnn.py  the whole detector and its config

Parameter names follow mmdet's modules (`lateral_convs.0.conv`, `rpn_conv`, `shared_fcs.0`,
`fc_cls`, ...) so an mmdet / mmtracking state dict loads by prefix renames alone.
Boxes are absolute xyxy pixels of the network input throughout.
"""
