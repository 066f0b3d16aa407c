"""backprop.kernels.gemm against NumPy's matmul (its BLAS), shape by shape, side by side.

Each contender times every shape in a fresh process of its own (this script with --worker), the
rounds alternate (ours, NumPy, NumPy, ours, ...), and the table gives the median GFLOP/s of the
rounds with their spread and our ratio to NumPy taken round by round (shared/BENCH.md).

    python bench/gemm_peers.py                     # float32 and float64, all cores, 3 rounds
    python bench/gemm_peers.py --threads 1 --dtype float32
    python bench/gemm_peers.py --full              # adds 2048^3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SQUARES = (64, 128, 256, 512, 1024)
# (batch, layer sizes) of the networks in bench/peers.py
NETWORKS = {
    "tiny": (32, (784, 128, 10)),
    "mnist": (128, (784, 512, 512, 10)),
    "deep": (64, (256,) * 9 + (10,)),
    "wide": (256, (1024, 4096, 4096, 1024)),
}


def shapes(full: bool) -> list[tuple[str, int, int, int, str]]:
    """(label, m, n, k, op): squares, then every GEMM a training step of each network makes."""
    found = [(f"square {s}", s, s, s, "NN") for s in SQUARES + ((2048,) if full else ())]
    seen = {(s, s, s, "NN") for s in SQUARES}
    for name, (batch, sizes) in NETWORKS.items():
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            steps = [("X@W", batch, fan_out, fan_in, "NN"), ("Xt@D", fan_in, fan_out, batch, "TN")]
            if layer > 1:  # the first layer needs no gradient for its input
                steps.append(("D@Wt", batch, fan_in, fan_out, "NT"))
            for what, m, n, k, op in steps:
                if (m, n, k, op) not in seen:
                    seen.add((m, n, k, op))
                    found.append((f"{name} L{layer} {what}", m, n, k, op))
    return found


def limit_threads(threads: int) -> None:
    """Before NumPy loads: its BLAS reads these once."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # old-OpenBLAS settings, see BENCH.md
        os.environ.pop(name, None)


def worker(contender: str, dtype_name: str, full: bool, min_time: float) -> None:
    import numpy as np

    if contender == "backprop":
        import backprop

        backprop.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(0)
    results = {}
    for label, m, n, k, op in shapes(full):
        a = rng.uniform(-1, 1, (k, m) if op[0] == "T" else (m, k)).astype(dtype)
        b = rng.uniform(-1, 1, (n, k) if op[1] == "T" else (k, n)).astype(dtype)
        c = np.empty((m, n), dtype)
        if contender == "backprop":
            trans_a, trans_b = op[0] == "T", op[1] == "T"

            def call() -> None:
                backprop.kernels.gemm(a, b, trans_a=trans_a, trans_b=trans_b, out=c)
        else:
            left, right = (a.T if op[0] == "T" else a), (b.T if op[1] == "T" else b)

            def call() -> None:
                np.matmul(left, right, out=c)
        call()  # warm-up: page in the operands, start the thread pool
        calls, start = 0, time.perf_counter()
        while True:
            call()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        results[label] = 2.0 * m * n * k * calls / elapsed / 1e9
    pauses = None
    if contender == "backprop":  # (a build before the rule has no count)
        pauses = getattr(backprop._core, "late_thread_pauses", None)
    if pauses is not None:
        # Each pause ran the calls after it on one thread (another process held a core).
        results["late_thread_pauses"] = pauses()
    print(json.dumps(results))


def run_worker(contender: str, dtype: str, threads: int, full: bool, min_time: float) -> dict:
    env = dict(os.environ)
    command = [sys.executable, __file__, "--worker", contender, "--dtype", dtype,
               "--threads", str(threads), "--min-time", str(min_time)] + (["--full"] if full else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(dtype: str, threads: int, rounds: list[dict[str, dict]], full: bool) -> None:
    print(f"\n{dtype}, {threads} thread(s), {len(rounds)} rounds: GFLOP/s median [min - max]; "
          f"ours/NumPy = median of the per-round ratios")
    print(f"  {'shape':<18} {'m':>5} {'n':>5} {'k':>5} op {'NumPy':>24} {'backprop':>24} {'ours/NumPy':>10}")
    ratios = []
    for label, m, n, k, op in shapes(full):
        theirs = [r["numpy"][label] for r in rounds]
        ours = [r["backprop"][label] for r in rounds]
        ratio = statistics.median(o / t for o, t in zip(ours, theirs))
        ratios.append(ratio)

        def cell(values: list[float]) -> str:
            return f"{statistics.median(values):7.1f} [{min(values):6.1f} - {max(values):6.1f}]"
        print(f"  {label:<18} {m:5d} {n:5d} {k:5d} {op} {cell(theirs):>24} {cell(ours):>24} {ratio:9.2f}x")
    print(f"  shapes at or above 0.95x: {sum(r >= 0.95 for r in ratios)} of {len(ratios)}; "
          f"lowest {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x")
    pauses = [str(int(r["backprop"]["late_thread_pauses"])) if "late_thread_pauses" in r["backprop"]
              else "n/a" for r in rounds]
    print(f"  backprop's late-thread pauses (each ran the next calls on one thread: another "
          f"process held a core), per round: {', '.join(pauses)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per shape per run")
    parser.add_argument("--full", action="store_true", help="add 2048^3")
    parser.add_argument("--worker", choices=("backprop", "numpy"), default=None,
                        help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.threads < 1 or options.rounds < 1:
        parser.error("--threads and --rounds must be at least 1")
    limit_threads(options.threads)
    if options.worker:
        worker(options.worker, options.dtype, options.full, options.min_time)
        return
    print(f"load average before: {os.getloadavg()}")
    for dtype in (("float32", "float64") if options.dtype == "both" else (options.dtype,)):
        rounds = []
        for index in range(options.rounds):
            order = ("backprop", "numpy") if index % 2 == 0 else ("numpy", "backprop")
            rounds.append({name: run_worker(name, dtype, options.threads, options.full,
                                            options.min_time) for name in order})
        report(dtype, options.threads, rounds, options.full)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
