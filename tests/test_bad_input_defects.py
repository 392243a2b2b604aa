"""Issue 18's seven defects, each as the user met it: one clear line naming the file, or the
right numbers (equal to TrackEval's where TrackEval accepts the input)."""
import codecs
import json
import pickle
import re

import numpy as np
import pytest
import torch

from trackformers import checkpoint, cli
from trackformers.data import mot
from trackformers.eval.evaluate import evaluate
from trackformers.eval.testing import Errors, differences, make_sequence, run_trackeval, write_case


def one_line_error(capsys, argv, *needles, code=1):
    """Run the CLI; it must fail with `code` and one stderr line holding every needle."""
    capsys.readouterr()
    assert cli.main(list(map(str, argv))) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert str(needle) in err, err
    return err


@pytest.fixture
def case(tmp_path):
    rng = np.random.default_rng(0)
    seqs = {f"s{k}": (*make_sequence(rng, 30, 5, Errors()), 30) for k in range(2)}
    return write_case(tmp_path, seqs)


def set_seqlength(gt_root, seq, value):
    path = gt_root / seq / "seqinfo.ini"
    path.write_text(re.sub(r"seqLength=\S+", f"seqLength={value}", path.read_text()))
    return path


def test_1_huge_seqlength_is_bounded_by_the_data_or_rejected(case, capsys):
    gt_root, pred_root = case
    ref = evaluate(gt_root, pred_root, benchmark="dancetrack")
    # A long but plausible length: per-frame arrays stop at the last frame with data; the
    # numbers (CLR_Frames aside, which reports seqLength as TrackEval does) do not change.
    set_seqlength(gt_root, "s0", 5_000_000)
    long = evaluate(gt_root, pred_root, benchmark="dancetrack")
    assert long["s0"]["CLR_Frames"] == 5_000_000
    for key in ("HOTA", "MOTA", "IDF1", "CLR_TP", "IDSW"):
        assert long["s0"][key] == ref["s0"][key] and long["COMBINED"][key] == ref["COMBINED"][key]
    path = set_seqlength(gt_root, "s0", 100000000000)
    one_line_error(capsys, ["eval", "--gt", gt_root, "--pred", pred_root, "--benchmark", "dancetrack"],
                   path, "seqLength=100000000000")


def test_1_bounded_length_matches_trackeval(case):
    gt_root, pred_root = case
    set_seqlength(gt_root, "s1", 400)
    bad, checked = differences(evaluate(gt_root, pred_root, benchmark="dancetrack"),
                               run_trackeval(gt_root, pred_root, "dancetrack"))
    assert not bad and checked > 100


def test_2_missing_ground_truth_or_predictions_is_never_silent(case, capsys):
    gt_root, pred_root = case
    (gt_root / "s1" / "gt" / "gt.txt").unlink()
    one_line_error(capsys, ["eval", "--gt", gt_root, "--pred", pred_root, "--benchmark", "dancetrack"],
                   "s1", "gt.txt")
    (gt_root / "s1" / "gt" / "gt.txt").write_text("")  # TrackEval's rule: an empty file is no boxes
    (pred_root / "extra.txt").write_text("1,1,1,1,5,5,1,-1,-1,-1\n")
    one_line_error(capsys, ["eval", "--gt", gt_root, "--pred", pred_root, "--benchmark", "dancetrack"],
                   pred_root / "extra.txt", "without ground truth")
    (pred_root / "extra.txt").unlink()
    (pred_root / "s0.txt").unlink()
    one_line_error(capsys, ["eval", "--gt", gt_root, "--pred", pred_root, "--benchmark", "dancetrack"],
                   pred_root / "s0.txt")
    # Empty files on either side are what TrackEval accepts: same numbers.
    (pred_root / "s0.txt").write_text("")
    bad, _ = differences(evaluate(gt_root, pred_root, benchmark="dancetrack"),
                         run_trackeval(gt_root, pred_root, "dancetrack"))
    assert not bad


def test_3_damaged_model_files_are_one_line(tmp_path, capsys):
    from test_engine_fakes import TinyConfig, TinyTracker
    from trackformers.config import to_dict
    from trackformers.trackers.registry import load_tracker

    stem = checkpoint.save_model(tmp_path / "m", TinyTracker(TinyConfig()).state_dict(),
                                 {"method": "test_engine_fakes:TinyTracker", **to_dict(TinyConfig())})
    weights, meta = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    good_weights, good_meta = weights.read_bytes(), meta.read_bytes()
    (tmp_path / "clip").mkdir()
    damage = [
        (weights, good_weights[: len(good_weights) // 2]),                 # truncated
        (weights, b"\xff" * 64),                                           # garbage header
        (weights, good_weights[:8] + b"{not json" + good_weights[17:]),    # header not JSON
        (meta, good_meta[:-5]),                                            # truncated JSON
        (meta, b"\xff\xfe\x00"),                                           # not UTF-8
        (meta, b"[1, 2]"),                                                 # not an object
        (meta, json.dumps({"format": "trackformers/1", "config": 3}).encode()),
    ]
    for path, data in damage:
        weights.write_bytes(good_weights)
        meta.write_bytes(good_meta)
        path.write_bytes(data)
        with pytest.raises(ValueError, match=str(path)):
            load_tracker(stem)
        one_line_error(capsys, ["track", tmp_path / "clip", "--model", stem, "--out", tmp_path / "out"], path)
    # Weights that do not fit the config: one line naming the file and the first mismatch.
    weights.write_bytes(good_weights)
    cfg = json.loads(good_meta)
    cfg["config"]["hidden"] = 8
    meta.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"m\.safetensors: weights do not fit .*backbone\.0\.bias. \(6,\) vs \(8,\)"):
        load_tracker(stem)


def test_3_damaged_training_state_and_config_are_one_line(tmp_path, capsys):
    from test_engine_fakes import tiny_train_config
    from trackformers.engine.train import train
    from trackformers.engine.train_state import load_training_checkpoint

    train(tiny_train_config(str(tmp_path / "run"), max_steps=2))
    state = tmp_path / "run" / "last.train.safetensors"
    good = state.read_bytes()
    for data in (good[:100], b"", good[:-40]):
        state.write_bytes(data)
        with pytest.raises(ValueError, match=str(state)):
            load_training_checkpoint(tmp_path / "run" / "last")
    bad_yaml = tmp_path / "bad.yaml"
    for text in (b"epochs: [1, 2\nseed: 3\n", b"seed: \xff\xfe\n", b"epochs: many\n", b"- a list\n"):
        bad_yaml.write_bytes(text)
        one_line_error(capsys, ["train", bad_yaml, "--out", tmp_path / "x"], bad_yaml, code=2)


def test_4_non_utf8_seqinfo_names_the_file(case, capsys):
    gt_root, pred_root = case
    path = gt_root / "s0" / "seqinfo.ini"
    path.write_bytes(path.read_bytes().replace(b"name=s0", b"name=s\xe90"))
    with pytest.raises(ValueError, match=rf"{path}: seqinfo.ini is not UTF-8"):
        mot.read_seqinfo(path)
    one_line_error(capsys, ["eval", "--gt", gt_root, "--pred", pred_root, "--benchmark", "dancetrack"], path)


def test_5_utf8_bom_is_accepted_in_results_and_seqinfo(case):
    gt_root, pred_root = case
    ref = evaluate(gt_root, pred_root, benchmark="dancetrack")
    for path in (gt_root / "s0" / "seqinfo.ini", pred_root / "s0.txt", gt_root / "s1" / "gt" / "gt.txt",
                 gt_root.parent / "seqmap.txt"):
        path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    assert evaluate(gt_root, pred_root, benchmark="dancetrack") == ref
    assert evaluate(gt_root, pred_root, benchmark="dancetrack", seqmap=gt_root.parent / "seqmap.txt") == ref
    # A BOM shifts no line numbers in errors.
    bad = pred_root / "s1.txt"
    bad.write_bytes(codecs.BOM_UTF8 + b"1,1,1,1,5,5,1,-1,-1,-1\n1,1,2,2,5,5,1,-1,-1,-1\n")
    with pytest.raises(ValueError, match=rf"{bad}:2: id 1 appears twice"):
        evaluate(gt_root, pred_root, benchmark="dancetrack")


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "inf", "nan", "1e400", "ten"])
def test_6_bad_seqlength_is_rejected_at_the_seqinfo(tmp_path, value):
    path = tmp_path / "seqinfo.ini"
    path.write_text(f"[Sequence]\nname=a\nseqLength={value}\n")
    with pytest.raises(ValueError, match=rf"^{path}: seqLength="):
        mot.read_seqinfo(path)


def test_7_convert_refuses_a_legacy_pickle_in_one_line(tmp_path, capsys):
    import argparse
    legacy = tmp_path / "legacy.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=1e-4)}, legacy)
    err = one_line_error(capsys, ["convert", legacy, "--from", "deformable_detr", "--out", tmp_path / "o"],
                         legacy, "not a plain-tensor checkpoint", "argparse.Namespace")
    assert "refused" in err and not (tmp_path / "o.safetensors").exists()
    # A pickle whose loading would run code: refused, and the code does not run.
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"model": Payload()}, f)
    one_line_error(capsys, ["convert", evil, "--from", "motr", "--out", tmp_path / "o"], evil)
    assert not marker.exists()
    (tmp_path / "junk.pth").write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    one_line_error(capsys, ["convert", tmp_path / "junk.pth", "--from", "motr", "--out", tmp_path / "o"],
                   tmp_path / "junk.pth", "not a readable PyTorch checkpoint")
