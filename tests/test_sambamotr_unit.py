"""The Samba query updater, vectorised over tracklets, against a naive per-track loop in float64
(synchronisation across tracklets and MaskObs included), over frames with births and deaths."""
import math

import pytest
import torch
import torch.nn.functional as F

from trackformers.trackers.sambamotr import SambaQueryUpdater

C, N, H, L, KCONV = 16, 16, 4, 2, 4  # d_model, d_state, sync heads, layers, conv steps
D = 2 * C                            # expand 2


def lin(layer, x):
    return x @ layer.weight.T + (layer.bias if layer.bias is not None else 0)


def ln(norm, x):
    mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def ffn(f, x):
    return ln(f.norm, x + lin(f.linear2, torch.relu(lin(f.linear1, x))))


def silu(x):
    return x / (1 + torch.exp(-x))


def sine(box):
    """DETR-style sine of one normalised box, coordinates x, y, w, h, C/2 frequencies each."""
    out = torch.zeros(2 * C, dtype=box.dtype)
    for c in range(4):
        for j in range(C // 2):
            v = box[c] * 2 * math.pi / 10000 ** (2 * (j // 2) / (C // 2))
            out[c * (C // 2) + j] = torch.sin(v) if j % 2 == 0 else torch.cos(v)
    return out


def naive_sync(mixer, h):
    """h (K, D, N): channel by channel, the K tracklets' N-dim states attend to each other.

    The official head split reshapes each channel's (K, N) projections to (H, K, N/H): cut the
    projected tokens into K*H chunks of N/H values, in token order; head g attends among the
    chunks g*K ... g*K+K-1; its t-th result becomes channels g*N/H ... of output token t.
    """
    K, hd = h.shape[0], N // H
    out = torch.zeros_like(h)
    for d in range(D):
        x = h[:, d, :].clone()
        pos = mixer.position_embedding[d] * torch.exp(mixer.pos_emb_scaling)
        for attn, f, pre, post in zip(mixer.self_attn_layers, mixer.ffn_layers, mixer.pre_norms, mixer.norms):
            qk_in = torch.stack([ln(pre, x[k]) + pos for k in range(K)])
            q = qk_in @ attn.q_proj_weight.T + attn.q_proj_bias
            k_ = qk_in @ attn.k_proj_weight.T + attn.k_proj_bias
            v = x @ attn.v_proj_weight.T + attn.v_proj_bias
            chunk = lambda t, m: t[m // H, (m % H) * hd:(m % H + 1) * hd]  # noqa: E731  chunk m of a (K, N) tensor
            res = torch.zeros(K, N, dtype=h.dtype)
            for g in range(H):
                for t in range(K):
                    logits = torch.stack([chunk(q, g * K + t) @ chunk(k_, g * K + s) / math.sqrt(hd) for s in range(K)])
                    w = torch.softmax(logits, 0)
                    res[t, g * hd:(g + 1) * hd] = sum(w[s] * chunk(v, g * K + s) for s in range(K))
            a = lin(attn.out_proj, res)
            x = torch.stack([ffn(f, ln(post, a[k] + x[k])) for k in range(K)])
        out[:, d, :] = x
    return out


def naive_updater(qu, scores, boxes, ref_pts, query, out, hidden, history):
    """Track by track: reference, position, MaskObs, the Samba stack, the residual query update."""
    K = len(scores)
    keep = [bool(scores[k] > qu.update_thresh) for k in range(K)]
    mlp2 = lambda m, x: lin(m.layers[1], torch.relu(lin(m.layers[0], x)))  # noqa: E731
    refs, xs, ps = ref_pts.clone(), [], []
    for k in range(K):
        if keep[k]:
            b = boxes[k].clamp(1e-5, 1 - 1e-5)
            refs[k] = torch.log(b / (1 - b))
        p = mlp2(qu.query_pos_head, sine(torch.sigmoid(refs[k])))
        xs.append(out[k] if keep[k] else torch.zeros(C, dtype=out.dtype))  # MaskObs
        ps.append(p if keep[k] else torch.zeros(C, dtype=out.dtype))
    h_out, c_out = hidden.clone(), history.clone()
    for i, layer in enumerate(qu.sequence_model.layers):
        m = layer.mixer
        pre_sync, per_track = [], []
        for k in range(K):
            xs[k] = xs[k] + ps[k]
            xz = lin(m.in_proj, ln(layer.norm, xs[k]))
            x, z = xz[:D], xz[D:]
            hist = torch.cat([history[k, i, 1:], x[None]])            # roll left, newest last
            c_out[k, i] = hist
            u = (m.conv1d.weight[:, 0, :] * hist.T).sum(-1) + m.conv1d.bias
            u = ln(m.input_layernorm, silu(u))
            dbc = lin(m.x_proj, u)
            r = m.dt_rank
            delta = F.softplus(lin(m.dt_proj, dbc[:r]))
            B, Cm = dbc[r:r + N], dbc[r + N:]
            A = -torch.exp(m.A_log)
            h = torch.exp(delta[:, None] * A) * hidden[k, i] + delta[:, None] * B[None, :] * u[:, None]
            pre_sync.append(h)
            per_track.append((u, z, Cm))
        h_all = torch.stack(pre_sync)
        h_all = h_all + torch.exp(m.sync_scaling) * naive_sync(m, h_all)
        for k in range(K):
            u, z, Cm = per_track[k]
            h_out[k, i] = h_all[k]
            y = (h_all[k] * Cm[None, :]).sum(-1) + u * m.D
            xs[k] = xs[k] + lin(m.out_proj, y * silu(z))
    queries = []
    for k in range(K):
        y = ln(qu.sequence_model.norm_f, xs[k])
        content = ln(qu.norm_emb, query[k, -C:] + ffn(qu.query_feat_ffn, y))
        if qu.learned_query_pos:
            pos = ln(qu.norm_pos, query[k, :C] + lin(qu.linear_pos2, torch.relu(lin(qu.linear_pos1, y))))
            content = torch.cat([pos, content])
        queries.append(content)
    return dict(ref_pts=refs, query_embed=torch.stack(queries), hidden_state=h_out, conv_history=c_out)


@pytest.mark.parametrize("use_dab", [True, False])
def test_vectorised_step_matches_naive_loop_over_frames_with_births_and_deaths(use_dab):
    torch.manual_seed(0)
    qu = SambaQueryUpdater(C, d_ffn=24, num_heads=H, state_dim=N, num_layers=L, conv_dim=KCONV,
                           learned_query_pos=not use_dab).double().eval()
    with torch.no_grad():  # larger than the init, so that every term (sync, D, conv bias) matters
        for p in qu.parameters():
            p.add_(0.2 * torch.randn_like(p))
    Q = C if use_dab else 2 * C
    def newborn(n):  # rows with a fresh query and reference and a zero Samba state
        return dict(ref_pts=torch.randn(n, 4, dtype=torch.double), query_embed=torch.randn(n, Q, dtype=torch.double),
                    hidden_state=torch.zeros(n, L, D, N, dtype=torch.double),
                    conv_history=torch.zeros(n, L, KCONV, D, dtype=torch.double))
    tracks = newborn(3)
    masked_seen = 0
    for frame in range(4):
        K = len(tracks["ref_pts"])
        scores = torch.rand(K, dtype=torch.double)
        scores[frame % K] = 0.3  # at least one masked, one confident track each frame
        scores[(frame + 1) % K] = 0.9
        boxes = torch.rand(K, 4, dtype=torch.double) * 0.6 + 0.2
        out = torch.randn(K, C, dtype=torch.double)
        with torch.no_grad():
            got = qu(scores, boxes, tracks["ref_pts"], tracks["query_embed"], out,
                     tracks["hidden_state"], tracks["conv_history"])
            want = naive_updater(qu, scores, boxes, tracks["ref_pts"], tracks["query_embed"], out,
                                 tracks["hidden_state"], tracks["conv_history"])
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-10, atol=1e-10, msg=f"frame {frame}: {k}")
        masked = scores <= 0.5
        masked_seen += int(masked.sum())
        assert torch.equal(got["ref_pts"][masked], tracks["ref_pts"][masked])  # MaskObs keeps the box
        assert not torch.equal(got["query_embed"][masked], tracks["query_embed"][masked])  # but still updates
        # the frame's deaths (one track) and births (two, zero state), as the lifecycle does with rows
        alive = torch.arange(K) != (frame * 2) % K
        tracks = {k: torch.cat([v[alive], newborn(2)[k]]) for k, v in got.items()}
    assert masked_seen >= 4


def test_masked_track_enters_samba_with_nothing():
    """MaskObs: below the threshold, observation and position are zero, so layer 0's newest conv
    input of such a track is in_proj(norm(0)) = in_proj(norm.bias), whatever it observed."""
    torch.manual_seed(1)
    qu = SambaQueryUpdater(C, d_ffn=24, num_heads=H, state_dim=N, num_layers=L, conv_dim=KCONV).double().eval()
    with torch.no_grad():
        qu.sequence_model.layers[0].norm.bias.normal_()
    K = 4
    scores = torch.tensor([0.9, 0.2, 0.8, 0.5], dtype=torch.double)  # 0.5 is not above 0.5: masked
    with torch.no_grad():
        got = qu(scores, torch.rand(K, 4, dtype=torch.double) * 0.5 + 0.25, torch.randn(K, 4, dtype=torch.double),
                 torch.randn(K, C, dtype=torch.double), torch.randn(K, C, dtype=torch.double),
                 torch.randn(K, L, D, N, dtype=torch.double), torch.randn(K, L, KCONV, D, dtype=torch.double))
    layer = qu.sequence_model.layers[0]
    nothing = lin(layer.mixer.in_proj, layer.norm.bias)[:D]
    newest = got["conv_history"][:, 0, -1]
    for k in (1, 3):
        torch.testing.assert_close(newest[k], nothing)
    for k in (0, 2):
        assert not torch.allclose(newest[k], nothing)


@pytest.mark.parametrize("sync", [True, False])
def test_tracklets_interact_only_through_the_synchronisation(sync):
    """Changing one track's observation moves the others' states with WITH_SELF_ATTN, never without."""
    torch.manual_seed(2)
    qu = SambaQueryUpdater(C, d_ffn=24, num_heads=H, state_dim=N, num_layers=L, conv_dim=KCONV,
                           with_self_attn=sync).double().eval()
    K = 3
    args = (torch.full((K,), 0.9, dtype=torch.double), torch.rand(K, 4, dtype=torch.double) * 0.5 + 0.25,
            torch.randn(K, 4, dtype=torch.double), torch.randn(K, C, dtype=torch.double))
    state = (torch.randn(K, L, D, N, dtype=torch.double), torch.randn(K, L, KCONV, D, dtype=torch.double))
    out = torch.randn(K, C, dtype=torch.double)
    other = out.clone()
    other[2] = torch.randn(C, dtype=torch.double)  # (not a constant shift: LayerNorm would remove it)
    with torch.no_grad():
        a, b = qu(*args, out, *state), qu(*args, other, *state)
    assert not torch.allclose(a["hidden_state"][2], b["hidden_state"][2])
    assert torch.equal(a["conv_history"][:2, 0], b["conv_history"][:2, 0])  # layer 0's input: before any sync
    for k in ("hidden_state", "query_embed"):
        moved = not torch.allclose(a[k][:2], b[k][:2], rtol=0, atol=1e-12)
        assert moved is sync, k
    assert ("self_attn_layers" in dict(qu.sequence_model.layers[0].mixer.named_children())) is sync
