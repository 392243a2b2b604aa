"""trackformers.evaluate against TrackEval itself on generated cases: every field within 1e-6."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from trackformers.eval.evaluate import evaluate
from trackformers.eval.testing import Errors, differences, make_sequence, run_trackeval, write_bdd_json, write_case

pytest.importorskip("trackeval")

def compare(tmp_path, seqs, benchmark, pred_class=False):
    """Write the case, evaluate it with trackformers and TrackEval, require every field equal."""
    gt_root, pred_root = write_case(tmp_path, seqs, pred_class=pred_class)
    ours = evaluate(gt_root, pred_root, benchmark=benchmark)
    if benchmark == "bdd100k":
        ref = run_trackeval(*write_bdd_json(gt_root, pred_root, tmp_path / "json"), "bdd100k")
    else:
        ref = run_trackeval(gt_root, pred_root, benchmark)
    bad, checked = differences(ours, ref)
    assert not bad, "\n".join(bad[:20])
    assert checked >= 44 * len(ref)  # 12 HOTA arrays, 20 CLEAR, 6 Identity, 4 Count, 3 HOTA(0)...
    return ours, ref


def generated(seed, errors, n_seqs=2, frames=120, tracks=12):
    rng = np.random.default_rng(seed)
    return {f"seq{k}": (*make_sequence(rng, frames, tracks, errors), frames) for k in range(n_seqs)}


CASES = {
    "typical": Errors(),
    "switches_and_swaps": Errors(switch=0.03, new_id=0.02, miss=0.02, fp=0.2),
    "fragmentation": Errors(gap=0.05, miss=0.2, switch=0.0, new_id=0.0),
    "false_positives_and_duplicates": Errors(fp=4.0, duplicate=0.3),
    "jitter_near_thresholds": Errors(jitter=0.25, miss=0.0),
    "perfect": Errors(miss=0, jitter=0, fp=0, switch=0, new_id=0, gap=0, duplicate=0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_dancetrack_cases(tmp_path, name):
    seed = sorted(CASES).index(name)
    compare(tmp_path, generated(seed, CASES[name]), "dancetrack")


def test_crowded_sequence(tmp_path):
    """Many overlapping boxes per frame: most frames need the Hungarian step."""
    rng = np.random.default_rng(7)
    seqs = {"crowd": (*make_sequence(rng, 60, 60, Errors(jitter=0.1, duplicate=0.1), size=(400, 300)), 60)}
    compare(tmp_path, seqs, "sportsmot")


def test_mot17_distractors_and_zero_marked(tmp_path):
    errors = Errors(distractor=0.3, zero_marked=0.2, fp=1.0)
    compare(tmp_path, generated(11, errors, n_seqs=3), "mot17")


def test_mot20_non_motorised_vehicles(tmp_path):
    rng = np.random.default_rng(12)
    seqs = {}
    for k in range(2):
        gt, pred = make_sequence(rng, 80, 14, Errors(distractor=0.2, zero_marked=0.1, classes=(1, 1, 6)))
        seqs[f"MOT20-0{k}"] = (gt, pred, 80)
    compare(tmp_path, seqs, "mot20")


def test_empty_sequences_and_predictions(tmp_path):
    rng = np.random.default_rng(3)
    gt, pred = make_sequence(rng, 50, 6, Errors())
    seqs = {
        "a_normal": (gt, pred, 50),
        "b_no_predictions": (gt, pred[:0], 50),
        "c_no_ground_truth": (gt[:0], pred, 50),
        "d_both_empty": (gt[:0], pred[:0], 50),
        "e_half_empty": (gt[gt[:, 0] <= 25], pred[pred[:, 0] > 25], 50),
    }
    compare(tmp_path, seqs, "dancetrack")


def test_exact_duplicates_and_degenerate_boxes(tmp_path):
    """Identical duplicate boxes (exact ties in every matching) and boxes without area."""
    rng = np.random.default_rng(5)
    gt, pred = make_sequence(rng, 80, 10, Errors(duplicate=0.0))
    dup = pred[rng.random(len(pred)) < 0.3].copy()
    dup[:, 1] += 100000
    degenerate = pred[rng.random(len(pred)) < 0.05].copy()
    degenerate[:, 1] += 300000
    degenerate[:, 4] = -degenerate[:, 4]
    pred = np.concatenate([pred, dup, degenerate])
    gt[rng.random(len(gt)) < 0.03, 5] = 0.0
    compare(tmp_path, {"ties": (gt, pred[np.argsort(pred[:, 0], kind="stable")], 80)}, "generic")


def test_bdd100k_classes_and_crowd_regions(tmp_path):
    errors = Errors(classes=(1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11), zero_marked=0.15, fp=1.5)
    ours, ref = compare(tmp_path, generated(21, errors, n_seqs=2, frames=60, tracks=24), "bdd100k", pred_class=True)
    assert {"cls_comb_cls_av", "cls_comb_det_av", "HUMAN", "VEHICLE", "BIKE"} <= set(ours["COMBINED"])
    # BDD100K's own JSON layout gives the same numbers, in TrackEval's spelling ("index",
    # "Crowd") and in the official export's ("frameIndex", "crowd").
    json_gt, json_pred = tmp_path / "json" / "gt", tmp_path / "json" / "trackers" / "pred"
    assert evaluate(json_gt, json_pred, benchmark="bdd100k") == ours
    for folder in (json_gt, json_pred):
        for path in folder.glob("*.json"):
            frames = json.loads(path.read_text())
            for frame in frames:
                frame["frameIndex"] = frame.pop("index")
                for label in frame["labels"]:
                    if "attributes" in label:
                        label["attributes"] = {"crowd": label["attributes"]["Crowd"]}
            path.write_text(json.dumps(frames[::-1]))
    assert evaluate(json_gt, json_pred, benchmark="bdd100k") == ours
    assert not differences(ours, ref)[0]


def test_frames_missing_one_side(tmp_path):
    """TrackEval skips frames without gt or without predictions when it carries matches over:
    CLEAR's "previous frame" is the previous frame that had both."""
    rng = np.random.default_rng(9)
    gt, pred = make_sequence(rng, 90, 30, Errors(duplicate=0.3, jitter=0.08, switch=0.01), size=(500, 400))
    gt = gt[gt[:, 0] % 7 != 0]
    pred = pred[pred[:, 0] % 5 != 0]
    compare(tmp_path, {"gaps": (gt, pred, 90)}, "dancetrack")


def test_overlaps_exactly_at_thresholds(tmp_path):
    """IoU exactly 0.05, 0.10, ..., 0.95 (a 10x10 box against a 10xh one): TrackEval's
    `>= alpha - eps`, CLEAR's `>= 0.5 - eps` and Identity's `>= 0.5` all decide at the edge."""
    frames = np.arange(1, 20)
    gt = np.column_stack([frames, np.ones(19), np.full(19, 100.0), np.full(19, 100.0), np.full(19, 10.0),
                          np.full(19, 10.0), np.ones(19), np.ones(19), np.ones(19)])
    pred = gt.copy()
    pred[:, 1] = 7
    pred[:, 5] = 0.5 * frames  # IoU = 0.05 * frame
    second = gt.copy()
    second[:, 1], second[:, 2] = 2, 300.0
    second_pred = second.copy()
    second_pred[:, 1] = np.where(frames % 2 == 0, 8, 9)
    second_pred[:, 5] = 5.0  # IoU exactly 0.5 in every frame
    def by_frame(*parts):
        rows = np.concatenate(parts)
        return rows[np.argsort(rows[:, 0], kind="stable")]

    ours, _ = compare(tmp_path, {"edges": (by_frame(gt, second), by_frame(pred, second_pred), 19)}, "generic")
    assert ours["COMBINED"]["IDTP"] == 10 + 10  # frames 10..19 of the first track, 10 even frames of the second


@pytest.mark.parametrize("seed", range(int(os.environ.get("EVAL_SWEEP", 12))))
def test_random_configurations(tmp_path, seed):
    """Seeded sweep: random error rates, crowding, benchmark and sequence shapes."""
    rng = np.random.default_rng(1000 + seed)
    benchmark = ["dancetrack", "sportsmot", "mot17", "mot20", "generic"][seed % 5]
    errors = Errors(miss=rng.uniform(0, 0.4), jitter=rng.uniform(0, 0.3), fp=rng.uniform(0, 3),
                    switch=rng.uniform(0, 0.05), new_id=rng.uniform(0, 0.05), gap=rng.uniform(0, 0.05),
                    duplicate=rng.uniform(0, 0.3),
                    distractor=rng.uniform(0, 0.3) if benchmark.startswith("mot") else 0.0,
                    zero_marked=rng.uniform(0, 0.2),
                    classes=(1, 1, 6) if benchmark == "mot20" else (1,))
    size = [(1280, 720), (500, 300)][seed % 2]
    seqs = {f"s{k}": (*make_sequence(rng, int(rng.integers(2, 90)), int(rng.integers(1, 25)), errors, size=size), 0)
            for k in range(int(rng.integers(1, 4)))}
    seqs = {name: (gt, pred, int(max(gt[:, 0].max(initial=1), pred[:, 0].max(initial=1))))
            for name, (gt, pred, _) in seqs.items()}
    compare(tmp_path, seqs, benchmark)
