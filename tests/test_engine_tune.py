"""`trackformers tune`: every candidate scored as `track --set` + `eval` score it; the export keeps the best."""
import json

import numpy as np
import pytest

from test_track_cli import expected_rows, tiny_model, write_images, frames, W, H  # noqa: F401 (fixture)
from trackformers import checkpoint, cli, evaluate
from trackformers.data.mot import read_mot, write_mot, write_seqinfo
from trackformers.engine.tune import candidates

N = 6


@pytest.fixture
def split(tmp_path):
    """One sequence whose gt is exactly what TinyTracker reports with both of its boxes kept."""
    seq = tmp_path / "val" / "seq1"
    write_images(seq / "img1", frames(N))
    write_seqinfo(seq / "seqinfo.ini", "seq1", N, W, H, im_ext=".png")
    rows = expected_rows(N)
    gt = np.column_stack([rows[:, :6], np.ones((len(rows), 3))])
    write_mot(seq / "gt" / "gt.txt", gt, kind="gt")
    return tmp_path / "val"


def test_candidates_are_the_grid_product_times_the_try_groups():
    assert candidates(["a=1,2", "b=x"], []) == [["a=1", "b=x"], ["a=2", "b=x"]]
    assert candidates(["a=1,2"], ["c=1 d=2", "c=3"]) == [["a=1", "c=1", "d=2"], ["a=1", "c=3"],
                                                        ["a=2", "c=1", "d=2"], ["a=2", "c=3"]]
    assert candidates([], []) == [[]]  # the model's own settings


def test_tune_scores_like_track_and_eval_and_exports_the_best(tmp_path, tiny_model, split, capsys):
    report = tmp_path / "tune.json"
    assert cli.main(["tune", tiny_model, "--val", str(split), "--grid", "score_thresh=0.85,0.3",
                     "--json", str(report), "--export", str(tmp_path / "tuned")]) == 0
    rows = json.loads(report.read_text())["candidates"]
    assert [r["settings"] for r in rows] == [["score_thresh=0.3"], ["score_thresh=0.85"]]  # best first
    for row in rows:  # the independent path: the CLI's track with the same --set, then eval
        out = tmp_path / ("track_" + row["settings"][0])
        assert cli.main(["track", str(split), "--model", tiny_model, "--out", str(out), "--no-progress",
                         "--set", row["settings"][0]]) == 0
        want = evaluate(split, out, benchmark="generic")["COMBINED"]
        assert row[str(split)]["HOTA"] == round(float(want["HOTA"]), 5) == row["score"]
        assert row[str(split)]["IDF1"] == round(float(want["IDF1"]), 5)
    assert rows[0]["score"] == 1.0 and rows[1]["score"] < 0.9  # the higher threshold loses id 2
    # The exported model tracks as the original did with the best --set, with no --set at all.
    _, meta = checkpoint.load_model(tmp_path / "tuned")
    assert meta["config"]["score_thresh"] == 0.3
    assert meta["provenance"]["tuning"]["sweep"] == [{"score": r["score"], "settings": r["settings"]} for r in rows]
    assert cli.main(["track", str(split), "--model", str(tmp_path / "tuned"), "--out", str(tmp_path / "t2"),
                     "--no-progress"]) == 0
    np.testing.assert_array_equal(read_mot(tmp_path / "t2" / "seq1.txt"),
                                  read_mot(tmp_path / "track_score_thresh=0.3" / "seq1.txt"))
    assert "score_thresh=0.3 -> " in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--grid", "score_thresh"], "--grid 'score_thresh': expected KEY=V1,V2,..."),
    (["--try", "score_thresh"], "--try 'score_thresh': expected KEY=VALUE"),
    (["--grid", "no_such_setting=1"], "no_such_setting"),
])
def test_bad_candidates_are_one_line(tiny_model, split, capsys, args, message):
    assert cli.main(["tune", tiny_model, "--val", str(split), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_missing_val_folder_is_one_line(tmp_path, tiny_model, capsys):
    assert cli.main(["tune", tiny_model, "--val", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.strip() == f"trackformers tune: error: --val {tmp_path / 'nope'}: no such folder"
