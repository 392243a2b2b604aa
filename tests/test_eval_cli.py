"""`trackformers eval`: table, --json, --plot, missing files, bad rows, seqmaps, no torch."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from trackformers.cli import main
from trackformers.data.mot import write_seqmap
from trackformers.eval.evaluate import evaluate
from trackformers.eval.testing import Errors, make_sequence, write_case


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    rng = np.random.default_rng(1)
    seqs = {name: (*make_sequence(rng, 40, 5, Errors()), 40) for name in ("dance-a", "dance-b", "dance-c")}
    return write_case(tmp_path_factory.mktemp("case"), seqs)


def run_cli(capsys, *args):
    code = main(["eval", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table_json_and_plot(case, tmp_path, capsys):
    gt_root, pred_root = case
    code, out, _ = run_cli(capsys, "--gt", gt_root, "--pred", pred_root, "--benchmark", "dancetrack",
                           "--json", tmp_path / "res.json", "--plot", tmp_path / "res.png")
    assert code == 0
    results = json.loads((tmp_path / "res.json").read_text())
    assert list(results) == ["dance-a", "dance-b", "dance-c", "COMBINED"]
    header, *rows = [line for line in out.splitlines() if line and not line.startswith(("-", "wrote"))]
    assert header.split()[:4] == ["sequence", "HOTA", "DetA", "AssA"]
    combined = rows[-1].split()
    assert combined[0] == "COMBINED"
    assert float(combined[1]) == pytest.approx(100 * results["COMBINED"]["HOTA"], abs=1e-3)
    assert int(combined[header.split().index("IDSW")]) == results["COMBINED"]["IDSW"]
    for entry in results.values():
        for key in ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "MOTA", "MOTP", "IDF1",
                    "IDP", "IDR"):
            assert isinstance(entry[key], float) and 0 <= entry[key] <= 1, key
        for key in ("IDSW", "CLR_TP", "CLR_FP", "CLR_FN", "Frag", "MT", "PT", "ML", "Dets", "GT_Dets", "IDs",
                    "GT_IDs", "IDTP", "IDFP", "IDFN"):
            assert isinstance(entry[key], int), key
        assert len(entry["per_alpha"]["HOTA"]) == 19 and entry["per_alpha"]["alpha"][0] == 0.05
        assert entry["HOTA"] == pytest.approx(np.mean(entry["per_alpha"]["HOTA"]))
    assert results == evaluate(gt_root, pred_root, benchmark="dancetrack")
    png = (tmp_path / "res.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000


def test_seqmap_selects_sequences(case, tmp_path):
    gt_root, pred_root = case
    write_seqmap(tmp_path / "map.txt", ["dance-c", "dance-a"])
    results = evaluate(gt_root, pred_root, benchmark="generic", seqmap=tmp_path / "map.txt")
    assert list(results) == ["dance-a", "dance-c", "COMBINED"]
    full = evaluate(gt_root, pred_root, benchmark="generic")
    assert results["dance-a"] == full["dance-a"]
    assert results["COMBINED"]["GT_Dets"] == full["dance-a"]["GT_Dets"] + full["dance-c"]["GT_Dets"]


def test_missing_prediction_file(case, tmp_path, capsys):
    gt_root, pred_root = case
    partial = tmp_path / "pred"
    partial.mkdir()
    for name in ("dance-a", "dance-c"):
        (partial / f"{name}.txt").write_bytes((pred_root / f"{name}.txt").read_bytes())
    code, _, err = run_cli(capsys, "--gt", gt_root, "--pred", partial, "--benchmark", "dancetrack")
    assert code == 1
    assert "dance-b" in err and "dance-b.txt" in err and len(err.strip().splitlines()) == 1
    results = evaluate(gt_root, partial, benchmark="dancetrack", allow_missing=True)
    full = evaluate(gt_root, pred_root, benchmark="dancetrack")
    missing = results["dance-b"]
    assert missing["Dets"] == 0 and missing["CLR_FN"] == missing["GT_Dets"] == full["dance-b"]["GT_Dets"]
    assert missing["HOTA"] == 0 and missing["IDF1"] == 0
    assert results["dance-a"] == full["dance-a"]
    code, _, _ = run_cli(capsys, "--gt", gt_root, "--pred", partial, "--benchmark", "dancetrack", "--allow-missing")
    assert code == 0


def _one_sequence(tmp_path, pred_text, gt_text="1,1,10,10,20,40,1,1,1\n2,1,12,10,20,40,1,1,1\n", length=3):
    gt_dir = tmp_path / "gt" / "s"
    (gt_dir / "gt").mkdir(parents=True)
    (gt_dir / "gt" / "gt.txt").write_text(gt_text)
    (gt_dir / "seqinfo.ini").write_text(f"[Sequence]\nname=s\nseqLength={length}\n")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "s.txt").write_text(pred_text)
    return tmp_path / "gt", tmp_path / "pred"


@pytest.mark.parametrize("pred_text, line, words", [
    ("1,1,10,10,20,40,1,-1,-1,-1\n\n2,1,abc,10,20,40,1,-1,-1,-1\n", 3, "not a number"),
    ("1,1,10,10,20,40,1,-1,-1,-1\n2,1,10,10,20\n", 2, "at least 6 values"),
    ("1,1,10,10,20,40,1,-1,-1,-1\n2,1,nan,10,20,40,1,-1,-1,-1\n", 2, "NaN"),
    ("1,1,10,10,20,40,1,-1,-1,-1\n1,1,12,10,20,40,1,-1,-1,-1\n", 2, "appears twice in frame 1 (first at line 1)"),
    ("1,1,10,10,20,40,1,-1,-1,-1\n4,2,10,10,20,40,1,-1,-1,-1\n", 2, "frame 4 is outside 1..3"),
    ("0,1,10,10,20,40,1,-1,-1,-1\n", 1, "frame 0 is outside"),
    ("1,1.5,10,10,20,40,1,-1,-1,-1\n", 1, "id 1.5 is not an integer"),
    ("1,-3,10,10,20,40,1,-1,-1,-1\n", 1, "id -3 is negative"),
    ("1,1e20,10,10,20,40,1,-1,-1,-1\n", 1, "id 1e+20 is negative or too large"),
    ("1,1,10,10,20,40,1,2,-1,-1\n", 1, "class 2 in a prediction"),
    ("3,1,10,10,20,40,1,1,-1,-1\n\n1,1,10,10,20,40,1,2,-1,-1\n", 3, "class 2 in a prediction"),  # sorted first
])
def test_bad_rows_name_file_and_line(tmp_path, capsys, pred_text, line, words):
    gt_root, pred_root = _one_sequence(tmp_path, pred_text)
    code, out, err = run_cli(capsys, "--gt", gt_root, "--pred", pred_root, "--benchmark", "mot17")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert f"{pred_root / 's.txt'}:{line}:" in err and words in err, err


def test_bad_ground_truth_class(tmp_path, capsys):
    gt_root, pred_root = _one_sequence(tmp_path, "1,1,10,10,20,40,1,-1,-1,-1\n", gt_text="1,1,10,10,20,40,1,14,1\n")
    code, _, err = run_cli(capsys, "--gt", gt_root, "--pred", pred_root, "--benchmark", "mot17")
    assert code == 1 and f"{gt_root / 's' / 'gt' / 'gt.txt'}:1: class 14" in err


def test_negative_sizes_count_as_misses_and_false_positives(tmp_path):
    """TrackEval gives a box without positive area IoU 0 with everything; so do we."""
    pred = "1,1,10,10,20,40,1,-1,-1,-1\n2,1,12,10,-20,40,1,-1,-1,-1\n"
    res = evaluate(*_one_sequence(tmp_path, pred), benchmark="dancetrack")["s"]
    assert (res["CLR_TP"], res["CLR_FP"], res["CLR_FN"]) == (1, 1, 1)


def test_usage_errors(case, capsys):
    gt_root, pred_root = case
    with pytest.raises(SystemExit) as e:
        main(["eval", "--gt", str(gt_root), "--pred", str(pred_root), "--benchmark", "kitti"])
    assert e.value.code == 2
    code, _, err = run_cli(capsys, "--gt", gt_root / "nope", "--pred", pred_root, "--benchmark", "generic")
    assert code == 1 and "nope" in err


def test_eval_does_not_import_torch(case):
    gt_root, pred_root = case
    code = ("import sys; from trackformers.cli import main; "
            f"rc = main(['eval', '--gt', {str(gt_root)!r}, '--pred', {str(pred_root)!r}, '--benchmark', 'generic']); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr


def test_bdd_json_errors_name_the_file(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    label = {"id": "3", "category": "car", "box2d": {"x1": 1.0, "y1": 2.0, "x2": 30.0, "y2": 40.0}}
    frames = [{"index": k, "labels": [label]} for k in range(3)]
    (gt_dir / "v.json").write_text(json.dumps(frames))
    (pred_dir / "v.json").write_text(json.dumps(frames[:2]))
    code, _, err = run_cli(capsys, "--gt", gt_dir, "--pred", pred_dir, "--benchmark", "bdd100k")
    assert code == 1 and f"{pred_dir / 'v.json'}: 2 frames, the ground truth has 3" in err
    frames[1]["labels"] = [dict(label, category="spaceship")]
    (pred_dir / "v.json").write_text(json.dumps(frames))
    code, _, err = run_cli(capsys, "--gt", gt_dir, "--pred", pred_dir, "--benchmark", "bdd100k")
    assert code == 1 and f"{pred_dir / 'v.json'}: frame 2:" in err and "category" in err
    frames[1]["labels"] = [label]
    (pred_dir / "v.json").write_text(json.dumps(frames))
    code, out, _ = run_cli(capsys, "--gt", gt_dir, "--pred", pred_dir, "--benchmark", "bdd100k")
    assert code == 0 and out.splitlines()[0].split()[0] == "class"
    assert "car" in out and "cls_comb_cls_av" in out
