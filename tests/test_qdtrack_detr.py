"""QDTrack on a tiny Deformable DETR: training (set loss + quasi-dense losses fall), ids held
across the frames of a clip it was overfitted on, and `trackformers track` with the official
tracker names."""
import numpy as np
import pytest
import torch

from test_qdtrack_train import _clip
from trackformers import checkpoint, cli
from trackformers.data.mot import read_mot
from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_iou
from trackformers.trackers.registry import build_tracker, tracker_config

TINY = {"method": "qdtrack_detr",
        "detector": dict(backbone_depth=18, backbone_width=8, frozen_stages=0, hidden_dim=32, nheads=2, enc_layers=1,
                         dec_layers=2, dim_feedforward=64, num_queries=10, num_feature_levels=1),
        "embed": {"fc_channels": 64, "embed_channels": 32}, "input": {"short_side": 48, "max_size": 64}}


@pytest.fixture(scope="module")
def overfitted():
    """The tiny model after 100 AdamW steps on one two-frame clip of 3 squares, and its history."""
    torch.manual_seed(0)
    clip = _clip(torch.Generator().manual_seed(0))
    model = build_tracker(dict(TINY, init_score_thr=0.4, obj_score_thr=0.3))
    head = list(model.embed_head.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("embed_head.")]
    # The official fc_embed init (std 0.01) gives tiny embeddings, whose dot products stay at
    # chance for a while; a faster head makes the test short.
    opt = torch.optim.AdamW([{"params": rest, "lr": 1e-3}, {"params": head, "lr": 3e-3}], weight_decay=1e-4)
    history = []
    model.train()
    for _ in range(100):
        losses = model.training_loss([clip])
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    return model.eval(), clip, history


def test_detection_and_embedding_losses_fall(overfitted):
    _, _, history = overfitted
    assert {"loss_ce", "loss_bbox", "loss_giou", "loss_track", "loss_track_aux"} <= set(history[0])
    mean = lambda key, part: sum(h[key] for h in part) / len(part)  # noqa: E731
    assert mean("loss", history[-5:]) < 0.3 * mean("loss", history[:5])
    # Chance level of the multi-positive CE with 1 positive and 9 negative reference queries:
    # 0.25 * log(1 + 9) = 0.576 (embeddings start near zero); learned, it is far below.
    assert abs(history[0]["loss_track"] - 0.25 * np.log(10)) < 0.02
    assert mean("loss_track", history[-5:]) < 0.1 * history[0]["loss_track"]
    # "loss" is the weighted set loss plus the (already weighted) track terms
    model = overfitted[0]
    h = history[-1]
    det = model.criterion.total({k: torch.tensor(v) for k, v in h.items() if k not in
                                 ("loss", "loss_track", "loss_track_aux")})
    assert abs(float(det) + h["loss_track"] + h["loss_track_aux"] - h["loss"]) < 1e-3


def test_ids_are_held_across_the_frames_of_the_overfitted_clip(overfitted):
    model, clip, _ = overfitted
    state = model.new_state()
    per_frame = []
    for image, target in clip:
        result, state = model.track(image, state, (96, 128))
        iou = box_iou(box_cxcywh_to_xyxy(result["boxes"]), box_cxcywh_to_xyxy(target["boxes"]))[0]
        assert len(result["ids"]) == 3 and bool((iou.max(0).values > 0.5).all()), iou
        per_frame.append({int(target["ids"][j]): int(result["ids"][i]) for i, j in enumerate(iou.argmax(1).tolist())})
    assert len(set(per_frame[0].values())) == 3          # three tracks, one per object
    assert per_frame[1] == per_frame[0]                  # each object keeps its track id
    assert state.next_id == 3 and state.frame == 2


def write_clip(folder, n=3):
    import cv2
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:06d}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def test_track_cli_runs_a_random_tiny_model_with_the_official_tracker_names(tmp_path):
    torch.manual_seed(0)
    model = build_tracker(TINY)
    stem = checkpoint.save_model(tmp_path / "tiny", model.state_dict(), tracker_config(model, "qdtrack_detr"))
    write_clip(tmp_path / "clip")

    def track(out, *sets):
        args = ["track", str(tmp_path / "clip"), "--model", str(stem), "--out", str(tmp_path / out), "--no-progress"]
        for s in sets:
            args += ["--set", s]
        assert cli.main(args) == 0
        return read_mot(tmp_path / out / "clip.txt")

    # A random model scores about 0.01 (the focal prior): with every threshold at 0 each
    # query surviving the memo's duplicate removal is a track.
    rows = track("all", "score_thr=0", "init_score_thr=0", "obj_score_thr=0", "match_score_thr=0")
    assert len(rows) and set(rows[:, 0].astype(int)) == {1, 2, 3} and rows[:, 1].min() == 1
    assert (rows[:, 2] >= -64).all() and (rows[:, 4] > 0).all()
    assert len(rows[rows[:, 0] == 1]) <= TINY["detector"]["num_queries"]
    assert len(track("none", "score_thr=0", "init_score_thr=1.0")) == 0   # nothing is born
