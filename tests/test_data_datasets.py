"""Every dataset reader on the hand-written fixture trees in tests/fixtures/data."""
import os
import shutil

import numpy as np
import pytest

from trackformers.data.datasets import FrameAnnotations, frames_from_mot, load_dataset

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "data")


def xyxy(*xywh):
    x, y, w, h = xywh
    return [x, y, x + w, y + h]


def test_dancetrack_seqmap_order_offsets_and_boxes():
    seqs = load_dataset("dancetrack", FIX, "train")  # FIX is a DATADIR holding DanceTrack/
    # train_seqmap.txt lists dancetrack0002 first.
    assert [s.name for s in seqs] == ["dancetrack0002", "dancetrack0001"]
    s2, s1 = seqs
    assert (s1.width, s1.height, s1.fps, len(s1)) == (32, 24, 20.0, 3)
    assert s1.image_paths[2].endswith(os.path.join("dancetrack0001", "img1", "00000003.jpg"))
    # ids of the first sequence are 1 and 3 -> the next one starts at 4.
    assert (s2.id_offset, s1.id_offset) == (0, 4)
    assert s2.annotations[0].ids.tolist() == [3] and s2.annotations[1].ids.tolist() == [1]
    f1, f2, f3 = s1.annotations
    assert f1.ids.tolist() == [5, 6]
    np.testing.assert_array_equal(f1.boxes, np.array([xyxy(2, 3, 10, 8), xyxy(15, 4, 6, 12)], np.float32))
    # The gt file lists frame 3 before frame 2 and has a blank line and a trailing comma.
    np.testing.assert_array_equal(f2.boxes, np.array([xyxy(3, 3, 10, 8), xyxy(14.5, 4, 6, 12)], np.float32))
    assert f3.ids.tolist() == [6] and f3.boxes.tolist() == [xyxy(14, 5, 6, 12)]
    for f in s1.annotations:
        assert f.boxes.dtype == np.float32 and f.ids.dtype == np.int64 and f.labels.dtype == np.int64
        assert f.labels.tolist() == [0] * len(f) and f.visibility.tolist() == [1.0] * len(f)
        assert not f.ignore.any()


def test_dancetrack_test_split_has_no_gt_and_dataset_folder_as_root():
    (seq,) = load_dataset("DanceTrack", os.path.join(FIX, "DanceTrack"), "test")
    assert seq.name == "dancetrack0003" and not seq.has_gt and len(seq) == 2
    assert all(len(a) == 0 for a in seq.annotations)


def test_sportsmot_six_digit_frames():
    (seq,) = load_dataset("sportsmot", FIX, "train")
    assert seq.image_paths[1].endswith("000002.jpg") and seq.fps == 25
    assert [a.ids.tolist() for a in seq.annotations] == [[1], [1, 2]]
    assert seq.annotations[1].boxes[1].tolist() == xyxy(10, 5, 6, 6)


def test_mot17_one_detector_pedestrians_with_flag_1():
    (seq,) = load_dataset("mot17", FIX, "train")  # SDP by default
    assert seq.name == "MOT17-02-SDP"
    # Hand-worked from gt.txt: flag-0 row (id 2), static person (class 7, id 3) and person on
    # vehicle (class 2, id 4) are dropped; unknown visibility -1 reads as 1.
    assert [a.ids.tolist() for a in seq.annotations] == [[1], [1], [1, 5]]
    np.testing.assert_allclose(seq.annotations[2].visibility, [0.7, 1.0], rtol=1e-6)
    assert seq.annotations[0].boxes.tolist() == [xyxy(1, 2, 8, 16)]
    both = load_dataset("mot17", FIX, "train", detector=None)
    assert [s.name for s in both] == ["MOT17-02-FRCNN", "MOT17-02-SDP"]
    assert both[1].id_offset == 6 and both[1].annotations[0].ids.tolist() == [7]
    (frcnn,) = load_dataset("mot17", FIX, "train", detector="FRCNN")
    assert frcnn.name == "MOT17-02-FRCNN"
    with pytest.raises(ValueError, match="DPM"):
        load_dataset("mot17", FIX, "train", detector="DPM")


def test_mot17_keep_ignored_marks_instead_of_dropping():
    (seq,) = load_dataset("mot17", FIX, "train", keep_ignored=True)
    first = seq.annotations[0]
    assert first.ids.tolist() == [1, 2, 3] and first.ignore.tolist() == [False, True, True]
    assert first.labels.tolist() == [0, 0, 6]


def test_mot20_pedestrians_only():
    (seq,) = load_dataset("mot20", FIX, "train")
    assert seq.name == "MOT20-01"
    assert [a.ids.tolist() for a in seq.annotations] == [[1], [1]]
    np.testing.assert_allclose([a.visibility[0] for a in seq.annotations], [0.25, 0.5])


def test_crowdhuman_full_boxes_ignore_and_visibility():
    seqs = load_dataset("crowdhuman", FIX, "val")
    assert [s.name for s in seqs] == ["273271,c9db000d5146c15", "284193,faa9000f2678b5e"]
    a, b = seqs
    assert (a.width, a.height, len(a)) == (40, 30, 1) and (b.width, b.height) == (36, 20)
    ann = a.annotations[0]
    assert ann.boxes.tolist() == [xyxy(2, 3, 10, 15), xyxy(20, 0, 8, 8), xyxy(-2, 5, 6, 10)]
    assert ann.ignore.tolist() == [False, True, True]  # mask tag, then extra.ignore = 1
    # visible part inside the full box: 10x6 of 10x15; the mask is fully visible; the third
    # box's vbox [0,5,4,10] lies inside its fbox [-2,5,6,10] -> 40 / 60.
    np.testing.assert_allclose(ann.visibility, [0.4, 1.0, 40 / 60], rtol=1e-6)
    assert ann.ids.tolist() == [0, 1, 2] and b.annotations[0].ids.tolist() == [3]
    heads = load_dataset("crowdhuman", FIX, "val", box="hbox")[0].annotations[0]
    assert heads.boxes[0].tolist() == xyxy(4, 3, 3, 3) and heads.ignore.tolist() == [False, True, True]


def test_bdd100k_classes_ignore_and_string_ids():
    (seq,) = load_dataset("bdd100k", FIX, "val")
    assert seq.name == "b1c66a42-6f7d68ca" and (seq.width, seq.height, seq.fps) == (40, 24, 5.0)
    assert [os.path.basename(p) for p in seq.image_paths] == [
        f"b1c66a42-6f7d68ca-{i:07d}.jpg" for i in (1, 2, 3)]  # sorted by frameIndex
    f0, f1, f2 = seq.annotations
    assert f0.labels.tolist() == [2, 0, 2]  # car, pedestrian, other vehicle -> car
    assert f0.ignore.tolist() == [False, False, True]
    assert f0.boxes[0].tolist() == [1.5, 2.0, 20.25, 12.0]
    assert f0.ids.tolist() == [0, 1, 2] and f1.ids.tolist() == [0, 3]  # by first appearance
    assert f1.labels.tolist() == [2, 7] and f1.ignore.tolist() == [False, True]  # crowd bicycle
    assert len(f2) == 0


def test_synthetic_reads_dancetrack_layout(tmp_path):
    shutil.copytree(os.path.join(FIX, "DanceTrack"), tmp_path / "synth")
    seqs = load_dataset("synthetic", str(tmp_path / "synth"), "train")
    assert [s.name for s in seqs] == ["dancetrack0002", "dancetrack0001"]


def test_frames_from_mot_matches_a_naive_split():
    rng = np.random.default_rng(0)
    n = 200
    rows = np.zeros((n, 9))
    rows[:, 0] = rng.integers(1, 11, n)
    rows[:, 1] = rng.integers(1, 30, n)
    rows[:, 2:6] = rng.uniform(1, 50, (n, 4))
    rows[:, 6] = rng.integers(0, 2, n)
    rows[:, 7] = rng.integers(1, 4, n)
    rows[:, 8] = rng.uniform(0, 1, n)
    frames = frames_from_mot(rows, 12, person_only=True)
    for t in range(12):
        keep = (rows[:, 0] == t + 1) & (rows[:, 6] == 1) & (rows[:, 7] == 1)
        expect = rows[keep]
        got = frames[t]
        assert got.ids.tolist() == expect[:, 1].astype(int).tolist()
        np.testing.assert_allclose(got.boxes[:, 2], expect[:, 2] + expect[:, 4], rtol=1e-6)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("kitti", FIX)
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_dataset("dancetrack", FIX, "val")
    seq_dir = tmp_path / "DanceTrack" / "train" / "dt1"
    shutil.copytree(os.path.join(FIX, "DanceTrack", "train", "dancetrack0002"), seq_dir)
    (seq_dir / "gt" / "gt.txt").write_text("1,1,0,0,5,5,1,1,1\n2,1,x,1,5,5,1,1,1\n")
    with pytest.raises(ValueError, match=r"^[^:]*gt\.txt:2: not a number"):  # the path once
        load_dataset("dancetrack", str(tmp_path), "train")
    (seq_dir / "gt" / "gt.txt").write_text("7,1,0,0,5,5,1,1,1\n")
    with pytest.raises(ValueError, match=r"gt\.txt:1: frame 7 is outside 1\.\.2"):
        load_dataset("dancetrack", str(tmp_path), "train")
    os.remove(seq_dir / "img1" / "00000002.jpg")
    with pytest.raises(ValueError, match="seqLength=2"):
        load_dataset("dancetrack", str(tmp_path), "train")
    shutil.copy(seq_dir / "img1" / "00000001.jpg", seq_dir / "img1" / "00000003.jpg")
    with pytest.raises(ValueError, match="without gaps"):
        load_dataset("dancetrack", str(tmp_path), "train")


def test_unpadded_frame_names_sort_by_number(tmp_path):
    seq_dir = tmp_path / "train" / "s1"
    (seq_dir / "img1").mkdir(parents=True)
    src = os.path.join(FIX, "DanceTrack", "train", "dancetrack0001", "img1", "00000001.jpg")
    for k in range(1, 12):
        shutil.copy(src, seq_dir / "img1" / f"{k}.jpg")
    (seq_dir / "seqinfo.ini").write_text("[Sequence]\nname=s1\nimDir=img1\nframeRate=10\nseqLength=11\nimWidth=32\nimHeight=24\nimExt=.jpg\n")
    (seq,) = load_dataset("synthetic", str(tmp_path))
    assert [os.path.basename(p) for p in seq.image_paths] == [f"{k}.jpg" for k in range(1, 12)]
    assert not seq.has_gt


def test_frame_annotations_select():
    ann = FrameAnnotations(np.arange(8, dtype=np.float32).reshape(2, 4), np.array([4, 9]),
                           np.array([0, 1]), np.array([0.5, 1.0], np.float32), np.array([False, True]))
    sub = ann.select(np.array([False, True]))
    assert sub.ids.tolist() == [9] and sub.boxes.tolist() == [[4, 5, 6, 7]] and sub.ignore.tolist() == [True]
