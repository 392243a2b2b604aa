"""The synthetic benchmark: layout, every preset, determinism, exact visibility."""
import hashlib
import os

import numpy as np
import pytest

from trackformers.cli import main
from trackformers.data.datasets import load_dataset
from trackformers.data.mot import read_mot, read_seqinfo, read_seqmap
from trackformers.data.synthetic import generate_synthetic, render_frame


def tree_hash(root):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.mark.parametrize("preset,classes", [("simple", {1}), ("dance", {1}), ("crowd", {1}), ("multiclass", {1, 2, 3, 4})])
def test_every_preset_writes_a_readable_dancetrack_layout(tmp_path, preset, classes):
    names = generate_synthetic(str(tmp_path), preset, seqs=2, frames=12, size=(160, 96), seed=3)
    assert names == [f"{preset}0001", f"{preset}0002"]
    assert read_seqmap(tmp_path / "train_seqmap.txt") == names
    info = read_seqinfo(tmp_path / "train" / names[0] / "seqinfo.ini")
    assert (info["imWidth"], info["imHeight"], info["seqLength"]) == (160, 96, 12)
    seqs = load_dataset("synthetic", str(tmp_path), "train")
    assert [len(s) for s in seqs] == [12, 12]
    seen = set()
    for seq in seqs:
        gt = read_mot(os.path.join(tmp_path, "train", seq.name, "gt", "gt.txt"))
        assert len(gt) > 0 and set(gt[:, 0].astype(int)) <= set(range(1, 13))
        seen |= set(gt[:, 7].astype(int).tolist())
        # boxes are clipped to the image, visible, and at most one row per (frame, id)
        assert (gt[:, 2] >= 0).all() and (gt[:, 3] >= 0).all()
        assert (gt[:, 2] + gt[:, 4] <= 160).all() and (gt[:, 3] + gt[:, 5] <= 96).all()
        assert ((gt[:, 8] > 0) & (gt[:, 8] <= 1)).all() and (gt[:, 6] == 1).all()
        assert len(np.unique(gt[:, :2], axis=0)) == len(gt)
    assert seen <= classes and (preset != "multiclass" or len(seen) >= 3)


def test_same_seed_same_bytes_other_seed_or_split_differs(tmp_path):
    for d, seed, split in (("a", 7, "train"), ("b", 7, "train"), ("c", 8, "train")):
        generate_synthetic(str(tmp_path / d), "dance", seqs=1, frames=5, size=(128, 72), seed=seed, split=split)
    generate_synthetic(str(tmp_path / "d"), "dance", seqs=1, frames=5, size=(128, 72), seed=7, split="val")
    assert tree_hash(tmp_path / "a") == tree_hash(tmp_path / "b")
    assert tree_hash(tmp_path / "a") != tree_hash(tmp_path / "c")
    a = (tmp_path / "a" / "train" / "dance0001" / "gt" / "gt.txt").read_bytes()
    assert a != (tmp_path / "d" / "val" / "dance0001" / "gt" / "gt.txt").read_bytes()


def test_visibility_hand_worked():
    bg = np.zeros((10, 20, 3), np.uint8)
    square = np.full((4, 4, 3), 200, np.uint8)
    full = np.ones((4, 4), bool)
    tri = np.tril(np.ones((4, 4), bool))  # 10 pixels
    sprites, masks = [square, square, square, square], [full, full, full, tri]
    xy = np.array([[2, 2], [4, 2], [-2, 6], [16, 0]])
    frame, vis = render_frame(bg, sprites, masks, xy, np.array([0, 1, 2, 3]))
    # 0 is half hidden by 1 (drawn later, columns 4-5); 2 is half outside the left border;
    # the triangle is drawn over nothing and fully inside.
    np.testing.assert_allclose(vis, [0.5, 1.0, 0.5, 1.0])
    assert frame[2:6, 2:8].min() == 200 and frame[0, 0].max() == 0
    assert frame[0, 16].min() == 200 and frame[0, 17].max() == 0  # triangle row 0: 1 pixel
    _, vis = render_frame(bg, sprites, masks, xy, np.array([1, 0]))  # 0 now in front
    np.testing.assert_allclose(vis, [0.5, 1.0])


def test_visibility_matches_a_naive_pixel_loop():
    rng = np.random.default_rng(0)
    H, W, n = 30, 40, 6
    masks = [rng.random((int(rng.integers(3, 12)), int(rng.integers(3, 12)))) < 0.7 for _ in range(n)]
    for m in masks:
        m[0, 0] = True
    sprites = [np.full(m.shape + (3,), 10 * (k + 1), np.uint8) for k, m in enumerate(masks)]
    xy = rng.integers(-5, 35, (n, 2))
    order = rng.permutation(n)
    frame, vis = render_frame(np.zeros((H, W, 3), np.uint8), sprites, masks, xy, order)
    top = -np.ones((H, W), int)
    for k in order:  # naive painter's algorithm, pixel by pixel
        for (r, c) in zip(*np.nonzero(masks[k])):
            y, x = xy[k, 1] + r, xy[k, 0] + c
            if 0 <= y < H and 0 <= x < W:
                top[y, x] = k
    for j, k in enumerate(order):
        assert vis[j] == pytest.approx((top == k).sum() / masks[k].sum())
        assert (frame[top == k] == 10 * (k + 1)).all()


def test_dance_has_crossings_and_partial_occlusions(tmp_path):
    generate_synthetic(str(tmp_path), "dance", seqs=1, frames=40, size=(320, 180), seed=0)
    gt = read_mot(tmp_path / "train" / "dance0001" / "gt" / "gt.txt")
    overlapping = 0
    for t in range(1, 41):
        g = gt[gt[:, 0] == t]
        x1, y1, x2, y2 = g[:, 2], g[:, 3], g[:, 2] + g[:, 4], g[:, 3] + g[:, 5]
        iw = np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None])
        ih = np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None])
        overlap = (iw > 0) & (ih > 0)
        np.fill_diagonal(overlap, False)
        overlapping += overlap.any()
    assert overlapping >= 20  # boxes overlap in most frames
    assert (gt[:, 8] < 0.9).mean() > 0.1  # and many objects are partly hidden


def test_cli_synth_and_bad_arguments(tmp_path, capsys):
    out = str(tmp_path / "s")
    assert main(["synth", "--preset", "simple", "--out", out, "--seqs", "1", "--frames", "3",
                 "--size", "64x48", "--seed", "1", "--split", "val"]) == 0
    assert sorted(os.listdir(os.path.join(out, "val", "simple0001", "img1"))) == [f"{i:08d}.jpg" for i in (1, 2, 3)]
    assert os.path.isfile(os.path.join(out, "val_seqmap.txt"))
    with pytest.raises(SystemExit) as e:
        main(["synth", "--out", out, "--size", "64by48"])
    assert e.value.code == 2
    assert main(["synth", "--out", out, "--frames", "0"]) == 1
    assert "--frames must be >= 1" in capsys.readouterr().err
