"""``qem`` (models/cli.py): one command line that lists its commands and hands each to its module."""
import pytest

from models import cli
from tests.cli import run_module


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: qem COMMAND")
    for name, (_, text) in cli.COMMANDS.items():
        assert f"  {name} " in out and text in out


def test_no_arguments_prints_the_help(capsys):
    assert cli.main([]) == 0
    assert "commands:" in capsys.readouterr().out


def test_unknown_command_exits_2_with_one_error_line():
    proc = run_module("models", "frobnicate")  # a real process: the exit code and stderr a user sees
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown command 'frobnicate'"), proc.stderr
    assert "predict" in lines[0] and "qem --help" in lines[0]


def test_version_answers_installed_or_not(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("qem-pose")


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_each_command_help_names_itself(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: qem {command} ")


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_each_command_refuses_a_bad_flag_in_one_line(command, capsys):
    """A usage error is one ``error:`` line naming the problem (the flag, or the arguments that must come first) and
    pointing to --help, not argparse's usage block."""
    argv = [command, "--no-such-flag"] if command != "import" else [command, "dekr", "--no-such-flag"]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and lines[0].endswith("(see --help)")
    assert "--no-such-flag" in lines[0] or "the following arguments are required" in lines[0]


def test_val_without_data_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["val", "--checkpoint", "nope.pt"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == ("error: give --data DIR (a synth folder) or both --ann FILE and --images DIR "
                                       "(see --help)\n")
