"""Trackers: one file per method on one contract.

    tracker.py        Tracker: Config, cfg.input, new_state(), track(image, state, orig_size)
                      -> (result, state), training_loss(clips); all engine/ and the registry know
    state.py          TrackState rows (+ a per-sequence Context: frame, next id, previous features)
    lifecycle.py      births, misses, deaths, ids, detection NMS against tracks (mask arithmetic)
    assignment.py     tracklet-aware target assignment, false-positive insertion, ClipLoss
    query_tracker.py  QueryTracker: the one frame loop (track_frame, supervise) of query trackers
    motr.py trackformer.py memotr.py sambamotr.py qdtrack.py baseline.py
                      the methods; registry.py: names -> classes, built-ins, step(); results.py: FrameTracks

Which rows are born, updated and killed by which rule:

| method | rows | born | updated between frames | missed / killed | paper |
|---|---|---|---|---|---|
| MOTR | detect queries + track queries | a detect row with score >= score_thresh (lifecycle.update) | QIM / TAN on every live track (training: IoU gate, random drop, FP insertion) | score < filter_score_thresh counts a miss; dead after miss_tolerance misses; a score >= score_thresh resets the count | MOTR sec. 3.3-3.5 (RuntimeTrackerBase) |
| MeMOTR | detect queries (first 300) + track queries | a detect row with best-class score >= det_score_thresh; content = last layer's input, reference = its start box | memory-gated TIM (QueryUpdater), only tracks with score > update_thresh change | own-label score < track_score_thresh counts a miss; dead after miss_tolerance | MeMOTR sec. 3.2-3.4 |
| SambaMOTR | as MeMOTR; each track row also carries its Samba state (hidden_state, conv_history) | as MeMOTR, with a zero Samba state | Samba on every live track (synchronised SSM step); score <= update_thresh: zero observation and position, reference box kept (MaskObs), state still advances | as MeMOTR | SambaMOTR sec. 4 |
| Trackformer | object queries + track queries (active tracks first, then re-queried inactive ones) | an object query with score > detection_obj_score_thresh and label 0, unless detection NMS against the tracks (score +inf) removes it, or embedding re-id revives an inactive track | content = last decoder output, positional part zero, reference = last box centre | below track_obj_score_thresh for steps_termination frames: inactive (re-queried, revived above reid_score_thresh keeping its counters, appended last); track NMS deletes; inactive over inactive_patience frames: dropped | Trackformer sec. 3.2-3.3 (src/trackformer/models/tracker.py) |
| QDTrack (R-CNN / DETR) | memo of tracklets + backdrops (QDMemo) | a detection above init_score_thr left unmatched by bi-softmax (match_score_thr) | a matched tracklet takes the box and label; embedding EMA with memo_momentum | unseen for memo_tracklet_frames: forgotten; low-score leftovers become backdrops for memo_backdrop_frames | QDTrack sec. 3.3 |
| IoU baseline | one row per live track + this frame's detections | an unmatched detection with score >= score_thresh (lifecycle.advance) | a matched track takes its detection's box, score and label | unmatched counts a miss; dead after miss_tolerance | tracking by detection (SORT-style, IoU Hungarian) |

Training (query trackers): tracks keep the target with their identity, candidates (MOTR: rows
without an id; MeMOTR: detect rows) are Hungarian-matched to the rest, losses summed over the
clip and divided once by its number of objects (MOTR sec. 3.3, collective average loss).
"""
