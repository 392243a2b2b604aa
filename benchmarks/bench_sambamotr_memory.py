"""Memory and time of SambaMOTR's query updater against MeMOTR's, at the official size (DAB,
hidden 256, Samba 4 layers x 512 channels x state 16, conv history 4), on CPU.

Prints JSON:
- `state_bytes_per_track`: the per-row memory a live track carries between frames;
- `per_frame[K]`: for K live tracks, the carried state (`state_bytes`), the tensors the
  updater's forward saves for backward in training (`train_saved_bytes`) and the updater's
  inference step time (`step_ms`, median);
- `detect_rows_bytes`: what the 300 detect rows' copy of the per-row memory costs each frame
  on the current tracker base, which concatenates detect rows and tracks with all their
  memory before decoding (the detect rows' Samba state is zeros and never read).

    python benchmarks/bench_sambamotr_memory.py [--tracks 10 50 100] [--reps 5]
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from trackformers.trackers.memotr import MeMOTR  # noqa: E402
from trackformers.trackers.sambamotr import SambaMOTR  # noqa: E402


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def updater_inputs(model, K: int) -> tuple:
    """One frame's inputs of `model.next_state`'s updater for K tracks (random, as a video's)."""
    g = torch.Generator().manual_seed(K)
    C = model.cfg.detector.hidden_dim
    scores = torch.rand(K, generator=g)
    boxes = torch.rand(K, 4, generator=g) * 0.5 + 0.25
    common = (scores, boxes, torch.randn(K, 4, generator=g), torch.randn(K, C, generator=g),
              torch.randn(K, C, generator=g))
    memory = model._memory(K, boxes)
    if isinstance(model, SambaMOTR):
        return common + (torch.randn_like(memory["hidden_state"]), torch.randn_like(memory["conv_history"]))
    return common + (torch.randn(K, C, generator=g), torch.randn(K, C, generator=g))


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for backward while running `fn` (distinct storages)."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = {"memotr": MeMOTR(MeMOTR.Config()), "sambamotr": SambaMOTR(SambaMOTR.Config())}
    result = {"benchmark": "sambamotr_memory", "device": "cpu", "threads": 1, "dtype": "float32",
              "hidden_dim": 256, "detect_queries": 300, "state_bytes_per_track": {}, "detect_rows_bytes": {},
              "updater_params": {}, "per_frame": {}}
    for name, model in models.items():
        like = torch.zeros(1)
        result["state_bytes_per_track"][name] = nbytes(model._memory(1, like).values())
        result["detect_rows_bytes"][name] = nbytes(model._memory(model.cfg.detector.num_queries, like).values())
        result["updater_params"][name] = sum(p.numel() for p in model.query_updater.parameters())
        for K in args.tracks:
            inputs = updater_inputs(model, K)
            qu = model.query_updater.train()
            train = saved_bytes(lambda: qu(*inputs))
            qu.eval()
            times = []
            with torch.no_grad():
                qu(*inputs)  # warm-up
                for _ in range(args.reps):
                    start = time.perf_counter()
                    qu(*inputs)
                    times.append(1000 * (time.perf_counter() - start))
            state = nbytes(model._memory(K, like).values())
            result["per_frame"].setdefault(str(K), {})[name] = {
                "state_bytes": state, "train_saved_bytes": train, "step_ms": round(statistics.median(times), 3)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
