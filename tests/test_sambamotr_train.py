"""A tiny SambaMOTR: the Samba state lives in the track rows (born zero, carried, dropped with
them); training runs the first frames of a clip without gradient and still learns."""
import torch

from test_memotr_train import TINY, synthetic_clip
from trackformers.config import from_dict
from trackformers.trackers.assignment import ClipLoss
from trackformers.trackers.registry import method_class
from trackformers.trackers.sambamotr import SambaMOTR

# masking off: an untrained model scores below 0.5, and MaskObs would give Samba zeros only
SAMBA = {**TINY, "samba_num_layers": 2, "samba_ffn_dim": 16, "no_grad_frames": 2, "masking": False}


def tiny(**changes):
    return SambaMOTR(from_dict(SambaMOTR.Config, {**SAMBA, **changes}))


def test_registered_and_official_defaults():
    assert method_class("sambamotr") is SambaMOTR
    cfg = SambaMOTR.Config()
    assert (cfg.state_dim, cfg.expand, cfg.conv_dim, cfg.samba_num_layers, cfg.samba_num_heads, cfg.samba_ffn_dim,
            cfg.no_grad_frames, cfg.miss_tolerance, cfg.update_thresh) == (16, 2, 4, 4, 4, 128, 5, 50, 0.5)
    assert cfg.with_self_attn and cfg.masking and cfg.detector.dim_feedforward == 2048


def test_masked_newborns_enter_with_nothing():
    """MaskObs on a fresh model (zero LayerNorm biases, no in_proj bias): a newborn below the
    threshold enters with a zero observation and position, so every layer's conv input is exactly
    zero (its state still moves: the conv bias drives it)."""
    torch.manual_seed(0)
    model = tiny(det_score_thresh=0.0, masking=True).eval()
    _, state = model.track(synthetic_clip(1)[0][0], model.new_state())
    assert len(state) == model.cfg.detector.num_queries
    assert (state.memory["conv_history"] == 0).all() and (state.memory["hidden_state"] != 0).any()


def test_state_is_born_zero_carried_with_its_row_and_dropped_with_it():
    torch.manual_seed(0)
    model = tiny(det_score_thresh=0.0, track_score_thresh=0.0, miss_tolerance=2).eval()
    L, D = 2, 2 * 32
    state = model.new_state()
    assert state.memory["hidden_state"].shape == (0, L, D, 16) and state.memory["conv_history"].shape == (0, L, 4, D)
    prev = None
    for t, (image, _) in enumerate(synthetic_clip(3)):
        _, state = model.track(image, state)
        hist = state.memory["conv_history"]
        assert hist.shape == (len(state), L, 4, D) and state.memory["hidden_state"].shape == (len(state), L, D, 16)
        assert state.memory["hidden_state"].abs().sum() > 0  # every row has been stepped once at least
        born = state.ages == 0
        # a newborn has seen one step: its conv history is zeros but for the newest input
        assert (hist[born][:, :, :-1] == 0).all() and (hist[born][:, :, -1] != 0).any()
        if prev is not None:
            for tid in set(state.ids[~born].tolist()):
                old, new = prev.ids == tid, state.ids == tid
                # the rolling history moved one step along the row with that id
                torch.testing.assert_close(state.memory["conv_history"][new][:, :, :-1],
                                           prev.memory["conv_history"][old][:, :, 1:])
        prev = state
    assert len(state) == 3 * model.cfg.detector.num_queries  # born every frame, none dead yet (misses need < 0)


def test_no_grad_frames_carry_their_loss_but_no_gradient():
    torch.manual_seed(0)
    clip = synthetic_clip(3)
    model = tiny(no_grad_frames=0).train()
    full = model.training_loss([clip])
    model.cfg.no_grad_frames = 2
    torch.manual_seed(0)
    late = model.training_loss([clip])
    # the same forward (same value), but only frame 2 backpropagates
    torch.testing.assert_close(full["loss"], late["loss"])
    g_full = torch.autograd.grad(full["loss"], model.detector.class_embed[0].bias)[0]
    g_late = torch.autograd.grad(late["loss"], model.detector.class_embed[0].bias)[0]
    assert not torch.allclose(g_full, g_late)
    model.cfg.no_grad_frames = 3
    try:
        model.training_loss([clip])
        raise AssertionError("a clip without a gradient frame must be refused")
    except ValueError as e:
        assert "no_grad_frames" in str(e)


def test_loss_decreases_and_the_updater_learns():
    torch.manual_seed(0)
    model = tiny(no_grad_frames=1).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    batch = [synthetic_clip(3), synthetic_clip(2)]  # batched clips of different lengths
    losses = []
    for step in range(10):
        out = model.training_loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        if step == 0:  # gradient reaches the Samba updater through the propagated queries
            g = model.query_updater.sequence_model.layers[0].mixer.in_proj.weight.grad
            assert g is not None and g.abs().sum() > 0
        opt.step()
        losses.append(out["loss"].item())
    assert sum(losses[-3:]) / 3 < 0.85 * sum(losses[:3]) / 3, losses

    # matched detect rows become tracks that keep their ids through the Samba update
    clip = synthetic_clip(2)
    model.cfg.train_iou_thresh = 0.0
    out = model.step(clip[0][0][None], None, [model.new_state()])[0]
    rows = model.supervise(out, clip[0][1], ClipLoss())
    state = model.training_tracks(out, rows)
    assert {3, 7} <= set(state.ids.tolist())
    assert state.memory["conv_history"].shape[0] == len(state)


def test_deformable_detr_variant_updates_the_positional_half():
    torch.manual_seed(0)
    model = tiny(use_dab=False, no_grad_frames=1).train()
    out = model.training_loss([synthetic_clip(3)])
    out["loss"].backward()
    assert model.query_updater.linear_pos1.weight.grad.abs().sum() > 0
