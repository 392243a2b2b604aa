"""MeMOTR's query updater (Temporal Interaction Module): the official fixture and a naive loop."""
import math
import os

import pytest
import torch

from trackformers.trackers.memotr import QueryUpdater


def _load_official_updater(shared_dir):
    sd = torch.load(os.path.join(shared_dir, "fixtures/memotr/checkpoint_fp16.pt"), weights_only=True)["model"]
    qu = QueryUpdater(d_model=256, d_ffn=2048, update_thresh=0.001).eval()
    prefix = "query_updater."
    state = {k[len(prefix):].replace("confidence_weight_net.0.", "confidence_weight."): v.float()
             for k, v in sd.items() if k.startswith(prefix)}
    qu.load_state_dict(state)
    return qu


def test_updater_matches_official_fixture(shared_dir):
    """tracks before the updater (kept old + newborn) -> tracks fed to the next frame, 8 frames."""
    qu = _load_official_updater(shared_dir)
    frames = torch.load(os.path.join(shared_dir, "fixtures/memotr/outputs.pt"), weights_only=False)["frames"]
    n_frozen = 0
    for f in frames:
        prev, new, want = f["tracker_prev_tracks"], f["tracker_new_tracks"], f["tracks_out"]
        alive = prev["ids"] >= 0
        cat = lambda k: torch.cat([prev[k][alive], new[k]])  # noqa: E731
        # newborns: long memory = their query, last output = their output (official init)
        long_memory = torch.cat([prev["long_memory"][alive], new["query_embed"]])
        last_output = torch.cat([prev["last_output"][alive], new["output_embed"]])
        scores = cat("scores").max(-1).values
        n_frozen += int((scores <= 0.001).sum())
        with torch.no_grad():
            got = qu(scores, cat("boxes"), cat("ref_pts"), cat("query_embed"), cat("output_embed"),
                     last_output, long_memory)
        assert torch.equal(cat("ids"), want["ids"])
        for k in ("ref_pts", "query_embed", "last_output", "long_memory"):
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-4, msg=k)


def naive_updater(qu, scores, boxes, ref_pts, query, out, last, memory):
    """Track by track, head by head; the frozen/updated choice made with an if per track."""
    K, C = out.shape
    H, Dh = qu.memory_attn.num_heads, C // qu.memory_attn.num_heads
    lin = lambda layer, x: x @ layer.weight.T + layer.bias  # noqa: E731
    mlp2 = lambda m, x: lin(m.layers[1], torch.relu(lin(m.layers[0], x)))  # noqa: E731
    ln = lambda norm, x: torch.nn.functional.layer_norm(x, (C,), norm.weight, norm.bias)  # noqa: E731
    ffn = lambda f, x: ln(f.norm, x + lin(f.linear2, torch.relu(lin(f.linear1, x))))  # noqa: E731

    new_ref = ref_pts.clone()
    for i in range(K):
        if scores[i] > qu.update_thresh:
            b = boxes[i].clamp(1e-5, 1 - 1e-5)
            new_ref[i] = torch.log(b / (1 - b))
    box = new_ref.sigmoid()
    sine = torch.zeros(K, 2 * C, dtype=out.dtype)
    for i in range(K):
        for c in range(4):
            for j in range(C // 2):
                v = box[i, c] * 2 * math.pi / 10000 ** (2 * (j // 2) / (C // 2))
                sine[i, c * (C // 2) + j] = torch.sin(v) if j % 2 == 0 else torch.cos(v)
    pos = mlp2(qu.query_pos_head, sine)
    w = torch.sigmoid(mlp2(qu.confidence_weight, out))
    short = mlp2(qu.short_memory_fusion, torch.cat([w * out, last], -1))
    Wq, Wk, Wv = qu.memory_attn.in_proj_weight.split(C)
    bq, bk, bv = qu.memory_attn.in_proj_bias.split(C)
    q, k, v = (short + pos) @ Wq.T + bq, (memory + pos) @ Wk.T + bk, out @ Wv.T + bv
    attn = torch.zeros(K, C, dtype=out.dtype)
    for i in range(K):
        for h in range(H):
            s = slice(h * Dh, (h + 1) * Dh)
            logits = torch.stack([q[i, s] @ k[j, s] / math.sqrt(Dh) for j in range(K)])
            attn[i, s] = (logits.softmax(0)[:, None] * v[:, s]).sum(0)
    attn = lin(qu.memory_attn.out_proj, attn)
    x = ffn(qu.memory_ffn, ln(qu.memory_norm, out + attn))
    content = ffn(qu.query_feat_ffn, ln(qu.query_feat_norm, memory + x))
    res = {k: t.clone() for k, t in dict(query_embed=query, last_output=last, long_memory=memory).items()}
    for i in range(K):
        if scores[i] > qu.update_thresh:
            res["query_embed"][i] = content[i]
            res["last_output"][i] = out[i]
            res["long_memory"][i] = 0.99 * memory[i] + 0.01 * out[i]
    res["ref_pts"] = new_ref
    return res


def test_updater_gating_and_memory_ema_match_naive_loop():
    torch.manual_seed(0)
    C, K = 16, 5
    qu = QueryUpdater(d_model=C, d_ffn=32, n_heads=4, update_thresh=0.5, memory_lambda=0.01).double().eval()
    scores = torch.tensor([0.9, 0.2, 0.51, 0.5, 0.7], dtype=torch.float64)  # 0.5 is not > 0.5: frozen
    boxes = torch.rand(K, 4, dtype=torch.float64) * 0.8 + 0.1
    args = [torch.randn(K, 4, dtype=torch.float64)] + [torch.randn(K, C, dtype=torch.float64) for _ in range(4)]
    with torch.no_grad():
        got = qu(scores, boxes, *args)
        want = naive_updater(qu, scores, boxes, *args)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-10, msg=k)
    frozen = scores <= 0.5
    assert torch.equal(got["query_embed"][frozen], args[1][frozen])
    assert torch.equal(got["long_memory"][frozen], args[4][frozen])
    assert not torch.allclose(got["query_embed"][~frozen], args[1][~frozen])
