"""Official SambaMOTR checkpoints (mattiasegu/SambaMOTR, DAB and Deformable-DETR variants) -> SambaMOTR.

    trackformers convert --from sambamotr sambamotr_dancetrack.pth --out models/sambamotr_dancetrack

Everything outside `query_updater.` has MeMOTR's names and is mapped by MeMOTR's rules; the Samba
updater's names are the official ones (`query_updater.sequence_model.layers.{i}.mixer.*`, ...),
so it loads unchanged. Inferred from the shapes, besides MeMOTR's: the state size, expansion,
conv steps, Samba layers, synchronisation blocks and FFN width. Not visible in the shapes, and
set to the official values unless `--set` says otherwise: synchronisation heads (4), MaskObs
on, the prior-free synchronisation, the runtime thresholds (0.5 / 0.5 / 0.5) and the miss
tolerance (50: DanceTrack DAB and SportsMOT; pass miss_tolerance=45 for the DanceTrack
Deformable-DETR weights, 20 for BFT).

Given a COCO DAB-Deformable-DETR (or Deformable DETR) checkpoint instead, it writes the
SambaMOTR that the original's training starts from (MeMOTR's `init_from_detector`).
"""
from __future__ import annotations

from trackformers.config import from_dict, merge, parse_overrides, to_dict
from trackformers.convert import memotr
from trackformers.convert.common import Converted, layer_count, map_state_dict, require

SAMBA = "query_updater.sequence_model.layers."


def infer_config(sd: dict, nheads: int = 8) -> dict:
    """The SambaMOTR config (as a dict) that the official state dict's shapes imply."""
    cfg = memotr.infer_config(sd, nheads)
    hidden = cfg["detector"]["hidden_dim"]
    d_inner, state_dim = require(sd, SAMBA + "0.mixer.A_log").shape
    attn_layers = layer_count(sd, SAMBA + "0.mixer.self_attn_layers.")
    cfg.update(state_dim=int(state_dim), expand=int(d_inner) // hidden,
               conv_dim=int(require(sd, SAMBA + "0.mixer.conv1d.weight").shape[-1]),
               samba_num_layers=layer_count(sd, SAMBA),
               samba_num_attn_layers=max(attn_layers, 1), with_self_attn=attn_layers > 0,
               samba_ffn_dim=int(require(sd, "query_updater.query_feat_ffn.linear1.weight").shape[0]))
    return cfg


def convert(official: dict, overrides: list[str] | None = None) -> Converted:
    """Official SambaMOTR state dict (float16 or 32) -> our state dict, config and dropped keys."""
    from trackformers.trackers.sambamotr import SambaMOTR

    sd = {k: v.float() if v.is_floating_point() else v for k, v in official.items()}
    extra = parse_overrides(overrides)
    if "det_query_embed" not in sd and any(k.startswith("backbone.0.body.") for k in sd):
        return memotr.init_from_detector(sd, extra, method="sambamotr")
    nheads = int(extra.get("detector", {}).get("nheads", 8))
    cfg = from_dict(SambaMOTR.Config, merge(infer_config(sd, nheads), extra))
    expected = SambaMOTR(cfg).state_dict()
    state_dict, dropped = map_state_dict(sd, expected, memotr.rules(cfg.use_dab))
    return Converted(state_dict, {"method": "sambamotr", **to_dict(cfg)}, dropped)
