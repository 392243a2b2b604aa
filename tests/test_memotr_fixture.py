"""MeMOTR against the official code's recorded outputs (../shared/fixtures/memotr).

The official checkpoint is converted with `trackformers convert --from memotr`; the 8 frames
(PNG files) are tracked once with `trackformers track --set <the fixture's thresholds>` while
every frame's model output is recorded; each test compares one aspect with the fixture:
the model input, every decoder layer's logits and boxes, the newborn initialisation inputs,
the runtime tracker's integer decisions, the query updater's next queries and memories, the
reported tracks and the result file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trackformers.ops.box_ops import inverse_sigmoid
from trackformers.trackers.memotr import MeMOTR

# The fixture's runtime (README "Thresholds used"): lowered so tracks are born, persist and die.
THRESHOLDS = ["det_score_thresh=0.5", "track_score_thresh=0.001", "result_score_thresh=0.001",
              "update_thresh=0.001", "miss_tolerance=2", "area_threshold=100"]
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
ORIG_HW = (320, 480)


@pytest.fixture(scope="module")
def fixture_dir(shared_dir) -> Path:
    path = Path(shared_dir) / "fixtures" / "memotr"
    if not path.is_dir():
        pytest.skip("MeMOTR fixture not available")
    return path


@pytest.fixture(scope="module")
def reference(fixture_dir):
    frames = torch.load(fixture_dir / "frames.pt", weights_only=False)
    return frames, torch.load(fixture_dir / "outputs.pt", weights_only=False)["frames"]


@pytest.fixture(scope="module")
def model_file(fixture_dir, tmp_path_factory) -> Path:
    from trackformers.cli import main
    out = tmp_path_factory.mktemp("memotr") / "memotr_fixture"
    assert main(["convert", "--from", "memotr", str(fixture_dir / "checkpoint_fp16.pt"), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def run(model_file, fixture_dir, tmp_path_factory):
    """`trackformers track` over the PNG frames, recording each frame's model step."""
    from trackformers.cli import main
    records = []
    track_frame = MeMOTR.track_frame

    def recording(self, image, state, orig_size=None):
        result, nxt, out = track_frame(self, image, state, orig_size)
        records.append({"image": image, "out": out, "result": result, "next": nxt, "orig_size": orig_size})
        return result, nxt, out

    out_dir = tmp_path_factory.mktemp("memotr_track")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MeMOTR, "track_frame", recording)
        args = ["track", str(fixture_dir / "frames_png"), "--model", str(model_file), "--out", str(out_dir),
                "--device", "cpu", "--no-progress"]
        for t in THRESHOLDS:
            args += ["--set", t]
        assert main(args) == 0
    assert len(records) == 8
    return records, out_dir


def test_converter_reports_the_dropped_aliases(model_file):
    import json
    meta = json.loads(model_file.with_suffix(".json").read_text())
    dropped = meta["provenance"]["dropped"]
    assert len(dropped) == 36 and all(k.startswith("transformer.decoder.bbox_embed.") for k in dropped)
    cfg = meta["config"]
    assert cfg["method"] == "memotr" and cfg["use_dab"] is True
    assert cfg["detector"]["dim_feedforward"] == 2048 and cfg["detector"]["num_classes"] == 1


def test_input_is_the_official_preprocessing(run, reference):
    frames, ref = reference
    records, _ = run
    for t, rec in enumerate(records):
        want = (torch.as_tensor(frames["resized_rgb_uint8"][t]).permute(2, 0, 1).float() / 255 - MEAN) / STD
        torch.testing.assert_close(rec["image"], want, rtol=0, atol=1e-6)
        assert rec["orig_size"] == ORIG_HW
        assert list(ref[t]["input_padded_shape"]) == [1, 3, 800, 1216]


def test_decoder_outputs_every_layer(run, reference):
    _, ref = reference
    records, _ = run
    for t, (rec, f) in enumerate(zip(records, ref)):
        out = rec["out"]
        n_tracks = f["n_track_queries_in"]
        assert len(out.rows) == 300 + n_tracks, t
        # decoder inputs: DAB content queries and logit reference boxes (detect ++ track)
        torch.testing.assert_close(out.rows.queries, f["query_embed_in"], rtol=0, atol=1e-4)
        torch.testing.assert_close(out.rows.refs, f["ref_pts_in"], rtol=0, atol=1e-4)
        torch.testing.assert_close(out.logits, f["all_layers_logits"], rtol=0, atol=1e-3, msg=f"frame {t}")
        torch.testing.assert_close(out.boxes, f["all_layers_bboxes"], rtol=0, atol=1e-4, msg=f"frame {t}")
        torch.testing.assert_close(out.rows.embeds, f["hs_last"], rtol=0, atol=1e-3)
        # what a newborn is initialised from: the last layer's input and its reference
        torch.testing.assert_close(out.hs[-2], f["decoder_layer_inputs_last"], rtol=0, atol=1e-3)
        torch.testing.assert_close(inverse_sigmoid(out.inter[-2], 1e-5), f["last_ref_pts"], rtol=0, atol=1e-3)


def test_runtime_decisions_exact(run, reference):
    """Births (which detect queries, which ids), misses, deaths, labels: exactly."""
    _, ref = reference
    records, _ = run
    for t, (rec, f) in enumerate(zip(records, ref)):
        nxt, want = rec["next"], f["tracks_out"]
        assert nxt.ids.tolist() == want["ids"].tolist(), t
        assert nxt.misses.tolist() == want["disappear_time"].tolist(), t
        assert nxt.memory["labels"].tolist() == want["labels"].tolist(), t
        born = f["tracker_new_tracks"]["ids"].tolist()
        assert nxt.ids[len(nxt) - len(born):].tolist() == born, t


def test_query_updater_outputs(run, reference):
    _, ref = reference
    records, _ = run
    for t, (rec, f) in enumerate(zip(records, ref)):
        nxt, want = rec["next"], f["tracks_out"]
        torch.testing.assert_close(nxt.boxes, want["boxes"], rtol=0, atol=1e-4)
        torch.testing.assert_close(nxt.logits, want["logits"], rtol=0, atol=1e-3)
        torch.testing.assert_close(nxt.refs, want["ref_pts"], rtol=0, atol=1e-3)
        torch.testing.assert_close(nxt.queries, want["query_embed"], rtol=0, atol=1e-3)
        torch.testing.assert_close(nxt.embeds, want["output_embed"], rtol=0, atol=1e-3)
        torch.testing.assert_close(nxt.memory["last_output"], want["last_output"], rtol=0, atol=1e-3)
        torch.testing.assert_close(nxt.memory["long_memory"], want["long_memory"], rtol=0, atol=1e-3)


def test_reported_tracks(run, reference):
    from trackformers.ops.box_ops import box_cxcywh_to_xyxy
    _, ref = reference
    records, _ = run
    scale = torch.tensor([ORIG_HW[1], ORIG_HW[0]] * 2, dtype=torch.float32)
    for t, (rec, f) in enumerate(zip(records, ref)):
        res, want = rec["result"], f["result"]
        assert res["ids"].tolist() == want["ids"].tolist(), t
        assert res["labels"].tolist() == want["labels"].tolist(), t
        torch.testing.assert_close(res["scores"], want["scores"].max(-1).values, rtol=0, atol=1e-4)
        torch.testing.assert_close(box_cxcywh_to_xyxy(res["boxes"]) * scale, want["boxes_xyxy"], rtol=0, atol=1e-2)


def test_result_file_matches_official(run, fixture_dir):
    """`trackformers track` writes the official result file (ids shifted by a constant)."""
    _, out_dir = run
    got = np.loadtxt(out_dir / "frames_png.txt", delimiter=",", ndmin=2)
    want = np.loadtxt(fixture_dir / "tracker_results.txt", delimiter=",", ndmin=2)
    assert got.shape == want.shape
    offsets = np.unique(got[:, 1] - want[:, 1])
    assert len(offsets) == 1, "ids differ by more than a constant"
    np.testing.assert_array_equal(got[:, 0], want[:, 0])
    np.testing.assert_allclose(got[:, 2:6], want[:, 2:6], rtol=0, atol=1e-2)


def measure(fixture_dir: Path) -> dict:
    """Largest differences to the fixture over the 8 frames (the figures behind the tolerances)."""
    from trackformers.checkpoint import load_official
    from trackformers.config import from_dict
    from trackformers.convert.memotr import convert
    from trackformers.ops.box_ops import box_cxcywh_to_xyxy
    c = convert(load_official(fixture_dir / "checkpoint_fp16.pt"), THRESHOLDS)
    model = MeMOTR(from_dict(MeMOTR.Config, {k: v for k, v in c.config.items() if k != "method"}))
    model.load_state_dict(c.state_dict)
    model.eval()
    frames = torch.load(fixture_dir / "frames.pt", weights_only=False)["resized_rgb_uint8"]
    ref = torch.load(fixture_dir / "outputs.pt", weights_only=False)["frames"]
    scale = torch.tensor([ORIG_HW[1], ORIG_HW[0]] * 2, dtype=torch.float32)
    worst = {"logits": 0.0, "boxes": 0.0, "pixel_boxes": 0.0, "next_queries": 0.0, "long_memory": 0.0}
    exact, state = True, model.new_state()
    for t, f in enumerate(ref):
        image = (torch.as_tensor(frames[t]).permute(2, 0, 1).float() / 255 - MEAN) / STD
        result, state, out = model.track_frame(image, state, ORIG_HW)
        diffs = {"logits": (out.logits - f["all_layers_logits"]).abs().max(),
                 "boxes": (out.boxes - f["all_layers_bboxes"]).abs().max(),
                 "pixel_boxes": (box_cxcywh_to_xyxy(result["boxes"]) * scale - f["result"]["boxes_xyxy"]).abs().max(),
                 "next_queries": (state.queries - f["tracks_out"]["query_embed"]).abs().max(),
                 "long_memory": (state.memory["long_memory"] - f["tracks_out"]["long_memory"]).abs().max()}
        worst = {k: max(worst[k], float(v)) for k, v in diffs.items()}
        exact &= (state.ids.tolist() == f["tracks_out"]["ids"].tolist()
                  and state.misses.tolist() == f["tracks_out"]["disappear_time"].tolist()
                  and result["ids"].tolist() == f["result"]["ids"].tolist())
    return {"frames": len(ref), "max_abs_diff": worst, "ids_misses_results_identical": exact}


if __name__ == "__main__":  # python tests/test_memotr_fixture.py [path/to/shared] -> JSON figures
    import json
    import sys
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared")
    print(json.dumps(measure(shared / "fixtures" / "memotr"), indent=2))
