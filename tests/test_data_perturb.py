"""The gt -> tracker-like results helper."""
import numpy as np

from trackformers.data import mot
from trackformers.data.perturb import main, perturb_rows
from trackformers.data.synthetic import generate_synthetic


def gt_rows():
    rng = np.random.default_rng(1)
    rows = []
    for tid in range(1, 6):
        for frame in range(1, 21):
            rows.append([frame, tid, *rng.uniform(0, 100, 2), *rng.uniform(10, 30, 2), 1, 1, 1])
    rows.append([3, 9, 0, 0, 5, 5, 0, 1, 1])  # flag 0: not a target
    return np.array(rows)


def test_no_noise_reproduces_the_gt():
    gt = gt_rows()
    out = perturb_rows(gt, np.random.default_rng(0), (200, 200), jitter=0, drop=0, false_positives=0, switch=0)
    kept = gt[gt[:, 6] == 1]
    kept = kept[np.lexsort((kept[:, 1], kept[:, 0]))]
    assert out.shape == (len(kept), 10)
    np.testing.assert_array_equal(out[:, [0, 1, 2, 3, 4, 5]], kept[:, :6])
    assert (out[:, 7:] == -1).all() and ((out[:, 6] >= 0.3) & (out[:, 6] <= 1)).all()


def test_switches_match_a_naive_count_and_rates_hold():
    gt = gt_rows()
    rng = np.random.default_rng(5)
    out = perturb_rows(gt, rng, (200, 200), jitter=0, drop=0, false_positives=0, switch=0.2)
    # naive: replay the same switch draws track by track
    g = gt[gt[:, 6] == 1]
    g = g[np.lexsort((g[:, 0], g[:, 1]))]
    events = np.random.default_rng(5).random(len(g)) < 0.2
    segment, expect = {}, []
    for (frame, tid), e in zip(g[:, :2], events):
        segment[tid] = segment.get(tid, 0) + int(e)
        expect.append((int(frame), int(tid), segment[tid]))
    pairs = {}
    for frame, tid, count in expect:
        pairs.setdefault((tid, count), set()).add(frame)
    got = {}
    for frame, new_id in out[:, :2].astype(int):
        got.setdefault(new_id, set()).add(frame)
    assert sorted(map(sorted, pairs.values())) == sorted(map(sorted, got.values()))
    many = perturb_rows(gt, np.random.default_rng(0), (200, 200), drop=0.5, false_positives=0.25, switch=0)
    n = (gt[:, 6] == 1).sum()
    fps = many[many[:, 1] > 5]
    assert len(fps) == round(0.25 * n) and len(many) - len(fps) < 0.7 * n


def test_cli_writes_one_file_per_sequence_deterministically(tmp_path):
    generate_synthetic(str(tmp_path / "synth"), "simple", seqs=2, frames=4, size=(64, 48), seed=0)
    gt_root = str(tmp_path / "synth" / "train")
    assert main([gt_root, str(tmp_path / "a"), "--seed", "3"]) == 0
    assert main([gt_root, str(tmp_path / "b"), "--seed", "3"]) == 0
    for name in ("simple0001", "simple0002"):
        a = (tmp_path / "a" / f"{name}.txt").read_text()
        assert a == (tmp_path / "b" / f"{name}.txt").read_text()
        rows = mot.read_mot(tmp_path / "a" / f"{name}.txt")
        assert len(rows) > 0 and set(rows[:, 0]) <= {1, 2, 3, 4}
    assert main([str(tmp_path / "missing"), str(tmp_path / "c")]) == 1
