"""Presenting `evaluate` results: a terminal table, a JSON file, a plot."""
from __future__ import annotations

import json
import os
import tempfile

# (header, key, kind): kind "%" prints a fraction as a percentage, "d" an integer.
COLUMNS = (("HOTA", "HOTA", "%"), ("DetA", "DetA", "%"), ("AssA", "AssA", "%"), ("LocA", "LocA", "%"),
           ("MOTA", "MOTA", "%"), ("MOTP", "MOTP", "%"), ("IDF1", "IDF1", "%"), ("IDP", "IDP", "%"),
           ("IDR", "IDR", "%"), ("IDSW", "IDSW", "d"), ("Frag", "Frag", "d"), ("FP", "CLR_FP", "d"),
           ("FN", "CLR_FN", "d"), ("MT", "MT", "d"), ("PT", "PT", "d"), ("ML", "ML", "d"),
           ("Dets", "Dets", "d"), ("GT_Dets", "GT_Dets", "d"), ("IDs", "IDs", "d"), ("GT_IDs", "GT_IDs", "d"))


def table_rows(results: dict, benchmark: str) -> list[tuple[str, dict]]:
    """(label, metrics) rows: every sequence then COMBINED; for bdd100k the combined result of
    each class and of TrackEval's class combinations (per-sequence results are in the JSON)."""
    if benchmark == "bdd100k":
        return [(name, metrics) for name, metrics in results["COMBINED"].items()]
    return [(name, metrics) for name, metrics in results.items()]


def format_table(results: dict, benchmark: str) -> str:
    """Fixed-width table, ratios in percent."""
    rows = table_rows(results, benchmark)
    first = max(len("COMBINED"), *(len(name) for name, _ in rows))
    widths = [max(7, len(h)) for h, _, _ in COLUMNS]
    lines = [" ".join([f"{'sequence' if benchmark != 'bdd100k' else 'class':<{first}}"]
                      + [f"{h:>{w}}" for (h, _, _), w in zip(COLUMNS, widths)])]
    for name, metrics in rows:
        cells = [f"{100 * metrics[k]:>{w}.3f}" if kind == "%" else f"{metrics[k]:>{w}d}"
                 for (_, k, kind), w in zip(COLUMNS, widths)]
        if name == "COMBINED" or (benchmark == "bdd100k" and name == "cls_comb_cls_av"):
            lines.append("-" * len(lines[0]))
        lines.append(" ".join([f"{name:<{first}}"] + cells))
    return "\n".join(lines)


def write_json(results: dict, path: str | os.PathLike) -> None:
    """The results as JSON, written atomically (a temporary file renamed into place)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def plot(results: dict, benchmark: str, path: str | os.PathLike) -> None:
    """HOTA, DetA and AssA against alpha (combined) beside a bar chart of the same three per
    sequence (per class for bdd100k, whose combined curve is the class average)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if benchmark == "bdd100k":
        overall = results["COMBINED"]["cls_comb_cls_av"]
        bars = [(c, m) for c, m in results["COMBINED"].items() if not c.startswith("cls_comb") and c.islower()]
    else:
        overall = results["COMBINED"]
        bars = [(s, m) for s, m in results.items() if s != "COMBINED"]
    keys = ("HOTA", "DetA", "AssA")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    alpha = overall["per_alpha"]["alpha"]
    for key in keys:
        left.plot(alpha, overall["per_alpha"][key], marker=".", label=f"{key} ({100 * overall[key]:.2f})")
    left.set(xlabel="alpha (localisation threshold)", ylabel="score", xlim=(0, 1), ylim=(0, 1),
             title="combined" if benchmark != "bdd100k" else "combined (class average)")
    left.legend(loc="lower left")
    left.grid(alpha=0.3)
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        right.bar([x + (k - 1) * width for x in range(len(bars))], [m[key] for _, m in bars], width, label=key)
    right.set_xticks(range(len(bars)), [name for name, _ in bars], rotation=60, ha="right", fontsize=8)
    right.set(ylim=(0, 1), title="per class" if benchmark == "bdd100k" else "per sequence")
    right.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
