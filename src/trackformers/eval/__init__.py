"""Tracking metrics identical to TrackEval's, vectorised: `trackformers.evaluate` / `trackformers eval`.

Read in this order: `evaluate` (folders in, results out), `benchmarks` (what each benchmark
keeps and removes), `sequence` (validated rows, contiguous ids), `similarity` (IoU of every
overlapping pair), `matching` (per-frame Hungarian only where candidates compete), then the
metrics `hota`, `clear`, `identity`, `count`; `report` and `cli` present the results,
`bdd_json` reads BDD100K's JSON, `testing` makes cases and runs TrackEval for comparison.
No torch anywhere in this package.
"""
