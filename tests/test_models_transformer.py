"""Deformable transformer pieces: encoder references, decoder with extra (track) queries."""
import torch

from trackformers.models.deformable_transformer import (DeformableTransformer, DeformableTransformerEncoder,
                                                        refine_boxes, valid_ratio)
from trackformers.models.heads import MLP


def small_transformer(**kw):
    torch.manual_seed(0)
    return DeformableTransformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=32,
                                 dropout=0.0, num_feature_levels=2, dec_n_points=2, enc_n_points=2, **kw).eval()


def levels(B=2):
    torch.manual_seed(1)
    srcs = [torch.randn(B, 16, 6, 8), torch.randn(B, 16, 3, 4)]
    masks = [torch.zeros(B, 6, 8, dtype=torch.bool), torch.zeros(B, 3, 4, dtype=torch.bool)]
    masks[0][1, :, 6:] = True  # image 1 is padded on the right
    masks[1][1, :, 3:] = True
    pos = [torch.randn_like(s) for s in srcs]
    return srcs, masks, pos


def test_encoder_reference_points_hand_worked():
    shapes = torch.tensor([[2, 4], [1, 2]])
    ratios = torch.tensor([[[0.5, 1.0], [0.5, 1.0]]])  # (w, h): half the width is image
    refs = DeformableTransformerEncoder.get_reference_points(shapes, ratios)
    assert refs.shape == (1, 8 + 2, 2, 2)
    # token (row 1, col 1) of level 0: centre (1.5, 1.5) over the valid 2 x 2 -> (0.75, 0.75) of the
    # valid region, i.e. (0.375, 0.75) of the padded map at both levels
    torch.testing.assert_close(refs[0, 5, 0], torch.tensor([0.375, 0.75]))
    torch.testing.assert_close(refs[0, 9, 1], torch.tensor([1.5 / 1 * 0.5, 0.5]))


def test_valid_ratio():
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    mask[:, 3:] = True
    mask[:, :, 4:] = True
    torch.testing.assert_close(valid_ratio(mask), torch.tensor([[0.8, 0.75]]))


def test_masked_track_queries_leave_detect_queries_unchanged():
    """Track queries appended after the detect queries, with a mask that stops detect queries
    from seeing them: detect outputs equal a run without track queries; track outputs differ
    when they may look at detect queries."""
    tr = small_transformer()
    heads = torch.nn.ModuleList(MLP(16, 16, 4, 3) for _ in range(2))
    enc = tr.encode(*levels())
    Qd, Qt = 5, 3
    tgt, pos = torch.randn(2, Qd + Qt, 16), torch.randn(2, Qd + Qt, 16)
    ref = torch.cat([torch.rand(2, Qd, 4) * 0.5 + 0.25, torch.rand(2, Qt, 4) * 0.5 + 0.25], 1)
    args = (enc.memory, enc.spatial_shapes, enc.level_start_index, enc.valid_ratios)
    with torch.no_grad():
        hs_det, refs_det = tr.decoder(tgt[:, :Qd], ref[:, :Qd], *args, pos[:, :Qd], enc.padding_mask, bbox_embed=heads)
        mask = torch.zeros(Qd + Qt, Qd + Qt, dtype=torch.bool)
        mask[:Qd, Qd:] = True
        hs, refs = tr.decoder(tgt, ref, *args, pos, enc.padding_mask, self_attn_mask=mask, bbox_embed=heads)
        hs_open, _ = tr.decoder(tgt, ref, *args, pos, enc.padding_mask, bbox_embed=heads)
    assert hs.shape == (2, 2, Qd + Qt, 16) and refs.shape == (2, 2, Qd + Qt, 4)
    torch.testing.assert_close(hs[:, :, :Qd], hs_det, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(refs[:, :, :Qd], refs_det, rtol=1e-5, atol=1e-5)
    assert (hs_open[:, :, :Qd] - hs_det).abs().max() > 1e-3


def test_box_refinement_rule():
    delta = torch.tensor([[0.5, -0.5, 1.0, 2.0]])
    point = torch.tensor([[0.5, 0.25]])
    box = torch.tensor([[0.5, 0.25, 0.2, 0.4]])
    logit = lambda p: torch.log(p / (1 - p))
    torch.testing.assert_close(refine_boxes(delta, point),
                               torch.cat([(delta[:, :2] + logit(point)).sigmoid(), delta[:, 2:].sigmoid()], 1))
    torch.testing.assert_close(refine_boxes(delta, box), (delta + logit(box)).sigmoid())


def test_refined_references_are_detached():
    tr = small_transformer()
    heads = torch.nn.ModuleList(MLP(16, 16, 4, 3) for _ in range(2))
    enc = tr.encode(*levels())
    tgt = torch.randn(2, 4, 16, requires_grad=True)
    _, refs = tr.decoder(tgt, torch.rand(2, 4, 2), enc.memory, enc.spatial_shapes, enc.level_start_index,
                         enc.valid_ratios, None, enc.padding_mask, bbox_embed=heads)
    assert not refs.requires_grad


def test_two_stage_queries_come_from_valid_proposals():
    tr = small_transformer(two_stage=True, two_stage_num_proposals=7)
    cls, box = torch.nn.Linear(16, 3), MLP(16, 16, 4, 3)
    enc = tr.encode(*levels())
    proposals = tr.encoder_proposals(enc)[1]
    # padded tokens of image 1 and border tokens outside (0.01, 0.99) are invalid (+inf)
    assert torch.isinf(proposals[1].view(-1, 4)[enc.padding_mask[1]]).all()
    # token (row 2, col 3) of level 0 (6 x 8): centre over the valid width (8, or 6 for the padded
    # image 1), size 0.05 at level 0 and 0.1 at level 1, in logit space
    logit = lambda p: torch.log(p / (1 - p))
    token = 2 * 8 + 3
    torch.testing.assert_close(proposals[0, token], logit(torch.tensor([3.5 / 8, 2.5 / 6, 0.05, 0.05])))
    torch.testing.assert_close(proposals[1, token], logit(torch.tensor([3.5 / 6, 2.5 / 6, 0.05, 0.05])))
    torch.testing.assert_close(proposals[0, 48 + 1 * 4 + 2], logit(torch.tensor([2.5 / 4, 1.5 / 3, 0.1, 0.1])))
    tgt, pos, ref, enc_class, enc_coord = tr.two_stage_queries(enc, cls, box)
    assert tgt.shape == pos.shape == (2, 7, 16) and ref.shape == (2, 7, 4)
    top = enc_class[..., 0].topk(7, dim=1).indices
    torch.testing.assert_close(ref, torch.gather(enc_coord, 1, top[..., None].expand(-1, -1, 4)).sigmoid())
