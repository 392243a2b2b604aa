"""MOT text, seqinfo, seqmap, CrowdHuman odgt and BDD100K JSON: read / write / errors."""
import os

import numpy as np
import pytest

from trackformers.data import mot
from trackformers.data.bdd import BddFrame, read_bdd_video, write_bdd_video
from trackformers.data.odgt import read_odgt, write_odgt

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "data")


def test_mot_gt_round_trip(tmp_path):
    rows = np.array([[1, 3, 10.25, 20.5, 30, 40, 1, 1, 0.75],
                     [2, 4, -5.5, 0, 12.75, 8, 0, 7, 0.0]])
    mot.write_mot(tmp_path / "gt.txt", rows, kind="gt")
    np.testing.assert_array_equal(mot.read_mot(tmp_path / "gt.txt"), rows)


def test_mot_result_round_trip_and_tolerance(tmp_path):
    path = tmp_path / "res.txt"
    rows = np.array([[1, 1, 1.5, 2.25, 3, 4, 0.875, -1, -1], [3, 2, 0, 0, 10, 10, 1, -1, -1]])
    mot.write_mot(path, rows)
    assert path.read_text().splitlines()[0] == "1,1,1.50,2.25,3.00,4.00,0.875,-1,-1,-1"
    np.testing.assert_array_equal(mot.read_mot(path), rows)
    # blank lines and trailing commas are fine; six columns get conf 1, class -1, vis -1
    path.write_text("1,1,1,2,3,4,\n\n2,1,2,2,3,4\n")
    np.testing.assert_array_equal(mot.read_mot(path)[:, 6:], [[1, -1, -1], [1, -1, -1]])


def test_mot_malformed_rows_name_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1,1,1,2,3,4,1,1,1\n\n2,1,1,2\n")
    with pytest.raises(ValueError, match=rf"{path}:3: expected at least 6"):
        mot.read_mot(path)
    path.write_text("1,1,1,2,3,4,1,1,1\n2,1,1,2,three,4,1,1,1\n")
    with pytest.raises(ValueError, match=rf"{path}:2: not a number"):
        mot.read_mot(path)


def test_seqinfo_and_seqmap_round_trip(tmp_path):
    mot.write_seqinfo(tmp_path / "seqinfo.ini", "seq1", 120, 640, 360, frame_rate=20)
    info = mot.read_seqinfo(tmp_path / "seqinfo.ini")
    assert (info["name"], info["seqLength"], info["imWidth"], info["imHeight"], info["frameRate"]) == ("seq1", 120, 640, 360, 20)
    mot.write_seqmap(tmp_path / "map.txt", ["a", "b"])
    assert mot.read_seqmap(tmp_path / "map.txt") == ["a", "b"]
    info = mot.read_seqinfo(os.path.join(FIX, "SportsMOT", "train", "v_2Dw9QNH5KtU_c003", "seqinfo.ini"))
    assert info["imExt"] == ".jpg" and info["seqLength"] == 2


def test_odgt_read_flags_and_round_trip(tmp_path):
    images = read_odgt(os.path.join(FIX, "CrowdHuman", "annotation_val.odgt"))
    assert [im.image_id for im in images] == ["273271,c9db000d5146c15", "284193,faa9000f2678b5e"]
    a = images[0]
    assert a.tags == ["person", "mask", "person"]
    assert a.fbox.tolist() == [[2, 3, 10, 15], [20, 0, 8, 8], [-2, 5, 6, 10]]
    assert a.vbox[0].tolist() == [2, 3, 10, 6] and a.hbox[2].tolist() == [0, 5, 2, 2]
    assert a.ignore.tolist() == [False, True, True] and a.head_ignore.tolist() == [False, True, True]
    write_odgt(tmp_path / "out.odgt", images)
    again = read_odgt(tmp_path / "out.odgt")
    for x, y in zip(images, again):
        assert x.image_id == y.image_id and x.tags == y.tags
        for kind in ("fbox", "vbox", "hbox", "ignore", "head_ignore"):
            np.testing.assert_array_equal(getattr(x, kind), getattr(y, kind))


def test_odgt_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.odgt"
    path.write_text('{"ID": "a", "gtboxes": []}\n{"ID": "b", "gtboxes": [{"fbox": [1, 2, 3]}]}\n')
    with pytest.raises(ValueError, match=rf"{path}:2: fbox must be a list of 4"):
        read_odgt(path)
    path.write_text('{"ID": "a"}\n\n{"ID": "b",\n')
    with pytest.raises(ValueError, match=rf"{path}:3: not valid JSON"):
        read_odgt(path)
    with pytest.raises(FileNotFoundError, match="odgt file not found"):
        read_odgt(tmp_path / "missing.odgt")


def test_bdd_read_and_round_trip(tmp_path):
    path = os.path.join(FIX, "BDD100K", "labels", "box_track_20", "val", "b1c66a42-6f7d68ca.json")
    frames = read_bdd_video(path)
    assert [f.frame_index for f in frames] == [0, 1, 2]
    f0 = frames[0]
    assert f0.ids == ["00091078", "00091079", "00091080"]
    assert f0.categories == ["car", "pedestrian", "other vehicle"]
    assert f0.occluded.tolist() == [False, True, False] and f0.truncated.tolist() == [False, False, True]
    labels, ignore = frames[1].labels_and_ignore()
    assert labels.tolist() == [2, 7] and ignore.tolist() == [False, True]
    write_bdd_video(tmp_path / "v.json", frames)
    again = read_bdd_video(tmp_path / "v.json")
    for x, y in zip(frames, again):
        assert (x.name, x.video_name, x.frame_index, x.ids, x.categories) == (y.name, y.video_name, y.frame_index, y.ids, y.categories)
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.crowd, y.crowd)


def test_bdd_results_with_scores_and_errors(tmp_path):
    fr = BddFrame("v-0000001.jpg", "v", 0, ids=["7"], categories=["bus"],
                  boxes=np.array([[1.0, 2.0, 3.0, 4.0]]), crowd=np.zeros(1, bool),
                  occluded=np.zeros(1, bool), truncated=np.zeros(1, bool), scores=np.array([0.5]))
    write_bdd_video(tmp_path / "r.json", [fr])
    (back,) = read_bdd_video(tmp_path / "r.json")
    assert back.scores.tolist() == [0.5] and back.labels_and_ignore()[0].tolist() == [4]
    (tmp_path / "bad.json").write_text('[{"name": "a.jpg", "frameIndex": 0, "labels": [{"id": "1", "category": "car"}]}]')
    with pytest.raises(ValueError, match=r"bad\.json: frame 0 label 0: malformed label"):
        read_bdd_video(tmp_path / "bad.json")
    bad_cat = BddFrame("a", "v", 0, ids=["1"], categories=["boat"], boxes=np.zeros((1, 4)), crowd=np.zeros(1, bool))
    with pytest.raises(ValueError, match="unknown category 'boat'"):
        bad_cat.labels_and_ignore()
