"""Position encodings against the official probes and a hand-worked example."""
import math
import os

import torch

from trackformers.models.position_encoding import PositionEmbeddingLearned, PositionEmbeddingSine, sine_embed


def test_sine_hand_worked():
    """2x3 map whose last column is padding; 4 features per axis, temperature 100."""
    mask = torch.tensor([[[False, False, True], [False, False, True]]])
    pos = PositionEmbeddingSine(num_pos_feats=4, temperature=100.0, normalize=True, offset=-0.5)(mask)
    assert pos.shape == (1, 8, 2, 3)
    # x at column j (valid width 2): (j + 1 - 0.5) / 2 * 2pi; padded column repeats the last count
    x = torch.tensor([0.5, 1.5, 1.5]) / (2 + 1e-6) * 2 * math.pi
    freqs = [1.0, 1.0, 10.0, 10.0]  # 100 ** (2 * (i // 2) / 4)
    expected_x = torch.stack([(x / freqs[i]).sin() if i % 2 == 0 else (x / freqs[i]).cos() for i in range(4)])
    torch.testing.assert_close(pos[0, 4:, 1], expected_x)
    y = torch.tensor([0.5, 1.5]) / (2 + 1e-6) * 2 * math.pi
    torch.testing.assert_close(pos[0, 0, :, 0], y.sin())
    torch.testing.assert_close(pos[0, 3, :, 1], (y / 10).cos())


def test_sine_matches_official_probes(shared_dir):
    record = torch.load(os.path.join(shared_dir, "fixtures", "deformable_detr", "outputs.pt"),
                        weights_only=False)["outputs"]["plain"]["batch2"]
    encode = PositionEmbeddingSine(128)
    for mask, probe in zip(record["masks"], record["pos"]):
        pos = encode(mask)
        assert list(pos.shape) == probe["shape"]
        torch.testing.assert_close(pos.flatten()[probe["flat_index"]], probe["values"].float(), rtol=0, atol=1e-5)


def test_learned_layout():
    enc = PositionEmbeddingLearned(4)
    pos = enc(torch.zeros(2, 3, 5, dtype=torch.bool))
    assert pos.shape == (2, 8, 3, 5)
    torch.testing.assert_close(pos[1, :4, 2, 3], enc.col_embed.weight[3])
    torch.testing.assert_close(pos[0, 4:, 2, 3], enc.row_embed.weight[2])


def test_sine_embed_of_coordinates():
    coords = torch.tensor([[0.25, 0.5]])
    emb = sine_embed(coords, num_feats=4, temperature=100.0)
    a, b = 0.25 * 2 * math.pi, 0.5 * 2 * math.pi
    expected = [math.sin(a), math.cos(a), math.sin(a / 10), math.cos(a / 10),
                math.sin(b), math.cos(b), math.sin(b / 10), math.cos(b / 10)]
    torch.testing.assert_close(emb[0], torch.tensor(expected))
