"""Command line: the main job's summary table and argument errors."""

import subprocess
import sys

from sobolev_warmstart.cli import main


def test_solve_prints_a_summary(capsys):
    assert main(["solve", "--task", "pendulum", "-n", "3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "converged" in out and "iterations" in out and "pendulum/default" in out


def test_unknown_variant_is_a_clear_error(capsys):
    assert main(["solve", "--task", "ur5", "--variant", "sideways", "-n", "1"]) == 2
    assert "variant: unknown variant 'sideways'" in capsys.readouterr().err


def test_entry_point_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "sobolev_warmstart.cli", "tasks"], capture_output=True, text=True, check=True)
    assert "quadrotor: columns_0" in out.stdout
