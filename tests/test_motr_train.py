"""MOTR learns: a tiny model overfits a 3-frame synthetic clip, then tracks it with stable ids.
Plus the training-time pieces that have no fixture: false-positive insertion and QIM selection."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from trackformers.config import from_dict, load_yaml, merge
from trackformers.data.mot import read_mot
from trackformers.data.synthetic import generate_synthetic
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.trackers.motr import MOTR
from trackformers.trackers.assignment import insert_false_positives
from trackformers.trackers.motr import select_tracks
from trackformers.trackers.state import TrackState

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "motr"
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
# synth.yaml's model, shrunk further so that a few dozen steps run in seconds
TINY = {"detector": {"backbone_width": 16, "hidden_dim": 64, "nheads": 4, "enc_layers": 1, "dec_layers": 2,
                     "dim_feedforward": 128, "num_queries": 16},
        "qim": {"hidden_dim": 128, "random_drop": 0.0, "fp_ratio": 0.0},  # augmentation: tested below
        "score_thresh": 0.4, "filter_score_thresh": 0.3, "prob_threshold": 0.4, "area_threshold": 0}


def _clip(tmp_path, frames=3, size=(128, 96)):
    """A synthetic `simple` clip as (image, target) pairs, read back from the files written."""
    generate_synthetic(str(tmp_path), "simple", seqs=1, frames=frames, size=size, seed=1)
    seq = tmp_path / "train" / "simple0001"
    gt = read_mot(seq / "gt" / "gt.txt")
    w, h = size
    clip = []
    for t in range(1, frames + 1):
        rgb = cv2.cvtColor(cv2.imread(str(seq / "img1" / f"{t:08d}.jpg")), cv2.COLOR_BGR2RGB)
        rows = gt[gt[:, 0] == t]
        xywh = torch.tensor(rows[:, 2:6], dtype=torch.float32)
        boxes = torch.cat([xywh[:, :2] + xywh[:, 2:] / 2, xywh[:, 2:]], 1) / torch.tensor([w, h, w, h])
        clip.append(((torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - MEAN) / STD,
                     {"boxes": boxes, "labels": torch.zeros(len(rows), dtype=torch.long),
                      "ids": torch.tensor(rows[:, 1], dtype=torch.long)}))
    return clip


def _tiny_motr() -> MOTR:
    model_cfg = merge(load_yaml(CONFIGS / "synth.yaml")["model"], TINY)
    model_cfg.pop("method")
    return MOTR(from_dict(MOTR.Config, model_cfg))


def test_tiny_motr_overfits_a_clip_and_tracks_it_with_stable_ids(tmp_path):
    torch.manual_seed(0)
    clip = _clip(tmp_path)
    model = _tiny_motr().train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(60):
        losses = model.training_loss([clip])
        opt.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append(losses["loss"].item())
    assert {"loss", "loss_ce", "loss_bbox", "loss_giou", "aux0/loss_ce"} <= set(losses)
    assert np.mean(history[-5:]) < 0.4 * np.mean(history[:5]), history

    model.eval()
    state, seen = model.new_state(), []
    with torch.no_grad():
        for image, target in clip:
            result, state = model.track(image, state)
            iou, _ = box_iou(box_cxcywh_to_xyxy(result["boxes"]), box_cxcywh_to_xyxy(target["boxes"]))
            assert len(result["ids"]) == len(target["ids"]) and (iou.max(1).values > 0.5).all()
            # which ground-truth object each reported id covers
            seen.append({int(i): int(target["ids"][j]) for i, j in zip(result["ids"], iou.argmax(1))})
    assert sorted(seen[0]) == list(range(len(clip[0][1]["ids"])))  # born in frame 1, ids from 0
    assert seen[0] == seen[1] == seen[2]  # every track follows the same object: no switch, no rebirth
    assert state.context.next_id == len(seen[0])


def test_a_batch_of_clips_is_the_collective_average_of_its_clips(tmp_path):
    """Clips of different lengths in one batch: every loss term is the sum over both clips
    divided by their total number of objects, as if each had been run alone."""
    torch.manual_seed(0)
    a, b = _clip(tmp_path / "a"), _clip(tmp_path / "b", frames=2)
    b = [(img.flip(-1), {**t, "boxes": t["boxes"] * torch.tensor([-1.0, 1, 1, 1]) + torch.tensor([1.0, 0, 0, 0]),
                         "ids": t["ids"] + 100}) for img, t in b]  # mirrored: another clip of the same size
    model = _tiny_motr().train()
    with torch.no_grad():
        both = model.training_loss([a, b])
        alone = [model.training_loss([c]) for c in (a, b)]
    n = [sum(len(t["ids"]) for _, t in c) for c in (a, b)]  # no track disappears in these clips
    for key in ("loss", "loss_ce", "loss_bbox", "loss_giou", "aux0/loss_giou"):
        want = (alone[0][key] * n[0] + alone[1][key] * n[1]) / sum(n)
        assert torch.allclose(both[key], want, rtol=1e-4, atol=1e-5), key


def _rows(ids, boxes, iou=None):
    n = len(ids)
    s = TrackState.new_rows(torch.zeros(n, 4), torch.zeros(n, 2), embed_dim=2, num_classes=1)
    return s.replace(ids=torch.tensor(ids), boxes=torch.tensor(boxes, dtype=torch.float32),
                     iou=torch.tensor(iou if iou is not None else [0.0] * n))


def test_false_positive_insertion_takes_the_best_overlapping_unassigned_row():
    rows = _rows([-1, 3, -1, -1, 5],
                 [[0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2], [0.52, 0.5, 0.2, 0.2], [0.9, 0.9, 0.1, 0.1],
                  [0.85, 0.88, 0.1, 0.1]])
    tracks = torch.tensor([1, 4])
    assert insert_false_positives(rows, tracks, 1.0).tolist() == [2, 3]   # row 2 hugs track 1, row 3 track 4
    assert insert_false_positives(rows, tracks, 0.0).tolist() == []
    assert insert_false_positives(rows[torch.tensor([0, 1, 2, 4])], torch.tensor([1, 3]), 1.0).tolist() == [0, 2]


def test_select_tracks_gates_by_iou_in_training():
    rows = _rows([-1, 3, 4, -1, 7], [[0.5, 0.5, 0.1, 0.1]] * 5, iou=[0.9, 0.6, 0.4, 0.0, 0.51])
    assert select_tracks(rows).tolist() == [1, 4]
    torch.manual_seed(0)
    kept = [len(select_tracks(rows, random_drop=0.5)) for _ in range(400)]
    assert 0.9 < np.mean(kept) < 1.1  # each of the 2 gated tracks survives with probability 0.5


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    clip = _clip(tmp_path, frames=2)
    grads = []
    for flag in (False, True):
        torch.manual_seed(0)
        model = _tiny_motr().train()
        model.cfg.grad_checkpointing = flag
        model.training_loss([clip])["loss"].backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 100
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-6), k


def test_frames_without_objects_train_and_track(tmp_path):
    clip = _clip(tmp_path, frames=2)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "ids": torch.zeros(0, dtype=torch.long)}
    torch.manual_seed(0)
    model = _tiny_motr().train()
    losses = model.training_loss([[clip[0], (clip[1][0], empty)], [(clip[0][0], empty)]])
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    model.eval()
    result, state = model.track(clip[0][0], model.new_state(), orig_size=(96, 128))
    assert result["boxes"].shape[1] == 4 and len(result["ids"]) == len(state)


def test_training_next_state_appends_false_positive_rows_as_candidates(tmp_path):
    """QIM in training: gated tracks (in row order), then the inserted false positives, which
    keep id -1 and so are Hungarian candidates next frame; queries and references updated."""
    torch.manual_seed(0)
    model = _tiny_motr().train()
    model.cfg.qim.fp_ratio = 1.0
    image = _clip(tmp_path, frames=1)[0][0]
    rows = model.step(image[None], None, [model.new_state()])[0].rows
    n = len(rows)
    ids = torch.full((n,), -1)
    ids[[3, 7, 9]] = torch.tensor([10, 11, 12])
    iou = torch.zeros(n)
    iou[[3, 7]] = 0.8  # row 9 is a track whose box missed its target: not propagated
    boxes = torch.tensor([0.5, 0.5, 0.2, 0.2]).repeat(n, 1)
    boxes[5] = torch.tensor([0.31, 0.3, 0.2, 0.2])
    boxes[3] = torch.tensor([0.3, 0.3, 0.2, 0.2])   # row 5 hugs track row 3
    rows = rows.replace(ids=ids, iou=iou, boxes=boxes)
    nxt = model.training_tracks(None, rows)
    # track 3's best-overlapping unassigned row is 5; track 7's box equals every default box,
    # so the first of them (row 0) wins; the inserted rows come sorted, after the tracks.
    order = [3, 7, 0, 5]
    assert nxt.ids.tolist() == [10, 11, -1, -1]
    assert torch.equal(nxt.boxes, rows.boxes[order]) and torch.equal(nxt.embeds, rows.embeds[order])
    want_refs = torch.log(nxt.boxes[:, :2] / (1 - nxt.boxes[:, :2]))
    assert torch.allclose(nxt.refs, want_refs, atol=1e-5)
    assert not torch.allclose(nxt.queries, rows.queries[order], atol=1e-3)  # the TAN updated them


def test_supervise_keeps_identities_counts_disappeared_tracks_and_sums_the_losses(tmp_path):
    """One frame with two track rows (ids 5 and 7) and targets 7 and 9: the track with id 7
    keeps target 7, id 5 is gone (background, counted as a sample), target 9 goes to one detect
    row by Hungarian matching; the final-layer losses are the plain sums written out here."""
    from trackformers.trackers.assignment import ClipLoss
    torch.manual_seed(0)
    model = _tiny_motr().train()
    image = _clip(tmp_path, frames=1)[0][0]
    det = model.detect_rows()
    state = det[torch.tensor([2, 4])].replace(ids=torch.tensor([5, 7]))
    target = {"ids": torch.tensor([7, 9]), "labels": torch.tensor([0, 0]),
              "boxes": torch.tensor([[0.3, 0.4, 0.2, 0.2], [0.7, 0.6, 0.1, 0.3]])}
    out = model.step(image[None], None, [state])[0]
    clip_loss = ClipLoss()
    rows = model.supervise(out, target, clip_loss)
    n = len(det)
    assert clip_loss.num_samples == 2 + 1
    assert rows.gt_idx[n:].tolist() == [-1, 0] and rows.ids[n:].tolist() == [5, 7]
    new = torch.nonzero(rows.gt_idx[:n] >= 0).flatten()
    assert rows.gt_idx[new].tolist() == [1] and rows.ids[new].tolist() == [9]
    assert (rows.ids[:n] == -1).sum() == n - 1
    # the final layer's summed losses, written out
    logits, boxes = out.logits[-1], out.boxes[-1]
    y = torch.zeros_like(logits)
    y[new, 0] = 1.0
    y[n + 1, 0] = 1.0
    p = logits.sigmoid()
    focal = -(0.25 * y * (1 - p) ** 2 * torch.log(p) + 0.75 * (1 - y) * p ** 2 * torch.log(1 - p))
    matched = torch.cat((new, torch.tensor([n + 1])))
    tgt = target["boxes"][torch.tensor([1, 0])]
    assert torch.allclose(clip_loss.terms["loss_ce"], focal.sum(), rtol=1e-4)
    assert torch.allclose(clip_loss.terms["loss_bbox"], (boxes[matched] - tgt).abs().sum(), rtol=1e-5)
    assert set(clip_loss.terms) == {f"{p}loss_{k}" for p in ("", "aux0/") for k in ("ce", "bbox", "giou")}
