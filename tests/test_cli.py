import subprocess
import sys

import pytest

from trackformers.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frobnicate" in err[0]


@pytest.mark.parametrize("argv, needle", [
    (["synth", "--preset", "nope", "--out", "x"], "--preset"),
    (["eval", "--gt", "x"], "--pred"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and f"trackformers {argv[0]} --help" in err[0]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_explains_itself(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith(f"usage: trackformers {name}") and "options:" in out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "trackformers.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == __import__("trackformers").__version__
