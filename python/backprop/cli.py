"""The `backprop` command (also `python -m backprop`): demo and bench."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
from typing import NoReturn, Optional, Sequence


class _UsageError(Exception):
    """Bad input from the command line: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input on one line (no usage block) and points at --help."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 128,64; got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 128,64; got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="backprop", description="Train fully connected networks by backpropagation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,bench}",
                                     parser_class=_Parser)

    demo = commands.add_parser("demo", help="train on the bundled digits and report held-out accuracy",
                               description="Train a network on the bundled handwritten digits "
                                           "(UCI, CC BY 4.0) and print the held-out accuracy.")
    demo.add_argument("--hidden", type=_hidden_sizes, default=(128,), help="hidden layer sizes, e.g. 128,64 (default 128)")
    demo.add_argument("--epochs", type=_positive_int, default=40, help="passes over the data (default 40)")
    demo.add_argument("--batch-size", type=_positive_int, default=32, help="samples per step (default 32)")
    demo.add_argument("--lr", type=_positive_float, default=0.05, help="SGD learning rate (default 0.05)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the weights, split and shuffles (default 0)")
    demo.add_argument("--threads", type=_positive_int, default=None, help="native threads (default: OMP_NUM_THREADS or all cores)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar, only the result")

    bench = commands.add_parser("bench", help="run the native benchmark (backprop-bench)",
                                description="Run backprop-bench: GEMM GFLOP/s against the FMA peak "
                                            "and training samples/s. Arguments after -- go to it.")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for backprop-bench (try -- --help)")
    return parser


def _bench_executable() -> str:
    name = "backprop-bench"
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    for candidate in (beside_python, os.path.join(sysconfig.get_path("scripts"), name), shutil.which(name)):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise _UsageError("backprop-bench was not found; it is installed with the package by `pip install .`")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo
            from .threads import set_num_threads

            if args.threads is not None:
                set_num_threads(args.threads)
            accuracy = run_demo(hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size,
                                lr=args.lr, seed=args.seed, verbose=0 if args.quiet else 1)
            return 0 if accuracy == accuracy else 1
        if args.command == "bench":
            extra = [a for a in args.args if a != "--"]
            return subprocess.call([_bench_executable(), *extra])
    except (_UsageError, ValueError, TypeError, OSError, FloatingPointError) as error:
        print(f"backprop {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"backprop {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
