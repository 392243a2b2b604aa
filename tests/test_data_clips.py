"""Clip sampler schedule, clip-consistent transforms, pseudo-clips and the clip Dataset."""
import os
import random

import numpy as np
import pytest
import torch

from trackformers.data import transforms as T
from trackformers.data.clips import ClipDataset, ClipSampler, collate
from trackformers.data.datasets import load_dataset
from trackformers.data.synthetic import generate_synthetic

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "data")


# ----------------------------------------------------------------------------- sampler


def test_sampler_length_per_epoch_memotr_dancetrack():
    sampler = ClipSampler(lengths=(2, 3, 4, 5), steps=(6, 10, 14), intervals=(10,))
    got = []
    for epoch in range(18):
        sampler.set_epoch(epoch)
        got.append(sampler.length)
    assert got == [2] * 6 + [3] * 4 + [4] * 4 + [5] * 4


def test_sampler_per_stage_intervals_and_modes():
    sampler = ClipSampler(lengths=(2, 3, 4), steps=(6, 10), intervals=(4, 2, 1), modes=("random_interval", "fixed_interval"))
    sampler.set_epoch(7)
    assert (sampler.length, sampler.interval, sampler.mode) == (3, 2, "fixed_interval")
    assert sampler.frames(100, 5) == [5, 7, 9]
    assert sampler.frames(10, 6) == [6, 7, 8]  # stride shrinks to fit: (9 - 6) // 2 = 1
    with pytest.raises(ValueError, match="sample mode"):
        ClipSampler(modes=("uniform",))


def test_random_interval_strides_stay_in_range():
    sampler = ClipSampler(lengths=(4,), steps=(), intervals=(10,))
    rng = random.Random(0)
    n = 50
    strides = set()
    for start in sampler.starts(n):
        frames = sampler.frames(n, start, rng)
        stride = frames[1] - frames[0]
        assert len(frames) == 4 and frames[-1] <= n - 1
        assert np.all(np.diff(frames) == stride) and 1 <= stride <= 10
        assert stride == min(stride, (n - 1 - start) // 3)
        strides.add(stride)
    assert len(sampler.starts(n)) == n - 3 and strides == set(range(1, 11))


# -------------------------------------------------------------------------- transforms


def test_resize_rule_hand_worked():
    assert T.resized_size(1920, 1080, 800, 1536) == (800, 1422)
    # 1000x300 with short side 800 would be 2666 long > 1333 -> short side round(1333*0.3) = 400
    assert T.resized_size(1000, 300, 800, 1333) == (400, 1333)
    assert T.resized_size(600, 800, 600, None) == (800, 600)  # already right: unchanged
    assert T.resized_size(640, 360, 608, 1536) == (608, 1080)
    img = np.zeros((1080, 1920, 3), np.uint8)
    assert T.resize_for_inference(img, 800, 1536).shape == (800, 1422, 3)


def painted_clip(n_frames=3, H=60, W=80, seed=0):
    """Frames with one flat-coloured rectangle per object (colour = id), moving a little."""
    rng = np.random.default_rng(seed)
    base = np.array([[5, 5, 25, 20], [40, 10, 70, 30], [2, 35, 30, 58], [60, 40, 79, 59]], np.float32)
    images, targets = [], []
    for t in range(n_frames):
        boxes = base + np.array([2 * t, t, 2 * t, t], np.float32)
        boxes = np.minimum(boxes, [W, H, W, H]).astype(np.float32)
        image = np.zeros((H, W, 3), np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
            image[y1:y2, x1:x2] = (50 * (k + 1), 255 - 50 * k, 128)
        images.append(image)
        targets.append({"boxes": boxes, "ids": np.arange(4, dtype=np.int64) + 10, "labels": np.arange(4, dtype=np.int64)})
    return images, targets, rng


def pixel_box(image, k, tol=0):
    """Bounding box (xyxy, exclusive) of the pixels painted with object k's colour."""
    colour = np.array([50 * (k + 1), 255 - 50 * k, 128])
    hit = (np.abs(image.astype(int) - colour).max(-1) <= tol)
    if not hit.any():
        return None
    ys, xs = np.nonzero(hit)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_flip_and_crop_are_exact_and_consistent_across_frames():
    images, targets, _ = painted_clip()
    pipeline = T.Compose([T.RandomHorizontalFlip(p=1.0), T.RandomCrop(30, 50)])
    for seed in range(5):
        out_images, out_targets = pipeline(images, targets, random.Random(seed))
        assert len({im.shape for im in out_images}) == 1 and out_images[0].shape == (30, 50, 3)
        for image, target in zip(out_images, out_targets):
            seen = [k for k in range(4) if pixel_box(image, k) is not None]
            # an object survives exactly when some of its pixels do, and keeps its id
            assert target["ids"].tolist() == [10 + k for k in seen]
            for k, box, label in zip(seen, target["boxes"], target["labels"]):
                assert label == k and box.tolist() == pixel_box(image, k)


def test_resize_crop_resize_boxes_follow_the_pixels():
    images, targets, _ = painted_clip(H=120, W=160)
    for t in targets:
        t["boxes"] *= 2
    images = [np.repeat(np.repeat(im, 2, 0), 2, 1) for im in images]
    pipeline = T.Compose([T.RandomHorizontalFlip(), T.RandomResize([96, 112]), T.RandomSizeCrop(60, 90),
                          T.RandomResize([64, 80], max_size=200)])
    for seed in range(6):
        out_images, out_targets = pipeline(images, targets, random.Random(seed))
        assert len({im.shape for im in out_images}) == 1
        for image, target in zip(out_images, out_targets):
            for k, box in zip(target["ids"] - 10, target["boxes"]):
                found = pixel_box(image, k, tol=2)
                if found is None:  # a sliver thinner than a pixel after resizing
                    assert min(box[2] - box[0], box[3] - box[1]) < 2.5
                    continue
                # pure-colour pixels lie inside the box; the box exceeds them by at most the
                # fractional edge plus the blur of two resamplings (the second may enlarge
                # by up to 80/60, blurring over ~1.3 output pixels)
                found = np.array(found, np.float32)
                assert (found[:2] >= box[:2] - 0.5).all() and (found[2:] <= box[2:] + 0.5).all()
                assert (found[:2] - box[:2]).max() <= 2.5 and (box[2:] - found[2:]).max() <= 2.5


def test_resize_by_an_exact_factor_is_exact():
    images, targets, _ = painted_clip()
    big = [np.repeat(np.repeat(im, 2, 0), 2, 1) for im in images]
    big_targets = [{**t, "boxes": t["boxes"] * 2} for t in targets]
    out_images, out_targets = T.RandomResize([60])(big, big_targets, random.Random(0))  # 120x160 -> 60x80
    for image, target, small in zip(out_images, out_targets, images):
        assert np.array_equal(image, small)
        for k, box in zip(target["ids"] - 10, target["boxes"]):
            assert box.tolist() == pixel_box(image, k)


def test_overflow_crop_keeps_boxes_unclipped_but_drops_vanished():
    images, targets, _ = painted_clip(n_frames=1)
    out_images, out_targets = T.crop_clip(images, targets, top=0, left=28, height=60, width=30, overflow=True)
    # crop x 28..58: object 0 (x 5..25) and object 3 (x 60..79) are gone; object 1 (40..70)
    # overflows on the right, object 2 (2..30) on the left, and both keep their full extent
    assert out_targets[0]["ids"].tolist() == [11, 12]
    assert out_targets[0]["boxes"].tolist() == [[12, 10, 42, 30], [-26, 35, 2, 58]]
    _, clipped = T.crop_clip(images, targets, top=0, left=28, height=60, width=30)
    assert clipped[0]["boxes"].tolist() == [[12, 10, 30, 30], [0, 35, 2, 58]]


def test_hsv_jitter_same_change_for_every_frame():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    jitter = T.HSVJitter()
    changed = 0
    for seed in range(8):
        out, _ = jitter([frame, frame.copy(), frame.copy()], [{}, {}, {}], random.Random(seed))
        assert all(np.array_equal(out[0], o) for o in out[1:])
        changed += not np.array_equal(out[0], frame)
    assert changed >= 4


def test_to_tensor_normalize_values_and_boxes():
    image = np.zeros((4, 8, 3), np.uint8)
    image[1, 2] = (255, 128, 0)
    target = {"boxes": np.array([[2, 1, 6, 3]], np.float32), "ids": np.array([5]), "labels": np.array([0])}
    (x,), (t,) = T.ToTensorNormalize()([image], [target])
    assert x.shape == (3, 4, 8) and x.dtype == torch.float32
    expect = [(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    assert torch.allclose(x[:, 1, 2], torch.tensor(expect), atol=1e-6)
    # bit-identical to torchvision's to_tensor + normalize (float32 ops in the same order)
    frame = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    (y,), _ = T.ToTensorNormalize()([frame], [target])
    ref = torch.from_numpy(frame).permute(2, 0, 1).float().div(255)
    ref = ref.sub(torch.tensor(T.IMAGENET_MEAN).view(3, 1, 1)).div(torch.tensor(T.IMAGENET_STD).view(3, 1, 1))
    assert torch.equal(y, ref)
    assert torch.allclose(t["boxes"], torch.tensor([[4 / 8, 2 / 4, 4 / 8, 2 / 4]]))
    assert t["size"].tolist() == [4, 8] and t["ids"].dtype == torch.int64


def test_pseudo_clip_boxes_follow_the_pixels():
    images, targets, _ = painted_clip(n_frames=1, H=120, W=160)
    image = np.repeat(np.repeat(images[0], 2, 0), 2, 1)
    target = {**targets[0], "boxes": targets[0]["boxes"] * 2}
    for seed in range(4):
        out_images, out_targets = T.pseudo_clip(image, target, 4, random.Random(seed), max_shift=12)
        assert np.array_equal(out_images[0], image) and np.array_equal(out_targets[0]["boxes"], target["boxes"])
        assert all(im.shape == image.shape for im in out_images)
        for im, t in zip(out_images[1:], out_targets[1:]):
            for k, box in zip(t["ids"] - 10, t["boxes"]):
                found = pixel_box(im, k, tol=2)
                assert found is not None and np.abs(np.array(found) - box).max() <= 1.6
        # the per-frame zoom accumulates: boxes of a kept object grow monotonically
        widths = [t["boxes"][t["ids"] == 11][:, 2] - t["boxes"][t["ids"] == 11][:, 0] for t in out_targets]
        if all(len(w) for w in widths):
            assert all(b >= a - 1e-4 for a, b in zip(widths, widths[1:]))


# ------------------------------------------------------------------------------ dataset


def test_clip_dataset_targets_match_the_annotations(tmp_path):
    generate_synthetic(str(tmp_path), "simple", seqs=2, frames=8, size=(64, 48), seed=0)
    seqs = load_dataset("synthetic", str(tmp_path))
    sampler = ClipSampler(lengths=(2, 3), steps=(1,), intervals=(2,), modes=("fixed_interval",))
    ds = ClipDataset(seqs, sampler, transform=T.Compose([T.ToTensorNormalize()]), rng=random.Random(0))
    assert len(ds) == 2 * 7
    ds.set_epoch(1)
    assert len(ds) == 2 * 6
    for i in range(len(ds)):
        clip = ds[i]
        s, start = ds.index[i]
        stride = min(2, (7 - start) // 2)
        assert len(clip) == 3
        for j, (image, target) in enumerate(clip):
            ann = seqs[s].annotations[start + j * stride]  # naive: the frame the clip must hold
            b = ann.boxes
            expect = np.stack([(b[:, 0] + b[:, 2]) / 128, (b[:, 1] + b[:, 3]) / 96,
                               (b[:, 2] - b[:, 0]) / 64, (b[:, 3] - b[:, 1]) / 48], 1)
            assert image.shape == (3, 48, 64) and image.dtype == torch.float32
            assert target["orig_size"].tolist() == [48, 64] and target["size"].tolist() == [48, 64]
            assert target["ids"].tolist() == ann.ids.tolist() and target["labels"].tolist() == ann.labels.tolist()
            np.testing.assert_allclose(target["boxes"].numpy(), expect, rtol=1e-6)
    # ids are unique across sequences, so clips of two videos can share a batch
    assert not set(np.concatenate([a.ids for a in seqs[0].annotations])) & set(np.concatenate([a.ids for a in seqs[1].annotations]))
    batch = collate([ds[0], ds[7]])
    assert isinstance(batch, list) and len(batch) == 2 and len(batch[0]) == 3


def test_clip_dataset_full_pipeline_and_pseudo_clips():
    crowd = load_dataset("crowdhuman", FIX, "val")
    ds = ClipDataset(crowd, ClipSampler(lengths=(3,), steps=()), transform=T.scaled_train_transforms(32),
                     max_shift=4, rng=random.Random(1))
    assert len(ds) == 2
    clip = ds[0]
    assert len(clip) == 3 and len({img.shape for img, _ in clip}) == 1
    for image, target in clip:
        assert target["ids"].tolist() in ([0], [])  # ignore regions (ids 1, 2) are left out
        assert ((target["boxes"] >= 0) & (target["boxes"] <= 1)).all()
        assert target["labels"].dtype == torch.int64 and target["boxes"].dtype == torch.float32


def test_boxes_past_the_border_are_clipped_at_load():
    (seq,) = load_dataset("crowdhuman", FIX, "val")[:1]
    seq.annotations[0].ignore[:] = False  # the third box starts at x = -2
    ds = ClipDataset([seq], ClipSampler(lengths=(1,), steps=()), transform=None)
    (image, target), = ds[0]
    assert target["ids"].tolist() == [0, 1, 2]
    assert target["boxes"].tolist() == [[2, 3, 12, 18], [20, 0, 28, 8], [0, 5, 4, 15]]


def test_tracker_inference_rule_hand_worked_and_on_the_official_frames(shared_dir):
    assert T.tracker_inference_size(2000, 800, 800, 1536) == (614, 1536)  # DETR rule: (614, 1535)
    assert T.resized_size(2000, 800, 800, 1536) == (614, 1535)
    assert T.tracker_inference_size(1920, 1080) == (800, 1422)
    for model in ("motr", "memotr"):
        frames = torch.load(os.path.join(shared_dir, "fixtures", model, "frames.pt"), weights_only=False)
        for raw, expect in zip(frames["frames_rgb_uint8"][:2], frames["resized_rgb_uint8"][:2]):
            got = T.resize_for_inference(raw.numpy(), 800, 1536, rule="motr")
            assert np.array_equal(got, expect.numpy())  # bit-exact: the official cv2.resize
    with pytest.raises(ValueError, match="resize rule"):
        T.resize_for_inference(np.zeros((4, 4, 3), np.uint8), rule="pil")


def test_detr_inference_resize_is_bit_exact_on_the_official_images(shared_dir):
    images = torch.load(os.path.join(shared_dir, "fixtures", "deformable_detr", "images.pt"), weights_only=False)
    for raw, expect in zip(images["images_rgb_uint8"], images["resized_rgb_uint8"]):
        got = T.resize_for_inference(np.asarray(raw), 800, 1333)  # rule="detr"
        assert np.array_equal(got, np.asarray(expect))
