"""The BFT reader on a hand-made folder in the layout SambaMOTR reads."""
import cv2
import numpy as np
import pytest

from trackformers.data.datasets import load_dataset


def write_bft(root, split, videos, annotate=True, first=1):
    for name, (n, lines) in videos.items():
        (root / "BFT" / split / name).mkdir(parents=True)
        for i in range(first, first + n):
            cv2.imwrite(str(root / "BFT" / split / name / f"{i:06d}.jpg"), np.zeros((30, 40, 3), np.uint8))
        if annotate:
            (root / "BFT" / "annotations_mot" / split).mkdir(parents=True, exist_ok=True)
            (root / "BFT" / "annotations_mot" / split / f"{name}.txt").write_text("".join(f"{l}\n" for l in lines))


def test_reads_boxes_ids_and_frames(tmp_path):
    write_bft(tmp_path, "train", {"a": (3, ["1,4,10,5,8,6,-1,-1,-1", "3,4,12,5,8,6,-1,-1,-1", "3,9,0,0,4,4,-1,-1,-1"]),
                                  "b": (2, ["2,4,1,2,3,4,-1,-1,-1"])})
    a, b = load_dataset("bft", str(tmp_path), "train")
    assert (a.name, len(a), a.width, a.height, a.has_gt) == ("a", 3, 40, 30, True)
    assert [len(f) for f in a.annotations] == [1, 0, 2]
    np.testing.assert_allclose(a.annotations[0].boxes, [[10, 5, 18, 11]])  # xywh -> xyxy
    assert a.annotations[2].ids.tolist() == [4, 9] and a.annotations[2].labels.tolist() == [0, 0]
    assert b.annotations[1].ids.tolist() == [4 + 10]  # ids made unique across videos (a's max id + 1)


def test_frames_numbered_from_zero_and_a_test_split_without_annotations(tmp_path):
    write_bft(tmp_path, "train", {"z": (2, ["0,1,1,1,2,2,-1,-1,-1"])}, first=0)
    (z,) = load_dataset("bft", str(tmp_path / "BFT"), "train")
    assert [len(f) for f in z.annotations] == [1, 0]
    write_bft(tmp_path, "test", {"t": (2, [])}, annotate=False)
    (t,) = load_dataset("bft", str(tmp_path), "test")
    assert not t.has_gt and len(t) == 2
    with pytest.raises(FileNotFoundError, match="BFT split folder not found"):
        load_dataset("bft", str(tmp_path), "val")
