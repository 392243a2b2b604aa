"""Evaluate MOT result files exactly as TrackEval does (HOTA, CLEAR, Identity, Count).

Layout: GT_ROOT/<seq>/gt/gt.txt, GT_ROOT/<seq>/seqinfo.ini and PRED_ROOT/<seq>.txt (bdd100k
also reads BDD100K's per-video JSON). Prints a table; --json writes every field (TrackEval's
names, fractions, per-alpha HOTA arrays); --plot draws HOTA/DetA/AssA against alpha and per
sequence. Imports no torch.
"""
from __future__ import annotations

import argparse

from trackformers.eval import report
from trackformers.eval.benchmarks import BENCHMARKS
from trackformers.eval.evaluate import evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="GT_ROOT",
                        help="folder of <seq>/gt/gt.txt + <seq>/seqinfo.ini (bdd100k also: <video>.json files)")
    parser.add_argument("--pred", required=True, metavar="PRED_ROOT",
                        help="folder of <seq>.txt result files (bdd100k JSON layout: <video>.json)")
    parser.add_argument("--benchmark", required=True, choices=BENCHMARKS,
                        help="preprocessing and classes (see trackformers.eval.benchmarks)")
    parser.add_argument("--seqmap", metavar="FILE", help="evaluate only these sequences (one name per line)")
    parser.add_argument("--json", metavar="OUT", help="write all results as JSON")
    parser.add_argument("--plot", metavar="OUT.png", help="write a plot of the results")
    parser.add_argument("--allow-missing", action="store_true",
                        help="a sequence without a result file counts as tracked with no boxes")


def run(args: argparse.Namespace) -> int:
    results = evaluate(args.gt, args.pred, benchmark=args.benchmark, seqmap=args.seqmap,
                       allow_missing=args.allow_missing)
    print(report.format_table(results, args.benchmark))
    if args.json:
        report.write_json(results, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        report.plot(results, args.benchmark, args.plot)
        print(f"wrote {args.plot}")
    return 0
