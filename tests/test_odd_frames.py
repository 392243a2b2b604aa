"""Odd frames and sources: each tracks correctly or fails with one clear line, none hangs;
and tracking / `synth` are deterministic."""
import filecmp
import os

import cv2
import numpy as np
import pytest

from test_engine_fakes import TinyConfig, TinyTracker
from test_track_cli import expected_rows
from trackformers import checkpoint, cli
from trackformers.config import to_dict
from trackformers.data.mot import read_mot
from trackformers.viz import write_video


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    cfg = TinyConfig()
    return str(checkpoint.save_model(tmp_path_factory.mktemp("model") / "tiny", TinyTracker(cfg).state_dict(),
                                     {"method": "test_engine_fakes:TinyTracker", **to_dict(cfg)}))


def track(capsys, source, model, out):
    """(exit code, stderr) of `trackformers track`."""
    capsys.readouterr()
    code = cli.main(["track", str(source), "--model", str(model), "--out", str(out), "--no-progress"])
    return code, capsys.readouterr().err.strip()


def assert_tracked(path, n_frames, w, h):
    """TinyTracker's scripted rows for n_frames frames of w x h pixels (its boxes scale with the frame)."""
    got, want = read_mot(path), expected_rows(n_frames, w, h)
    assert got.shape[0] == len(want)
    np.testing.assert_allclose(got[:, :7], want, atol=0.005 + 1e-9)


def write_folder(folder, images, ext=".png"):
    folder.mkdir(parents=True)
    for i, im in enumerate(images, 1):
        assert cv2.imwrite(str(folder / f"{i:06d}{ext}"), im)
    return folder


rng = np.random.default_rng(0)


def colour(h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("case, images, ext, size", [
    ("one_pixel", [colour(1, 1)] * 2, ".png", (1, 1)),
    ("large_4000x3000", [np.zeros((3000, 4000, 3), np.uint8)] * 2, ".jpg", (4000, 3000)),
    ("grayscale_png", [rng.integers(0, 256, (24, 40), dtype=np.uint8)] * 3, ".png", (40, 24)),
    ("rgba_png", [rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)] * 3, ".png", (40, 24)),
    ("sixteen_bit_png", [rng.integers(0, 65535, (24, 40, 3), dtype=np.uint16)] * 2, ".png", (40, 24)),
])
def test_odd_images_track(tmp_path, capsys, tiny_model, case, images, ext, size):
    folder = write_folder(tmp_path / case, images, ext)
    code, err = track(capsys, folder, tiny_model, tmp_path / "out")
    assert code == 0, err
    assert_tracked(tmp_path / "out" / f"{case}.txt", len(images), *size)


def test_all_black_and_one_frame_videos(tmp_path, capsys, tiny_model):
    write_video(tmp_path / "black.mp4", [np.zeros((48, 64, 3), np.uint8)] * 6, fps=10)
    write_video(tmp_path / "single.mp4", [colour(48, 64)], fps=10)
    for name, n in (("black", 6), ("single", 1)):
        code, err = track(capsys, tmp_path / f"{name}.mp4", tiny_model, tmp_path / "out")
        assert code == 0, err
        assert_tracked(tmp_path / "out" / f"{name}.txt", n, 64, 48)


def test_all_black_frames_give_no_tracks_with_a_real_model(tmp_path, capsys):
    """The built-in IoU baseline sees nothing on black frames: an empty, complete result file."""
    write_folder(tmp_path / "black", [np.zeros((90, 160, 3), np.uint8)] * 3)
    code, err = track(capsys, tmp_path / "black", "iou-baseline-synth", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "black.txt").read_text() == ""


def one_line_failure(capsys, source, model, out, *needles):
    code, err = track(capsys, source, model, out)
    assert code == 1 and len(err.splitlines()) == 1, err
    for needle in needles:
        assert str(needle) in err, err
    return err


def test_frame_size_changing_mid_sequence_is_one_line(tmp_path, capsys, tiny_model):
    folder = write_folder(tmp_path / "clip", [colour(24, 40), colour(24, 40), colour(30, 40)])
    one_line_failure(capsys, folder, tiny_model, tmp_path / "out", folder / "000003.png", "40x30", "40x24")
    assert_tracked(tmp_path / "out" / "clip.txt.part", 2, 40, 24)  # the frames before it are kept
    assert not (tmp_path / "out" / "clip.txt").exists()


def test_damaged_images_are_one_line(tmp_path, capsys, tiny_model):
    for name, damage in (("truncated_jpeg", lambda b: b[: len(b) // 2]), ("empty_jpeg", lambda b: b""),
                         ("garbage_jpeg", lambda b: b"\xff\xd8" + bytes(range(256)) * 4)):
        folder = write_folder(tmp_path / name, [colour(24, 40)] * 3, ".jpg")
        bad = folder / "000002.jpg"
        bad.write_bytes(damage(bad.read_bytes()))
        one_line_failure(capsys, folder, tiny_model, tmp_path / "out", bad)


def test_zero_byte_and_truncated_videos(tmp_path, capsys, tiny_model):
    (tmp_path / "empty.mp4").write_bytes(b"")
    one_line_failure(capsys, tmp_path / "empty.mp4", tiny_model, tmp_path / "out", tmp_path / "empty.mp4")
    write_video(tmp_path / "full.mp4", [colour(48, 64) for _ in range(20)], fps=10)
    data = (tmp_path / "full.mp4").read_bytes()
    for keep in (0.6, 0.05):
        cut = tmp_path / f"cut{int(keep * 100)}.mp4"
        cut.write_bytes(data[: int(len(data) * keep)])
        code, err = track(capsys, cut, tiny_model, tmp_path / "out")
        if code == 0:  # the frames the decoder could read, tracked, and a whole result file
            n = len(np.unique(read_mot(tmp_path / "out" / f"{cut.stem}.txt")[:, 0]))
            assert 1 <= n < 20
            assert_tracked(tmp_path / "out" / f"{cut.stem}.txt", n, 64, 48)
        else:
            assert code == 1 and len(err.splitlines()) == 1 and str(cut) in err, err


def test_two_track_runs_give_identical_files(tmp_path, capsys):
    from trackformers.data.synthetic import generate_synthetic
    generate_synthetic(str(tmp_path / "data"), "simple", seqs=1, frames=4, size=(160, 96), seed=3)
    split = tmp_path / "data" / "train"
    for out in ("a", "b"):
        code, err = track(capsys, split, "iou-baseline-synth", tmp_path / out)
        assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "a").glob("*.txt"))
    assert names and filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)[0] == names
    assert (tmp_path / "a" / names[0]).read_text()  # something was tracked


def test_synth_is_byte_identical_per_seed(tmp_path):
    def run(out, seed):
        assert cli.main(["synth", "--preset", "dance", "--out", str(out), "--seqs", "2", "--frames", "3",
                         "--size", "96x64", "--seed", str(seed)]) == 0
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    a, b, c = run(tmp_path / "a", 5), run(tmp_path / "b", 5), run(tmp_path / "c", 6)
    assert a == b and len(a) >= 2 * 3 + 2
    assert a != c
