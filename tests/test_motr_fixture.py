"""MOTR against the official code's recorded outputs (../shared/fixtures/motr).

The official checkpoint is converted with `trackformers convert --from motr`, the 8 frames are
tracked once (through `trackformers track` when the engine is installed, else frame by frame
on the fixture's own resized frames) while every frame's model state is recorded, and each
test compares one aspect with the fixture: decoder outputs of every layer, the runtime
tracker's integer state, the QIM's next queries, the reported tracks and the result file.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trackformers.ops.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh
from trackformers.trackers import lifecycle
from trackformers.trackers.motr import MOTR

THRESHOLDS = ["miss_tolerance=2", "score_thresh=0.7", "filter_score_thresh=0.6", "prob_threshold=0.7",
              "area_threshold=100"]
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


CLI_TRACK = all(_has(m) for m in ("trackformers.engine.track", "trackformers.data.sources",
                                  "trackformers.data.transforms"))


@pytest.fixture(scope="module")
def fixture_dir(shared_dir) -> Path:
    path = Path(shared_dir) / "fixtures" / "motr"
    if not path.is_dir():
        pytest.skip("MOTR fixture not available")
    return path


@pytest.fixture(scope="module")
def reference(fixture_dir):
    frames = torch.load(fixture_dir / "frames.pt", weights_only=False)
    outputs = torch.load(fixture_dir / "outputs.pt", weights_only=False)
    return frames, outputs["frames"]


@pytest.fixture(scope="module")
def model_file(fixture_dir, tmp_path_factory) -> Path:
    """`trackformers convert --from motr` (or the converter function if the CLI is absent)."""
    out = tmp_path_factory.mktemp("motr") / "motr_fixture"
    if _has("trackformers.convert.cli"):
        from trackformers.cli import main
        assert main(["convert", "--from", "motr", str(fixture_dir / "checkpoint_fp16.pt"), "--out", str(out)]) == 0
    else:
        from trackformers.checkpoint import load_official, save_model
        from trackformers.convert.motr import convert
        c = convert(load_official(fixture_dir / "checkpoint_fp16.pt"))
        save_model(out, c.state_dict, c.config)
    return out


@pytest.fixture(scope="module")
def run(model_file, fixture_dir, reference, tmp_path_factory):
    """Track the clip once, recording (image, state in, frame output, result, next state)."""
    records = []
    track_frame = MOTR.track_frame

    def recording(self, image, state, orig_size=None):
        result, nxt, out = track_frame(self, image, state, orig_size)
        records.append({"model": self, "image": image, "state": state, "out": out, "result": result, "next": nxt})
        return result, nxt, out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MOTR, "track_frame", recording)
        if CLI_TRACK:
            from trackformers.cli import main
            out_dir = tmp_path_factory.mktemp("motr_track")
            args = ["track", str(fixture_dir / "frames_png"), "--model", str(model_file), "--out", str(out_dir),
                    "--device", "cpu", "--no-progress"]
            for s in THRESHOLDS:
                args += ["--set", s]
            assert main(args) == 0
            txt = next(out_dir.glob("*.txt"))
        else:
            from trackformers.trackers.registry import load_model_file
            model, _ = load_model_file(model_file, THRESHOLDS)
            frames, _ = reference
            state = model.new_state()
            for rgb in frames["resized_rgb_uint8"]:
                image = (rgb.permute(2, 0, 1).float() / 255 - MEAN) / STD
                _, state = model.track(image, state, orig_size=tuple(frames["frames_rgb_uint8"].shape[1:3]))
            txt = None
    assert len(records) == 8
    return records, txt


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach().double() - b.double()).abs().max().item() if b.numel() else 0.0


def _close(ours: torch.Tensor, ref: torch.Tensor, atol: float, what: str) -> None:
    diff = _maxdiff(ours, ref)
    assert ours.shape == ref.shape and diff <= atol, f"{what}: max |diff| {diff:.3g} > {atol} (shapes {ours.shape} {ref.shape})"


@pytest.mark.skipif(not CLI_TRACK, reason="without `trackformers track` the fixture's own resized frames are used")
def test_preprocessing_matches_the_official_resize(run, reference):
    frames, _ = reference
    for t, rec in enumerate(run[0]):
        want = (frames["resized_rgb_uint8"][t].permute(2, 0, 1).float() / 255 - MEAN) / STD
        assert rec["image"].shape == want.shape
        assert torch.equal(rec["image"].cpu(), want), f"frame {t}: the model input differs from the official one"


def test_decoder_outputs_match_every_layer(run, reference):
    _, ref = reference
    # the measured margins, shown with `pytest -s`
    print(json.dumps({"max_abs_diff_per_frame": [
        {"logits": _maxdiff(r["out"].logits, f["all_layers_logits"]),
         "boxes": _maxdiff(r["out"].boxes, f["all_layers_boxes"]),
         "hs_last": _maxdiff(r["out"].rows.embeds, f["hs_last"])} for r, f in zip(run[0], ref)]}))
    for t, (rec, f) in enumerate(zip(run[0], ref)):
        out = rec["out"]
        assert len(out.rows) == f["n_queries_in"]
        _close(out.logits, f["all_layers_logits"], 1e-3, f"frame {t} logits (all layers)")
        _close(out.boxes, f["all_layers_boxes"], 1e-4, f"frame {t} boxes (all layers)")
        _close(out.logits[-1], f["pred_logits"], 1e-3, f"frame {t} pred_logits")
        _close(out.boxes[-1], f["pred_boxes"], 1e-4, f"frame {t} pred_boxes")
        _close(out.rows.embeds, f["hs_last"], 1e-3, f"frame {t} last hidden states")


def test_track_queries_going_in_match(run, reference):
    _, ref = reference
    for t, (rec, f) in enumerate(zip(run[0], ref)):
        q, state = f["queries_in"], rec["state"]
        assert state.ids.tolist() == q["obj_idxes"][300:].tolist(), f"frame {t}"
        assert state.misses.tolist() == q["disappear_time"][300:].tolist(), f"frame {t}"
        _close(state.queries, q["query_pos"][300:], 1e-3, f"frame {t} track query_pos")
        _close(state.refs, q["ref_pts"][300:], 1e-3, f"frame {t} track ref_pts")


def test_runtime_tracker_state_is_identical(run, reference):
    """Births, misses and deaths of the official RuntimeTrackerBase, row by row."""
    _, ref = reference
    born_per_frame = []
    for t, (rec, f) in enumerate(zip(run[0], ref)):
        rows = lifecycle.update(rec["out"].rows, rec["model"].rules)  # every row, before the dead are dropped
        after = f["after_track_base"]
        assert rows.ids.tolist() == after["obj_idxes"].tolist(), f"frame {t} obj ids"
        assert rows.misses.tolist() == after["disappear_time"].tolist(), f"frame {t} disappear_time"
        _close(rows.scores, after["scores"], 2e-4, f"frame {t} scores")
        born_per_frame.append(torch.nonzero((rows.ids >= 0) & (torch.arange(len(rows)) < 300)).flatten().tolist())
    # the fixture README's story: which detect query gave birth in which frame
    assert born_per_frame == [[282], [235, 282], [], [], [235], [235], [], [42, 235]]


def test_qim_produces_the_next_track_queries(run, reference):
    _, ref = reference
    for t, (rec, f) in enumerate(zip(run[0], ref)):
        q, nxt = f["qim_out"], rec["next"]
        assert nxt.ids.tolist() == q["obj_idxes"][300:].tolist(), f"frame {t}"
        _close(nxt.queries, q["query_pos"][300:], 1e-3, f"frame {t} updated query_pos")
        _close(nxt.refs, q["ref_pts"][300:], 1e-3, f"frame {t} updated ref_pts")


def test_reported_tracks_match_ids_and_pixel_boxes(run, reference):
    frames, ref = reference
    h, w = frames["frames_rgb_uint8"].shape[1:3]
    scale = torch.tensor([w, h, w, h], dtype=torch.float64)
    for t, (rec, f) in enumerate(zip(run[0], ref)):
        res, want = rec["result"], f["result"]
        assert (res["ids"] + 1).tolist() == want["ids"].long().tolist(), f"frame {t} written ids"
        assert res["labels"].tolist() == f["dt_instances"]["labels"].tolist()
        _close(res["scores"], f["dt_instances"]["scores"], 2e-4, f"frame {t} scores")
        _close(res["boxes"], box_xyxy_to_cxcywh(want["boxes_xyxy"] / scale), 1e-4, f"frame {t} normalised boxes")
        pixels = box_cxcywh_to_xyxy(res["boxes"].double()) * scale
        print(json.dumps({"frame": t, "pixel_box_max_abs_diff": _maxdiff(pixels, want["boxes_xyxy"])}))
        _close(pixels, want["boxes_xyxy"], 1e-2, f"frame {t} pixel boxes")


@pytest.mark.skipif(not CLI_TRACK, reason="`trackformers track` (engine/track.py, data/sources.py) not installed")
def test_cli_result_file_reproduces_tracker_results(run, fixture_dir):
    ours = np.loadtxt(run[1], delimiter=",", ndmin=2)
    want = np.loadtxt(fixture_dir / "tracker_results.txt", delimiter=",", ndmin=2)
    assert ours.shape == want.shape
    np.testing.assert_array_equal(ours[:, 0], want[:, 0])
    offset = ours[0, 1] - want[0, 1]
    np.testing.assert_array_equal(ours[:, 1] - offset, want[:, 1])
    np.testing.assert_allclose(ours[:, 2:6], want[:, 2:6], atol=1e-2, rtol=0)
