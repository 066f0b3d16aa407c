"""Epochs and wall time each optimizer in backprop.optim needs on two small tasks.

1. digits: the bundled 8x8 digits (already scaled to [0, 1] by load_digits), split 75/25 with
   train_test_split(seed=0); a 64-32-10 tanh network, cross-entropy, float32, seed 0. After
   every epoch the held-out accuracy (argmax of the outputs) is measured. Each optimizer trains
   for the whole budget (default 200 epochs; Levenberg-Marquardt 30, since one of its epochs
   solves a 2410 x 2410 system and takes seconds), so the table gives the first epoch at which
   held-out accuracy reached 0.95, the wall time to that epoch, the best accuracy and the
   accuracy after the last epoch. Levenberg-Marquardt only minimises squared errors, so it
   trains the same 64-32-10 tanh network with a softmax output and MSE on one-hot targets.
2. symmetry: 6-bit mirror symmetry (64 patterns, 8 symmetric); a 6-2-1 network with sigmoid
   hidden and output units, MSE, init "uniform" with init_scale 0.3, float64 -- the setup of
   tests/test_levenberg_marquardt.py -- trained full batch. Solved means every one of the 64
   patterns is on the right side of 0.5 (checked after each epoch, as that test does). Seeds
   0..4, budget 5000 epochs; the table gives the epochs per seed, how many seeds were solved,
   the median epochs (an unsolved seed counts as more than the budget) and the median seconds
   of the solved runs.

Epochs are not equal work: a mini-batch epoch is ceil(rows / batch_size) updates; an LBFGS
epoch is up to max_iter (default 20) quasi-Newton iterations, each with a line search; a
Levenberg-Marquardt epoch is one accepted damped Gauss-Newton step. The "updates" column gives
optimizer.steps at the target. LBFGS and Levenberg-Marquardt end fit themselves once they report
`converged`; such a run is marked "stopped". Times are wall-clock on one thread
(backprop.set_num_threads(1)) and include the per-epoch accuracy check; on a shared machine
they are indicative only.

Run from the repository root:

    python bench/optimizers.py                   # both tasks, the budgets above
    python bench/optimizers.py --task symmetry   # or --task digits
    python bench/optimizers.py --digits-epochs 50 --lm-digits-epochs 10 --seeds 3   # quicker
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import backprop as bp
from backprop import optim

DIGITS_TARGET = 0.95


@dataclass
class Contender:
    """One optimizer with its settings: make() builds a fresh instance for every run."""

    name: str
    make: Callable[[], optim.Optimizer]
    batch_size: Optional[int]  # None: the full batch

    def settings(self) -> str:
        text = repr(self.make())
        return text + ("  batch=full" if self.batch_size is None else f"  batch={self.batch_size}")


# Settings chosen up front from common defaults, not tuned per task beyond the learning rate
# scale: the symmetry net (mean squared error of one sigmoid output) has much smaller gradients
# than digits with cross-entropy, so the gradient-scaled rules get larger learning rates there.
DIGITS_CONTENDERS = [
    Contender("SGD-momentum", lambda: optim.SGD(lr=0.1, momentum=0.9), 32),
    Contender("SGD-nesterov", lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True), 32),
    Contender("Adam", lambda: optim.Adam(lr=1e-3), 32),
    Contender("AdamW", lambda: optim.AdamW(lr=1e-3, weight_decay=0.01), 32),
    Contender("RMSprop", lambda: optim.RMSprop(lr=1e-3), 32),
    Contender("Adagrad", lambda: optim.Adagrad(lr=0.05), 32),
    Contender("Rprop", lambda: optim.Rprop(), None),
    Contender("Quickprop", lambda: optim.Quickprop(lr=0.1), None),
    Contender("LBFGS", lambda: optim.LBFGS(), None),
    Contender("LevenbergMarquardt", lambda: optim.LevenbergMarquardt(), None),
]

SYMMETRY_CONTENDERS = [
    Contender("SGD-momentum", lambda: optim.SGD(lr=0.5, momentum=0.9), None),
    Contender("SGD-nesterov", lambda: optim.SGD(lr=0.5, momentum=0.9, nesterov=True), None),
    Contender("Adam", lambda: optim.Adam(lr=1e-2), None),
    Contender("AdamW", lambda: optim.AdamW(lr=1e-2, weight_decay=0.01), None),
    Contender("RMSprop", lambda: optim.RMSprop(lr=1e-2), None),
    Contender("Adagrad", lambda: optim.Adagrad(lr=0.1), None),
    Contender("Rprop", lambda: optim.Rprop(), None),
    Contender("Quickprop", lambda: optim.Quickprop(lr=0.5), None),
    Contender("LBFGS", lambda: optim.LBFGS(), None),
    Contender("LevenbergMarquardt", lambda: optim.LevenbergMarquardt(), None),
]


@dataclass
class Run:
    """What one training run measured."""

    epochs_run: int = 0
    seconds: float = 0.0
    target_epoch: Optional[int] = None  # first epoch (1-based) that met the target
    target_seconds: Optional[float] = None
    target_updates: Optional[int] = None
    accuracies: list[float] = field(default_factory=list)
    stopped: bool = False  # the optimizer reported converged before the budget ran out
    error: Optional[str] = None


def train(net: bp.Network, optimizer: optim.Optimizer, X: np.ndarray, y: np.ndarray,
          contender: Contender, epochs: int, check: Callable[[], tuple[bool, float]],
          stop_at_target: bool) -> Run:
    """fit for up to `epochs`, calling check() -> (target met, score) after every epoch."""
    run = Run()
    start = time.perf_counter()

    def after_epoch(epoch: int, logs: dict[str, float]) -> bool:
        met, score = check()
        run.accuracies.append(score)
        if met and run.target_epoch is None:
            run.target_epoch = epoch + 1
            run.target_seconds = time.perf_counter() - start
            run.target_updates = optimizer.steps
        return met and stop_at_target

    try:
        net.fit(X, y, optimizer=optimizer, epochs=epochs, batch_size=contender.batch_size,
                shuffle=True, seed=0, verbose=0, callbacks=[after_epoch])
    except Exception as error:  # reported in the table, not hidden
        run.error = f"{type(error).__name__}: {error}"
    run.seconds = time.perf_counter() - start
    run.epochs_run = len(run.accuracies)
    run.stopped = (run.error is None and run.epochs_run < epochs
                   and bool(getattr(optimizer, "converged", False)))
    return run


# -- digits --------------------------------------------------------------------------------------


def digits_run(contender: Contender, data: tuple[np.ndarray, ...], epochs: int) -> Run:
    X_train, X_test, y_train, y_test = data
    if isinstance(contender.make(), optim.LevenbergMarquardt):
        net = bp.Network([64, 32, 10], activation="tanh", output="softmax", loss="mse", seed=0)
        targets = np.eye(10)[y_train]
    else:
        net = bp.Network([64, 32, 10], activation="tanh", loss="cross_entropy", seed=0)
        targets = y_train

    def held_out_accuracy() -> tuple[bool, float]:
        accuracy = float(np.mean(net.forward(X_test).argmax(axis=1) == y_test))
        return accuracy >= DIGITS_TARGET, accuracy

    return train(net, contender.make(), X_train, targets, contender, epochs, held_out_accuracy,
                 stop_at_target=False)


def digits_table(epochs: int, lm_epochs: int) -> None:
    X, y = bp.datasets.load_digits()
    assert 0.0 <= X.min() and X.max() <= 1.0, "load_digits should return pixels scaled to [0, 1]"
    data = bp.datasets.train_test_split(X, y, test_size=0.25, seed=0)
    print(f"digits: {data[0].shape[0]} train / {data[1].shape[0]} held-out rows; 64-32-10 tanh, "
          f"cross-entropy, float32, seed 0; target held-out accuracy >= {DIGITS_TARGET}; "
          f"budget {epochs} epochs ({lm_epochs} for LevenbergMarquardt, which uses softmax + MSE)")
    header = (f"{'optimizer':<19} {'budget':>6} {'ep>=.95':>7} {'updates':>7} {'s>=.95':>7} "
              f"{'best acc':>8} {'final acc':>9} {'s total':>8} {'s/epoch':>8}")
    print(header)
    print("-" * len(header))
    for contender in DIGITS_CONTENDERS:
        budget = lm_epochs if isinstance(contender.make(), optim.LevenbergMarquardt) else epochs
        run = digits_run(contender, data, budget)
        reached = run.target_epoch is not None
        best = max(run.accuracies, default=math.nan)
        final = run.accuracies[-1] if run.accuracies else math.nan
        per_epoch = run.seconds / run.epochs_run if run.epochs_run else math.nan
        note = ""
        if run.stopped:
            note = f"  stopped (converged) after {run.epochs_run} epochs"
        if run.error:
            note = f"  ERROR after {run.epochs_run} epochs: {run.error}"
        print(f"{contender.name:<19} {budget:>6} "
              f"{run.target_epoch if reached else 'never':>7} "
              f"{run.target_updates if reached else '-':>7} "
              f"{f'{run.target_seconds:.2f}' if reached else '-':>7} "
              f"{best:>8.4f} {final:>9.4f} {run.seconds:>8.2f} {per_epoch:>8.4f}{note}",
              flush=True)
    print()
    print("settings:")
    for contender in DIGITS_CONTENDERS:
        print(f"  {contender.name:<19} {contender.settings()}")
    print()


# -- mirror symmetry -----------------------------------------------------------------------------


def symmetry_run(contender: Contender, seed: int, epochs: int) -> Run:
    X, y = bp.datasets.symmetry(6)
    net = bp.Network([6, 2, 1], activation="sigmoid", output="sigmoid", loss="mse",
                     init="uniform", init_scale=0.3, dtype="float64", seed=seed)
    labels = y.astype(int)

    def all_right() -> tuple[bool, float]:
        predicted = (net.forward(X) > 0.5).astype(int)
        return bool(np.array_equal(predicted, labels)), float(np.mean(predicted == labels))

    return train(net, contender.make(), X, y, contender, epochs, all_right, stop_at_target=True)


def symmetry_table(epochs: int, seeds: int) -> None:
    print(f"symmetry(6): 64 patterns; 6-2-1 sigmoid/sigmoid, MSE, init uniform(0.3), float64, "
          f"full batch; solved = all 64 right (output > 0.5); seeds 0..{seeds - 1}; "
          f"budget {epochs} epochs")
    header = (f"{'optimizer':<19} {'solved':>6} {'median ep':>9} {'median s':>8} "
              f"{'ms/epoch':>8}  epochs per seed (x = unsolved; c = stopped, converged)")
    print(header)
    print("-" * len(header))
    for contender in SYMMETRY_CONTENDERS:
        runs = [symmetry_run(contender, seed, epochs) for seed in range(seeds)]
        cells, counts, times, errors = [], [], [], []
        for run in runs:
            if run.target_epoch is not None:
                cells.append(str(run.target_epoch))
                counts.append(float(run.target_epoch))
                times.append(run.target_seconds or 0.0)
            else:
                best = max(run.accuracies, default=math.nan)
                mark = "c" if run.stopped else "x"
                cells.append(f"{mark}{run.epochs_run}({best * 64:.0f}/64)")
                counts.append(math.inf)
            if run.error:
                errors.append(run.error)
        median = statistics.median(counts)
        median_text = f">{epochs}" if math.isinf(median) else f"{median:g}"
        seconds_text = f"{statistics.median(times):.3f}" if times else "-"
        total_epochs = sum(run.epochs_run for run in runs)
        ms_per_epoch = 1000 * sum(run.seconds for run in runs) / max(total_epochs, 1)
        print(f"{contender.name:<19} {len(times)}/{seeds:<4} {median_text:>9} {seconds_text:>8} "
              f"{ms_per_epoch:>8.3f}  {' '.join(cells)}", flush=True)
        for error in sorted(set(errors)):
            print(f"  ERROR: {error}")
    print()
    print("settings:")
    for contender in SYMMETRY_CONTENDERS:
        print(f"  {contender.name:<19} {contender.settings()}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("both", "digits", "symmetry"), default="both")
    parser.add_argument("--digits-epochs", type=int, default=200)
    parser.add_argument("--lm-digits-epochs", type=int, default=30)
    parser.add_argument("--symmetry-epochs", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()

    bp.set_num_threads(1)
    # One throwaway epoch, so no timed run pays for first-call costs.
    warm = bp.Network([64, 32, 10], activation="tanh", seed=0)
    warm.fit(np.zeros((64, 64)), np.zeros(64, dtype=np.int64), epochs=1, verbose=0)

    print(f"backprop {bp.__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
          f"{bp.get_num_threads()} thread, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print()
    started = time.perf_counter()
    if args.task in ("both", "digits"):
        digits_table(args.digits_epochs, args.lm_digits_epochs)
    if args.task in ("both", "symmetry"):
        symmetry_table(args.symmetry_epochs, args.seeds)
    print(f"total {time.perf_counter() - started:.1f} s; load average "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
