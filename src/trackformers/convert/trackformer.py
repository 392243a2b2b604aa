"""Official TrackFormer checkpoints (timmeinhardt/trackformer) -> a trackformers Trackformer file.

Key layout: the official Deformable DETR names under `detector.` (the ResNet's
`backbone.0.body.` becomes `detector.backbone.`), after stripping the `detr.` prefix some
checkpoints carry (as the official track.py does). Dropped, with their reason:
`transformer.decoder.bbox_embed.*` (the same tensors as `bbox_embed.*`: the official "hack" of
box refinement shares the heads, checked equal) and `track_encoding` keys (the official
track.py drops them too).

The config: `config.yaml` next to the checkpoint (the official track.py needs it too) gives
hidden_dim, num_queries, the multi-frame flags, layers, heads, points, FFN width, dropout and
box refinement; without it the shapes give what they can (multi-frame attention when
level_embed has twice the encoder's levels). The MSDA offset normaliser is the legacy (H, W)
one of the official code. The runtime thresholds keep the official `track.yaml` + `reid`
defaults and can be changed with `--set` (e.g. `--set inactive_patience=2`).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from trackformers.config import ConfigError, from_dict, parse_overrides, to_dict
from trackformers.convert import deformable_detr
from trackformers.convert.common import Converted, Rules, map_state_dict, require

RULES = Rules(
    renames=[(r"backbone\.0\.body\.", "detector.backbone."), (r"", "detector.")],
    drops=[(r"transformer\.decoder\.bbox_embed\.", "alias of bbox_embed.* (box refinement shares the heads)",
            "bbox_embed."),
           (r".*track_encoding", "track_encoding: not used by the tracking model (dropped by the official track.py)",
            None)],
)

# official config.yaml key -> our DetectorConfig key
_DETECTOR_KEYS = {"hidden_dim": "hidden_dim", "num_queries": "num_queries", "nheads": "nheads",
                  "enc_layers": "enc_layers", "dec_layers": "dec_layers", "dim_feedforward": "dim_feedforward",
                  "dropout": "dropout", "enc_n_points": "enc_n_points", "dec_n_points": "dec_n_points",
                  "num_feature_levels": "num_feature_levels", "with_box_refine": "with_box_refine",
                  "two_stage": "two_stage", "dilation": "dilation", "aux_loss": "aux_loss",
                  "position_embedding": "position_embedding"}
_FLAGS = ("multi_frame_attention", "multi_frame_encoding", "multi_frame_attention_separate_encoder",
          "track_query_false_positive_prob", "track_query_false_negative_prob", "track_backprop_prev_frame")
_LOSS_KEYS = ("cls_loss_coef", "bbox_loss_coef", "giou_loss_coef", "set_cost_class", "set_cost_bbox",
              "set_cost_giou", "focal_alpha", "focal_gamma")


def strip_prefix(sd: dict) -> dict:
    """Keys without the `detr.` prefix of wrapped checkpoints."""
    return {(k[len("detr."):] if k.startswith("detr.") else k): v for k, v in sd.items()}


def read_official_config(checkpoint: str | Path) -> dict:
    """The official `config.yaml` beside the checkpoint, or {} when there is none."""
    path = Path(checkpoint).parent / "config.yaml"
    if not path.is_file():
        return {}
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a mapping of official training options")
    if data.get("deformable") is False or data.get("masks"):
        raise ConfigError(f"{path}: only the deformable, box-only TrackFormer models convert "
                          f"(deformable: {data.get('deformable')}, masks: {data.get('masks')})")
    return data


def infer_config(sd: dict, official: dict | None = None, overrides: dict | None = None) -> dict:
    """The Trackformer config dict (without `method`) from the official config.yaml options
    (when given) and the state dict's shapes, `overrides` (nested, from --set) last."""
    official = dict(official or {})
    overrides = dict(overrides or {})
    levels, hidden = require(sd, "transformer.level_embed").shape
    enc_rows = require(sd, "transformer.encoder.layers.0.self_attn.attention_weights.weight").shape[0]
    dec_rows = require(sd, "transformer.decoder.layers.0.cross_attn.attention_weights.weight").shape[0]
    multi = official.get("multi_frame_attention", dec_rows != enc_rows or levels == 8)
    separate = official.get("multi_frame_attention_separate_encoder", dec_rows != enc_rows)
    per_frame = levels // 2 if multi else levels
    # The Deformable DETR reader sees the decoder's 2L levels; give it the per-frame count
    # through the decoder's points (which it derives from rows / (heads x levels)).
    det = {ours: official[k] for k, ours in _DETECTOR_KEYS.items() if k in official}
    det.update(overrides.pop("detector", {}))
    nheads = int(det.get("nheads", 8))
    view = dict(sd)
    view["transformer.level_embed"] = sd["transformer.level_embed"][:per_frame]
    if multi and not separate:  # one 2L-level encoder: its rows also count both frames
        enc_key = "transformer.encoder.layers.0.self_attn.attention_weights.weight"
        view[enc_key] = sd[enc_key][: enc_rows // 2]
    dec_key = "transformer.decoder.layers.0.cross_attn.attention_weights.weight"
    if multi:
        view[dec_key] = sd[dec_key][: dec_rows // 2]
    if det.get("position_embedding") in ("sine", "v2"):  # the official names of the sine encoding
        det["position_embedding"] = "sine"
    detector = deformable_detr.infer_config(view, {**det, "nheads": nheads, "offset_normalizer_hw": True})
    cfg = {"detector": to_dict(detector),
           "multi_frame_attention": bool(multi),
           "multi_frame_encoding": bool(official.get("multi_frame_encoding", multi)),
           "multi_frame_attention_separate_encoder": bool(separate)}
    cfg.update({k: official[k] for k in _FLAGS if k in official and k not in cfg})
    loss = {k: official[k] for k in _LOSS_KEYS if k in official}
    if loss:
        cfg["loss"] = loss
    if "img_transform" in official:
        t = official["img_transform"]
        cfg["input"] = {"short_side": int(t.get("val_width", 800)), "max_size": int(t.get("max_size", 1333)),
                        "resize_rule": "detr"}
    if official.get("merge_frame_features") or official.get("track_attention"):
        raise ConfigError("merge_frame_features / track_attention TrackFormer variants are not supported")
    for key, value in overrides.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    return cfg


def convert(official_sd: dict, overrides: list[str] | None = None, checkpoint: str | Path | None = None) -> Converted:
    """Official TrackFormer state dict -> our state dict + config; `overrides` as `--set`;
    `checkpoint` (its path) locates the official config.yaml."""
    from trackformers.trackers.trackformer import Trackformer

    sd = strip_prefix(official_sd)
    official = read_official_config(checkpoint) if checkpoint is not None else {}
    cfg = from_dict(Trackformer.Config, infer_config(sd, official, parse_overrides(overrides)))
    state_dict, dropped = map_state_dict(sd, Trackformer(cfg).state_dict(), RULES)
    return Converted(state_dict, {"method": "trackformer", **to_dict(cfg)}, dropped)
