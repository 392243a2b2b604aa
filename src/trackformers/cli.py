"""The `trackformers` command line.

Each subcommand lives in the module that does its work; that module exposes
`add_arguments(parser)` and `run(args) -> int | None`. Only the chosen command's module is
imported, so `trackformers eval` starts without importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from trackformers.config import ConfigError

# name -> (module, one-line help)
COMMANDS = {
    "demo": ("trackformers.engine.demo", "generate a synthetic video, track it with a built-in model, print metrics"),
    "track": ("trackformers.engine.track", "track a video, image folder, webcam or MOT sequence/split; write MOT results"),
    "train": ("trackformers.engine.train", "train a detector or tracker from a YAML config"),
    "eval": ("trackformers.eval.cli", "evaluate MOT result files (HOTA, CLEAR, Identity) exactly as TrackEval"),
    "synth": ("trackformers.data.synthetic", "write a synthetic MOT benchmark in the DanceTrack layout"),
    "convert": ("trackformers.convert.cli", "convert an official checkpoint (.pth) to a trackformers one"),
    "bench": ("trackformers.engine.bench", "run the built-in speed / accuracy benchmarks"),
    "tune": ("trackformers.engine.tune", "choose a model's thresholds on validation data; export the tuned model"),
}


class _HelpFormatter(argparse.HelpFormatter):
    """Append '(default: X)' to an option's help when X says something and the help doesn't."""

    def _get_help_string(self, action):
        help_ = action.help or ""
        default = action.default
        if ("default" in help_ or default is None or default is False or default in ([], "")
                or default is argparse.SUPPRESS
                or not action.option_strings):
            return help_
        return f"{help_} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line naming the problem, and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """Bad command-line usage: reported as one line, exit code 2."""


def _parser_for(name: str, prog: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[name][0])
    parser = _Parser(
        prog=f"{prog} {name}",
        description=(module.__doc__ or COMMANDS[name][1]).strip().splitlines()[0],
        formatter_class=_HelpFormatter,
    )
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def _top_help(prog: str) -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {prog} COMMAND [options]   ({prog} COMMAND --help for a command's options)", "",
             "End-to-end multi-object tracking with transformers.", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _one_line(e: BaseException) -> str:
    """An error as one line: its first line (an OSError without a file name gets its class)."""
    text = str(e).strip() or e.__class__.__name__
    return text.splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = "trackformers"
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help(prog))
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from trackformers import __version__
        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"{prog}: error: unknown command {name!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    parser = _parser_for(name, prog)
    args = parser.parse_args(argv[1:])  # argparse prints one line and exits 2 on bad usage
    try:
        return int(args._run(args) or 0)
    except (UsageError, ConfigError) as e:
        print(f"{prog} {name}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        # Data errors (missing files, malformed rows) and a full or read-only disk are one
        # clear line, not a traceback.
        print(f"{prog} {name}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog} {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
