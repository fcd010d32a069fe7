"""The command line contract: help everywhere, one-line errors, exit code 2 for user errors."""
import subprocess
import sys

import pytest

from rnnkit.cli import build_parser, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    assert "demo" in out.stdout


def test_unknown_flag_is_one_line_exit_2():
    out = run_cli("--no-such-flag")
    assert out.returncode == 2
    assert out.stderr.strip().startswith("rnnkit: error:")
    assert "Traceback" not in out.stderr


def test_no_command_prints_help_exit_2(capsys):
    assert main([]) == 2


@pytest.mark.parametrize("command", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_every_command_has_help(command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0


def test_user_error_is_one_line(tmp_path, capsys):
    from rnnkit import load
    from rnnkit.errors import UserError

    with pytest.raises(UserError, match="not an rnnkit model folder"):
        load(str(tmp_path))
