"""`trackformers track` and the streaming API on every kind of source, with a scripted tiny model.

TinyTracker reports fixed normalised boxes per frame (see test_engine_fakes.scripted_tracks),
so the expected MOT rows are computed here independently: pixels = normalised x frame size,
ids + 1 (the method counts from 0).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from test_engine_fakes import TinyConfig, TinyTracker, scripted_tracks
from trackformers import checkpoint, cli
from trackformers.config import to_dict
from trackformers.data.mot import read_mot, write_mot, write_seqinfo
from trackformers.trackers.registry import load_tracker
from trackformers.trackers.results import FrameTracks
from trackformers.viz import write_video

W, H = 64, 48
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def tiny_model(tmp_path):
    cfg = TinyConfig()
    return str(checkpoint.save_model(tmp_path / "tiny", TinyTracker(cfg).state_dict(),
                                     {"method": "test_engine_fakes:TinyTracker", **to_dict(cfg)}))


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def expected_rows(n_frames, w=W, h=H):
    """(frame, id, x, y, w, h, score) rows TinyTracker must produce, from its script."""
    rows = []
    for t in range(1, n_frames + 1):
        for tid, (cx, cy, bw, bh), score in scripted_tracks(t):
            rows.append([t, tid + 1, (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h, score])
    return np.array(rows)


def assert_mot_file(path, n_frames, w=W, h=H):
    got = read_mot(path)
    want = expected_rows(n_frames, w, h)
    assert got.shape == (len(want), 9)
    np.testing.assert_allclose(got[:, :7], want, atol=0.005 + 1e-9)  # written with 2 decimals
    assert (got[:, 7:] == -1).all()


def write_images(folder, images):
    folder.mkdir(parents=True)
    for i, im in enumerate(images, 1):
        cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))


def write_mot_sequence(seq_dir, n):
    write_images(seq_dir / "img1", frames(n))
    write_seqinfo(seq_dir / "seqinfo.ini", seq_dir.name, n, W, H, im_ext=".png")
    write_mot(seq_dir / "gt" / "gt.txt", np.array([[1, 1, 1, 1, 5, 5, 1, 1, 1]]), kind="gt")


def track(*args):
    return cli.main(["track", *map(str, args), "--no-progress"])


def test_image_folder(tmp_path, tiny_model):
    write_images(tmp_path / "clip", frames(5))
    assert track(tmp_path / "clip", "--model", tiny_model, "--out", tmp_path / "out") == 0
    assert_mot_file(tmp_path / "out" / "clip.txt", 5)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 5 and summary["tracks"] == 2 and summary["boxes"] == 9
    assert summary["sequences"]["clip"]["frames"] == 5 and summary["fps"] > 0
    assert summary["model"] == tiny_model and summary["settings"]["score_thresh"] == 0.5


def test_mot_sequence_and_split_folder(tmp_path, tiny_model):
    write_mot_sequence(tmp_path / "val" / "seqA", 4)
    write_mot_sequence(tmp_path / "val" / "seqB", 6)
    assert track(tmp_path / "val" / "seqA", "--model", tiny_model, "--out", tmp_path / "one") == 0
    assert_mot_file(tmp_path / "one" / "seqA.txt", 4)
    # A split folder: one result per sequence, each from a fresh tracker state.
    assert track(tmp_path / "val", "--model", tiny_model, "--out", tmp_path / "all") == 0
    assert_mot_file(tmp_path / "all" / "seqA.txt", 4)
    assert_mot_file(tmp_path / "all" / "seqB.txt", 6)
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert {k: v["frames"] for k, v in summary["sequences"].items()} == {"seqA": 4, "seqB": 6}


def test_video_with_annotated_output(tmp_path, tiny_model):
    write_video(tmp_path / "walk.mp4", frames(8), fps=10)
    assert track(tmp_path / "walk.mp4", "--model", tiny_model, "--out", tmp_path / "out", "--save-video") == 0
    assert_mot_file(tmp_path / "out" / "walk.txt", 8)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "walk.mp4"))
    n, size = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, size = n + 1, frame.shape[:2]
    assert n == 8 and size == (H, W)


def test_results_are_flushed_frame_by_frame(tmp_path, tiny_model):
    write_images(tmp_path / "clip", frames(6))
    with pytest.raises(RuntimeError, match="frame 4"):
        track(tmp_path / "clip", "--model", tiny_model, "--out", tmp_path / "out", "--set", "crash_at=4")
    # The three frames tracked before the crash, in the .part file: no clip.txt passes for a whole result.
    assert_mot_file(tmp_path / "out" / "clip.txt.part", 3)
    assert not (tmp_path / "out" / "clip.txt").exists()
    # A hard crash (the process ends at once: no exception handling, no buffers flushed at exit)
    # still leaves every finished frame on disk, because each frame is flushed as it is written.
    env = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               TRACKFORMERS_TRUSTED_MODULES="test_engine_fakes")
    proc = subprocess.run([sys.executable, "-m", "trackformers.cli", "track", str(tmp_path / "clip"), "--model",
                           tiny_model, "--out", str(tmp_path / "hard"), "--no-progress", "--set", "crash_at=5",
                           "--set", "crash_hard=true"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr[-2000:]
    assert_mot_file(tmp_path / "hard" / "clip.txt.part", 4)
    assert not (tmp_path / "hard" / "clip.txt").exists()


def test_set_overrides_and_unknown_keys(tmp_path, tiny_model, capsys):
    write_images(tmp_path / "clip", frames(2))
    assert track(tmp_path / "clip", "--model", tiny_model, "--out", tmp_path / "out", "--set", "score_thresh=0.25",
                 "--set", "input.short_side=40") == 0
    settings = json.loads((tmp_path / "out" / "summary.json").read_text())["settings"]
    assert settings["score_thresh"] == 0.25 and settings["input"]["short_side"] == 40
    capsys.readouterr()
    assert track(tmp_path / "clip", "--model", tiny_model, "--out", tmp_path / "bad", "--set", "score_trash=0.3") == 2
    err = capsys.readouterr().err.strip()
    assert "score_trash" in err and len(err.splitlines()) == 1


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    write_images(tmp_path / "clip", frames(1))
    assert track(tmp_path / "clip", "--model", tmp_path / "nope", "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err.strip()
    assert "model not found" in err and len(err.splitlines()) == 1


def test_streaming_api(tiny_model):
    tracker = load_tracker(tiny_model, score_thresh=0.3)
    assert tracker.cfg.score_thresh == 0.3
    images = frames(3)
    for t, image in enumerate(images, 1):
        tracks = tracker.step(image)
        want = expected_rows(t)[expected_rows(t)[:, 0] == t]
        assert tracks.frame == t
        assert tracks.ids.tolist() == want[:, 1].astype(int).tolist()
        xyxy = np.concatenate([want[:, 2:4], want[:, 2:4] + want[:, 4:6]], 1)
        np.testing.assert_allclose(tracks.boxes, xyxy, atol=1e-5)
    tracker.reset()
    assert tracker.step(images[0]).frame == 1 and len(tracker.step(images[1])) == 2
    tracker.reset()
    as_tensor = tracker.step(torch.from_numpy(images[0]))  # a HxWx3 uint8 tensor works the same
    assert as_tensor.frame == 1 and as_tensor.to_mot_lines() == FrameTracks(
        1, boxes=[[0.16 * W, 0.2 * H, 0.26 * W, 0.4 * H]], scores=[0.9], labels=[0], ids=[1]).to_mot_lines()
    with pytest.raises(ValueError, match="RGB uint8"):
        tracker.step(images[0].astype(np.float32))
