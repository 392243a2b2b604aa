"""The live-track state: typed tensor rows plus a per-sequence context.

`TrackState` holds one row per track query; every row tensor has the same first dimension,
and `map` / indexing / `cat` / `.to()` are written once here for every field, a subclass's
own tensor fields and the method-specific `memory` tensors included. What belongs to the
sequence rather than to a row (how many frames were seen, the next id to hand out, the
previous frame's features) lives in its `Context`, carried along unchanged by row operations.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor


@dataclass(frozen=True)
class Context:
    """What a sequence carries that is not a row.

    frame:    frames tracked so far in this sequence (0 before the first).
    next_id:  the next id to hand out (ids are never reused within a sequence).
    features: anything a method keeps from the previous frame (Trackformer: its backbone
              features for the multi-frame encoder); None when there are none.
    """
    frame: int = 0
    next_id: int = 0
    features: Any = None


@dataclass
class TrackState:
    """The rows (track queries) a tracker carries from one frame to the next.

    Every tensor has the same first dimension n (the number of rows); rows are ordered as they
    enter the decoder after the detect queries.

    ids:     (n,) int64 track id; -1 for a row that is not (or no longer) a track, e.g. a
             false-positive query inserted in training or a freshly added detect query.
             At inference ids come from `context.next_id`; in training they are the
             ground-truth identities the rows are assigned to.
    queries: (n, Dq) the query embedding fed to the decoder (method-defined layout, e.g. MOTR:
             positional half ++ content half, Dq = 2C).
    refs:    (n, R) reference point (R=2) or box (R=4) in the space the method's decoder
             expects (MOTR: inverse-sigmoid of the box centre).
    embeds:  (n, C) last decoder layer output of this row in the latest frame.
    boxes:   (n, 4) latest predicted box, normalised cxcywh.
    logits:  (n, K) latest class logits.
    scores:  (n,) latest score the runtime thresholds compare (method-defined, e.g. sigmoid of
             the first logit, or of the max logit).
    misses:  (n,) int64 consecutive frames the track was missed (official `disappear_time`).
    ages:    (n,) int64 frames since the track was born (0 in its first frame).
    gt_idx:  (n,) int64 training: index of the assigned target in the current frame, -1 if none.
    iou:     (n,) training: IoU of `boxes` with the assigned target (0 if none).
    memory:  method-specific per-row tensors (e.g. MeMOTR's long-term memory), each with first
             dimension n; indexed, concatenated and moved with the rest.
    context: the sequence's `Context` (not a row).

    A subclass may add tensor fields of its own: every field but `memory` and `context` is a row.
    """

    ids: Tensor
    queries: Tensor
    refs: Tensor
    embeds: Tensor
    boxes: Tensor
    logits: Tensor
    scores: Tensor
    misses: Tensor
    ages: Tensor
    gt_idx: Tensor
    iou: Tensor
    memory: dict[str, Tensor] = field(default_factory=dict)
    context: Context = field(default_factory=Context)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def new_rows(cls, queries: Tensor, refs: Tensor, embed_dim: int, num_classes: int,
                 memory: dict[str, Tensor] | None = None, context: Context | None = None) -> TrackState:
        """Rows for fresh queries (ids -1, zero embeddings/boxes/logits/scores/counters)."""
        n, device, dtype = len(queries), queries.device, queries.dtype
        return cls(
            ids=torch.full((n,), -1, dtype=torch.long, device=device),
            queries=queries, refs=refs,
            embeds=torch.zeros(n, embed_dim, device=device, dtype=dtype),
            boxes=torch.zeros(n, 4, device=device, dtype=dtype),
            logits=torch.zeros(n, num_classes, device=device, dtype=dtype),
            scores=torch.zeros(n, device=device, dtype=dtype),
            misses=torch.zeros(n, dtype=torch.long, device=device),
            ages=torch.zeros(n, dtype=torch.long, device=device),
            gt_idx=torch.full((n,), -1, dtype=torch.long, device=device),
            iou=torch.zeros(n, device=device, dtype=dtype),
            memory=dict(memory or {}), context=context or Context())

    @classmethod
    def empty(cls, query_dim: int, ref_dim: int, embed_dim: int, num_classes: int,
              memory_dims: dict[str, tuple[int, ...]] | None = None,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> TrackState:
        """A state with no rows: the start of every sequence (`memory_dims`: per-row shapes)."""
        memory = {k: torch.zeros((0, *s), device=device, dtype=dtype) for k, s in (memory_dims or {}).items()}
        return cls.new_rows(torch.zeros(0, query_dim, device=device, dtype=dtype),
                            torch.zeros(0, ref_dim, device=device, dtype=dtype),
                            embed_dim, num_classes, memory)

    # -- one implementation of the per-row plumbing ---------------------------------------
    @classmethod
    def row_fields(cls) -> tuple[str, ...]:
        """Names of the row tensor fields, in declaration order (subclass fields included)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("memory", "context"))

    def map(self, fn: Callable[[Tensor], Tensor]) -> TrackState:
        """A new state (same class) with `fn` applied to every row tensor (fields and memory)."""
        rows = {name: fn(getattr(self, name)) for name in self.row_fields()}
        return type(self)(**rows, memory={k: fn(v) for k, v in self.memory.items()}, context=self.context)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, index: Tensor | slice | int) -> TrackState:
        """Rows selected by a boolean mask, an index tensor or a slice (an int keeps the dim)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self.map(lambda t: t[index])

    def to(self, *args, **kwargs) -> TrackState:
        """`Tensor.to` on every row tensor; integer fields keep their dtype when casting."""
        def move(t: Tensor) -> Tensor:
            if t.is_floating_point():
                return t.to(*args, **kwargs)
            dtype_free = [a for a in args if not isinstance(a, torch.dtype)]
            return t.to(*dtype_free, **{k: v for k, v in kwargs.items() if k != "dtype"})
        return self.map(move)

    def detach(self) -> TrackState:
        return self.map(Tensor.detach)

    def replace(self, **changes) -> TrackState:
        """A copy with some fields replaced (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def with_context(self, **changes) -> TrackState:
        """A copy whose context has some fields replaced (e.g. `next_id=...`)."""
        return dataclasses.replace(self, context=dataclasses.replace(self.context, **changes))

    @staticmethod
    def cat(states: list[TrackState], context: Context | None = None) -> TrackState:
        """Rows of all states, in order, as the first state's class; memory keys must agree.

        The result's context is `context`, or the first state's when not given.
        """
        states = list(states)
        if not states:
            raise ValueError("TrackState.cat: nothing to concatenate")
        first = states[0]
        keys = set(first.memory)
        for s in states[1:]:
            if set(s.memory) != keys:
                raise ValueError(f"TrackState.cat: memory keys differ ({sorted(keys)} vs {sorted(s.memory)})")
        rows = {name: torch.cat([getattr(s, name) for s in states]) for name in first.row_fields()}
        memory = {k: torch.cat([s.memory[k] for s in states]) for k in first.memory}
        return type(first)(**rows, memory=memory, context=first.context if context is None else context)
