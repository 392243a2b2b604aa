"""Frame sources: video written here with cv2, image folder, MOT sequence, errors."""
import os
import shutil

import cv2
import numpy as np
import pytest

import trackformers
from trackformers.data.sources import list_sequences, open_source, read_frames

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "data")
SEQ = os.path.join(FIX, "DanceTrack", "train", "dancetrack0001")


def coloured(k, h=48, w=64):
    """RGB frame: a solid colour that identifies frame k, a white square at the top-left."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = (200, 30 * k % 256, 40)
    rgb[:8, :8] = 255
    return rgb


def test_video_file(tmp_path):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (64, 48))
    for k in range(5):
        writer.write(cv2.cvtColor(coloured(k), cv2.COLOR_RGB2BGR))
    writer.release()
    src = open_source(path)
    assert (src.name, src.num_frames, src.size, src.fps) == ("clip", 5, (64, 48), 12.0)
    frames = list(read_frames(path))
    assert [i for i, _ in frames] == [0, 1, 2, 3, 4]
    for k, frame in frames:
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        # RGB order, JPEG-compressed: red channel ~200, green encodes the frame
        np.testing.assert_allclose(frame[24, 40], coloured(k)[24, 40], atol=12)
    assert len(list(src)) == 5  # iterating again starts from the beginning


def test_image_folder_natural_order(tmp_path):
    for k in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"f{k}.png"), cv2.cvtColor(coloured(k), cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not an image")
    src = open_source(str(tmp_path))
    assert [os.path.basename(p) for p in src.paths] == ["f1.png", "f2.png", "f10.png"]
    assert src.size == (64, 48) and len(src) == 3
    frames = list(src)
    assert np.array_equal(frames[2][1], coloured(10))  # PNG: lossless, RGB order


def test_mot_sequence_folder_and_public_api():
    src = open_source(SEQ)
    assert (src.name, src.fps, src.num_frames, src.size) == ("dancetrack0001", 20.0, 3, (32, 24))
    frames = list(trackformers.read_frames(SEQ))
    assert [i for i, _ in frames] == [0, 1, 2] and frames[0][1].shape == (24, 32, 3)
    expect = cv2.cvtColor(cv2.imread(os.path.join(SEQ, "img1", "00000002.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(frames[1][1], expect)


def test_list_sequences():
    seqs = list_sequences(os.path.join(FIX, "DanceTrack", "train"))
    assert [s.name for s in seqs] == ["dancetrack0001", "dancetrack0002"] and [len(s) for s in seqs] == [3, 2]
    assert [s.name for s in list_sequences(SEQ)] == ["dancetrack0001"]
    with pytest.raises(ValueError, match="no MOT sequences"):
        list_sequences(os.path.join(FIX, "CrowdHuman"))


def test_missing_and_unreadable_sources_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="source not found: .*nothing.mp4"):
        open_source(str(tmp_path / "nothing.mp4"))
    (tmp_path / "broken.mp4").write_bytes(b"this is not a video")
    with pytest.raises(ValueError, match="broken.mp4"):
        open_source(str(tmp_path / "broken.mp4"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images in source: empty"):
        open_source(str(empty))
    shutil.copytree(SEQ, tmp_path / "seq")
    (tmp_path / "seq" / "img1" / "00000002.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable image: .*00000002.jpg"):
        list(read_frames(str(tmp_path / "seq")))
    with pytest.raises(ValueError, match="cannot open webcam: 97"):
        open_source("97")
