"""The command line, run as a user would: `python -m backprop ...` in a subprocess."""

import os
import re
import shutil
import statistics
import subprocess
import sys

import pytest


def run(*args, timeout=120):
    # From a neutral folder, so the installed package is what runs.
    return subprocess.run([sys.executable, "-m", "backprop", *args], capture_output=True, text=True,
                          timeout=timeout, cwd="/")


def test_demo_runs_and_reports_the_held_out_accuracy():
    result = run("demo", "--epochs", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy" in result.stdout
    assert "after 3 epochs" in result.stdout
    assert "Traceback" not in result.stderr
    accuracy = float(result.stdout.split("held-out accuracy:")[1].split()[0])
    assert 0.5 < accuracy <= 1.0


@pytest.mark.parametrize("args, names", [
    ((), ["demo", "bench"]),
    (("demo",), ["--hidden", "--epochs", "--batch-size", "--lr", "--seed", "--threads", "--quiet"]),
    (("bench",), ["backprop-bench", "--"]),
], ids=["main", "demo", "bench"])
def test_help(args, names):
    result = run(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: backprop")
    for name in names:
        assert name in result.stdout
    assert result.stderr == ""


BAD_COMMAND_LINES = [
    (("demo", "--epochs", "0"), r"--epochs"),
    (("demo", "--hidden", "x"), r"--hidden"),
    (("demo", "--lr", "-1"), r"--lr"),
    (("frobnicate",), r"invalid choice: 'frobnicate'"),
    ((), r"required"),
]
BAD_IDS = ["epochs-0", "hidden-x", "lr-negative", "unknown-subcommand", "no-subcommand"]


@pytest.mark.parametrize("args, named", BAD_COMMAND_LINES, ids=BAD_IDS)
def test_bad_command_line_fails_cleanly(args, named):
    result = run(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    # The error itself is one line, naming what was wrong.
    assert lines[-1].startswith("backprop"), lines[-1]
    assert "error:" in lines[-1]
    assert named in lines[-1]


@pytest.mark.parametrize("args, named", [
    (["demo", "--epochs", "many"], "--epochs"),
    (["demo", "--hidden", "64,0"], "--hidden"),
    (["demo", "--batch-size", "-3"], "--batch-size"),
    (["demo", "--lr", "inf"], "--lr"),
    (["demo", "--threads", "0"], "--threads"),
    (["demo", "--seed", "one"], "--seed"),
], ids=["epochs-word", "hidden-zero", "batch-size-negative", "lr-inf", "threads-0", "seed-word"])
def test_more_bad_options_in_process(args, named, capsys):
    # The same parser in this process (quicker than a subprocess per case).
    from backprop.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("backprop demo: error: argument " + named), last


@pytest.mark.parametrize("args", [["demo", "--epochs", "0"], ["demo", "--hidden", "x"], ["frobnicate"]],
                         ids=["epochs-0", "hidden-x", "unknown-subcommand"])
def test_bad_command_line_is_one_line_on_stderr(args, capsys):
    from backprop.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _bench_executable():
    beside_python = os.path.join(os.path.dirname(sys.executable), "backprop-bench")
    if os.path.isfile(beside_python) and os.access(beside_python, os.X_OK):
        return beside_python
    return shutil.which("backprop-bench")


def test_bench_quick():
    executable = _bench_executable()
    if executable is None:
        why = (f"backprop-bench is neither next to {sys.executable} nor on PATH; it is installed "
               "with the package by `pip install .`")
        print(why)
        pytest.skip(why)
    result = run("bench", "--", "--quick", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "GFLOP/s" in result.stdout
    assert "Traceback" not in result.stderr
    _check_paired_peak_report(result.stdout)


def _check_paired_peak_report(text):
    # The 1024^3 rounds beside the peak loop: each round's %peak is its gemm over its peak, and
    # the summary is the median of the rounds, with their range, leaving out the rounds marked *
    # (a late-thread pause ran the product on one thread part of the time) unless all are.
    rounds_line = re.search(r"peak / gemm / %peak:((?: [0-9.]+/[0-9.]+/[0-9.]+%\*?)+)\n", text)
    assert rounds_line, text
    items = rounds_line.group(1).split()
    assert len(items) == 3  # --quick
    rounds = [(tuple(float(v) for v in item.rstrip("*%").split("/")), item.endswith("*"))
              for item in items]
    for (peak, gemm, percent), _ in rounds:
        assert peak > 0 and gemm > 0
        # Each value is printed to 0.1, so the ratio of the printed two is only known within the
        # ratio of their rounding intervals: wide when a slow (sanitized) build prints small values.
        lowest = 100 * (gemm - 0.05) / (peak + 0.05) - 0.05
        highest = 100 * (gemm + 0.05) / max(peak - 0.05, 1e-9) + 0.05
        assert lowest - 1e-9 <= percent <= highest + 1e-9, (peak, gemm, percent)
    percents = sorted(p for (_, _, p), paused in rounds if not paused)
    if not percents:
        percents = sorted(p for (_, _, p), _ in rounds)
    summary = re.search(r"1024\^3 float32 at ([0-9.]+)% of the FMA peak beside it \(median of "
                        r"([0-9]+) rounds; ([0-9.]+)% - ([0-9.]+)%\)", text)
    assert summary, text
    median, low, high = (float(summary.group(i)) for i in (1, 3, 4))
    assert int(summary.group(2)) == len(percents)
    assert median == pytest.approx(statistics.median(percents), abs=0.11)
    assert low == pytest.approx(percents[0], abs=0.11)
    assert high == pytest.approx(percents[-1], abs=0.11)


def test_bench_passes_a_bad_option_on_and_fails_cleanly():
    if _bench_executable() is None:
        pytest.skip("backprop-bench not installed next to the interpreter or on PATH")
    result = run("bench", "--", "--no-such-option")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--no-such-option" in result.stderr
