import json

import pytest
import torch

from trackformers.checkpoint import load_model, load_official, save_model


def test_roundtrip_keeps_tensors_and_config(tmp_path):
    sd = {"a.weight": torch.randn(3, 4), "b.num": torch.tensor([1, 2], dtype=torch.int64)}
    sd["tied"] = sd["a.weight"]  # shared storage must still save
    stem = save_model(tmp_path / "m", sd, {"hidden_dim": 8}, source="test")
    loaded, meta = load_model(stem.with_suffix(".safetensors"))
    assert set(loaded) == set(sd) and all(torch.equal(loaded[k], sd[k]) for k in sd)
    assert meta["config"] == {"hidden_dim": 8} and meta["provenance"] == {"source": "test"}
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="m.safetensors"):
        load_model(tmp_path / "m")
    save_model(tmp_path / "m", {"x": torch.zeros(1)}, {})
    (tmp_path / "m.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a trackformers model"):
        load_model(tmp_path / "m")


def test_official_nested_fp16_is_cast(tmp_path):
    p = tmp_path / "ck.pth"
    torch.save({"model": {"w": torch.ones(2, dtype=torch.float16), "n": torch.tensor(3)}}, p)
    sd = load_official(p)
    assert sd["w"].dtype == torch.float32 and sd["n"].dtype == torch.int64


def test_files_get_a_plain_files_mode(tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        stem = save_model(tmp_path / "m", {"x": torch.zeros(1)}, {})
    finally:
        os.umask(umask)
    assert (stem.with_suffix(".safetensors").stat().st_mode & 0o777) == 0o644
