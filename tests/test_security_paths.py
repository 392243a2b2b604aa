"""No name read from an input file (seqinfo.ini, seqmap, BDD100K JSON, odgt) can make
trackformers read or write outside the folders it was given."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_track_cli import frames, write_images
from trackformers import cli
from trackformers.data.datasets import load_dataset
from trackformers.data.mot import write_seqinfo
from trackformers.eval.testing import Errors, make_sequence, write_case

FIX = Path(__file__).resolve().parent / "fixtures" / "data"


def one_line(capsys, argv, *needles):
    capsys.readouterr()
    assert cli.main(list(map(str, argv))) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/escaped-abs", "..", "a\\b"])
def test_seqinfo_name_cannot_place_results_outside_out(tmp_path, capsys, name):
    seq = tmp_path / "split" / "seqA"
    write_images(seq / "img1", frames(2))
    write_seqinfo(seq / "seqinfo.ini", name, 2, 64, 48, im_ext=".png")
    before = files_under(tmp_path)
    one_line(capsys, ["track", tmp_path / "split", "--model", "iou-baseline-synth", "--out", tmp_path / "a" / "out"],
             "seqinfo.ini", "not a plain name")
    assert files_under(tmp_path) - before <= {"a", "a/out"}  # only the (empty) output folder
    assert not Path("/tmp/escaped-abs.txt").exists()


def test_seqmap_names_cannot_leave_the_gt_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    gt_root, pred_root = write_case(tmp_path, {"s0": (*make_sequence(rng, 10, 3, Errors()), 10)})
    # A sequence outside gt_root that a "../" name would reach.
    shutil.copytree(gt_root / "s0", tmp_path / "outside")
    seqmap = tmp_path / "hostile_seqmap.txt"
    seqmap.write_text("name\ns0\n../outside\n")
    one_line(capsys, ["eval", "--gt", gt_root, "--pred", pred_root, "--benchmark", "dancetrack", "--seqmap", seqmap],
             f"{seqmap}:3", "'../outside' is not a plain folder name")


def test_bdd_names_cannot_leave_the_video_folder(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(FIX / "BDD100K", root / "BDD100K")
    label = next((root / "BDD100K" / "labels").rglob("*.json"))
    frames_ = json.loads(label.read_text())
    # videoName is never used as a path: a hostile one changes nothing.
    for fr in frames_:
        fr["videoName"] = "../../../evil"
    label.write_text(json.dumps(frames_))
    seqs = load_dataset("bdd100k", str(root), "val")
    assert [s.name for s in seqs] == [label.stem]
    assert all(Path(p).parent.name == label.stem for s in seqs for p in s.image_paths)
    # A frame name is a file in the video's folder, nowhere else.
    frames_[0]["name"] = "../../../../etc/passwd"
    label.write_text(json.dumps(frames_))
    with pytest.raises(ValueError, match=rf"{label}: frame \d+: name '../../../../etc/passwd' is not a plain"):
        load_dataset("bdd100k", str(root), "val")


def test_odgt_ids_cannot_leave_the_image_folder(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(FIX / "CrowdHuman", root / "CrowdHuman")
    odgt = root / "CrowdHuman" / "annotation_val.odgt"
    lines = odgt.read_text().splitlines()
    record = json.loads(lines[0])
    record["ID"] = "../../secret"
    odgt.write_text("\n".join([json.dumps(record)] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=rf"{odgt}:1: 'ID' must be an image file stem"):
        load_dataset("crowdhuman", str(root), "val")


def test_a_model_file_cannot_make_load_tracker_import_a_module(tmp_path):
    """A model file names its method; a module outside trackformers that nobody imported is
    refused (importing runs code), one line; an imported one (the user's own) loads."""
    import sys

    from trackformers.checkpoint import save_model
    from trackformers.config import ConfigError
    from trackformers.trackers.registry import load_model_file

    plugin = tmp_path / "evil_plugin_mod.py"
    plugin.write_text("open(__file__ + '.ran', 'w').close()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        save_model(tmp_path / "m", {}, {"method": "evil_plugin_mod:Tracker"})
        with pytest.raises(ConfigError, match="lives outside trackformers: import evil_plugin_mod yourself"):
            load_model_file(tmp_path / "m")
        assert not (tmp_path / "evil_plugin_mod.py.ran").exists()
        # the user's own import makes it loadable (here it still fails: the module has no class)
        import evil_plugin_mod  # noqa: F401
        with pytest.raises(ConfigError, match="cannot import evil_plugin_mod:Tracker"):
            load_model_file(tmp_path / "m")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("evil_plugin_mod", None)


def test_the_environment_can_trust_a_module_for_the_command_line(tmp_path, monkeypatch):
    from trackformers.config import ConfigError
    from trackformers.trackers.registry import method_class

    monkeypatch.setenv("TRACKFORMERS_TRUSTED_MODULES", "json,never_imported_mod_xyz")
    with pytest.raises(ConfigError, match="cannot import never_imported_mod_xyz:Thing"):
        method_class("never_imported_mod_xyz:Thing")  # trusted, so it tries (and the module is absent)
    monkeypatch.setenv("TRACKFORMERS_TRUSTED_MODULES", "")
    with pytest.raises(ConfigError, match="lives outside trackformers"):
        method_class("never_imported_mod_xyz:Thing")
