"""Thread count control, and determinism: any number of threads gives bit-identical results."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import backprop as bp
from conftest import ALWAYS_IN_BURST_NS


def test_set_and_get_num_threads(threads):
    threads(1)
    assert bp.get_num_threads() == 1
    threads(2)
    assert bp.get_num_threads() == 2
    threads(np.int64(3))
    assert bp.get_num_threads() == 3
    assert isinstance(bp.get_num_threads(), int)


@pytest.mark.parametrize("value, error, pattern", [
    (0, ValueError, r"n must be at least 1; got 0"),
    (-1, ValueError, r"n must be at least 1; got -1"),
    (1.5, TypeError, r"n must be an int; got float"),
    ("2", TypeError, r"n must be an int; got str"),
    (None, TypeError, r"n must be an int; got NoneType"),
])
def test_set_num_threads_rejects_bad_values(threads, value, error, pattern):
    threads(2)
    with pytest.raises(error, match=pattern):
        bp.set_num_threads(value)
    assert bp.get_num_threads() == 2


def test_the_count_is_process_wide(threads):
    threads(1)
    worker = threading.Thread(target=bp.set_num_threads, args=(2,))
    worker.start()
    worker.join()
    assert bp.get_num_threads() == 2
    seen = []
    reader = threading.Thread(target=lambda: seen.append(bp.get_num_threads()))
    reader.start()
    reader.join()
    assert seen == [2]


@pytest.mark.parametrize("count", ["1", "2"])
def test_omp_num_threads_sets_the_default(count, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS=count)
    result = subprocess.run([sys.executable, "-c", "import backprop; print(backprop.get_num_threads())"],
                            env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == count


# -- how many threads a GEMM takes ------------------------------------------------------------

# config.hpp: one thread below 2^17 float multiply-adds (2^16 double), all threads from 2^20
# (2^19), and in between only in a burst of calls (call_burst.hpp). A pause of 0 keeps a split
# that a loaded machine happens to slow down from pausing burst splits here.
@pytest.mark.parametrize("double_precision", [False, True], ids=["float32", "float64"])
def test_gemm_thread_count_follows_size_and_bursts(threads, call_burst, double_precision):
    scale = 2 if double_precision else 1  # a double product counts as twice the float one
    small, between, large = (2 ** 17 - 1) // scale, 2 ** 17 // scale, 2 ** 20 // scale
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, double_precision)
    threads(2)
    call_burst(window_ns=0, pause_ns=0)
    assert [count(small), count(between), count(between), count(large)] == [1, 1, 1, 2]
    call_burst(window_ns=ALWAYS_IN_BURST_NS)  # forgets the calls so far
    assert [count(between), count(between), count(small), count(large)] == [1, 2, 1, 2]
    assert bp._core.gemm_thread_count(8, 16, between // 128, double_precision) == 2
    threads(1)
    assert [count(small), count(between), count(large)] == [1, 1, 1]


def test_a_burst_is_a_call_soon_after_the_one_before(threads, call_burst):
    threads(2)
    call_burst(window_ns=10 ** 9, pause_ns=0)  # 1 s
    between = 2 ** 17
    assert bp._core.gemm_thread_count(1, 1, between, False) == 1  # the first call
    assert bp._core.gemm_thread_count(1, 1, between, False) == 2
    time.sleep(1.1)
    assert bp._core.gemm_thread_count(1, 1, between, False) == 1
    assert bp._core.gemm_thread_count(1, 1, between, False) == 2


def test_a_gemm_goes_on_record_for_the_burst_rule(threads, call_burst):
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, pause_ns=0)
    A, B = np.ones((64, 64), np.float32), np.ones((64, 32), np.float32)  # 2^17 multiply-adds
    bp.kernels.gemm(A, B)
    assert bp._core.gemm_thread_count(64, 32, 64, False) == 2
    call_burst()  # forgets the GEMM: a product too small for the rule does not go on record
    bp.kernels.gemm(A[:, :63], B[:63])
    assert bp._core.gemm_thread_count(64, 32, 64, False) == 1


def test_a_slow_burst_split_pauses_burst_splits(threads, call_burst):
    # A slow limit of 0 makes every burst split slow; the pause then outlasts the test.
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, slow_split_ns=0, pause_ns=ALWAYS_IN_BURST_NS)
    A, B = np.ones((64, 64), np.float32), np.ones((64, 32), np.float32)  # 2^17 multiply-adds
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, False)
    # The first call runs on one thread (no burst yet) and pauses nothing; the second splits
    # for its burst and is slow.
    assert [count(2 ** 17), count(2 ** 17)] == [1, 2]
    assert [count(2 ** 17), count(2 ** 20)] == [1, 2]  # burst splits pause, larger ones do not
    call_burst(slow_split_ns=10 ** 9)  # forgets the slow split; 1 s is slow
    bp.kernels.gemm(A, B)
    bp.kernels.gemm(A, B)  # a burst split, not slow
    assert count(2 ** 17) == 2
    call_burst(slow_split_ns=1)  # a real product takes longer than 1 ns
    bp.kernels.gemm(A, B)
    bp.kernels.gemm(A, B)  # a burst split, slow
    assert count(2 ** 17) == 1
    call_burst(slow_split_ns=0, pause_ns=0)  # no pause
    assert [count(2 ** 17), count(2 ** 17), count(2 ** 17)] == [1, 2, 2]


@pytest.mark.parametrize("gemm_isa", ["generic"], indirect=True)
def test_the_portable_kernel_has_a_longer_slow_limit(threads, call_burst, gemm_isa):
    # 127 x 64 x 128 is just under 2^20 multiply-adds. With a slow limit of an eighth of its
    # time on one thread, the product split in two is slow for that limit and not for the 24
    # times longer one the portable kernel gets. A call stalled past that (a loaded machine)
    # proves nothing, so it is tried again.
    A, B = np.ones((127, 128), np.float32), np.ones((128, 64), np.float32)
    threads(1)
    alone = []
    for _ in range(3):
        start = time.perf_counter()
        bp.kernels.gemm(A, B)
        alone.append(time.perf_counter() - start)
    limit = min(alone) / 8
    threads(2)
    took = []
    for _ in range(5):
        call_burst(window_ns=ALWAYS_IN_BURST_NS, slow_split_ns=int(limit * 1e9),
                   pause_ns=ALWAYS_IN_BURST_NS)
        bp.kernels.gemm(A, B)
        start = time.perf_counter()
        bp.kernels.gemm(A, B)  # a burst split
        took.append(time.perf_counter() - start)
        if took[-1] < 24 * limit:
            assert bp._core.gemm_thread_count(127, 64, 128, False) == 2
            return
    pytest.fail(f"every try took 24 x {limit} s or more: {took}")


def test_a_split_gemm_goes_on_record_as_it_ends(threads, call_burst):
    # A window shorter than a large product: the product's start lies outside it, its end not.
    threads(2)
    A = np.ones((1024, 2048), np.float32)
    B = np.ones((2048, 1024), np.float32)
    bp.kernels.gemm(A, B)  # grows the packing buffers and starts the threads
    start = time.perf_counter()
    bp.kernels.gemm(A, B)
    took = time.perf_counter() - start
    call_burst(window_ns=int(took / 3 * 1e9), pause_ns=0)
    start = time.perf_counter()
    bp.kernels.gemm(A, B)
    if time.perf_counter() - start > took / 3:  # it outlasted the window (unless much faster)
        assert bp._core.gemm_thread_count(64, 32, 64, False) == 2


def test_the_burst_rule_rejects_negative_times(call_burst):
    for name in ("window_ns", "slow_split_ns", "pause_ns"):
        with pytest.raises(ValueError, match="every burst time must be a non-negative number of "
                                             "nanoseconds"):
            call_burst(**{name: -1})


# -- determinism -------------------------------------------------------------------------------------


def _digits_run(dtype, n_threads, threads):
    threads(n_threads)
    X, y = bp.datasets.load_digits(dtype=dtype)
    net = bp.Network([64, 128, 64, 10], activation="relu", dtype=dtype, seed=0)
    history = net.fit(X, y, optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=3, batch_size=32,
                      verbose=0)
    return net.params.tobytes(), history.history


def test_fit_is_bit_identical_for_1_and_2_threads(dtype, threads):
    one, history_one = _digits_run(dtype, 1, threads)
    two, history_two = _digits_run(dtype, 2, threads)
    assert one == two
    assert history_one == history_two


@pytest.mark.parametrize("rows", [512, 37])
def test_wide_loss_and_grad_is_bit_identical_for_any_thread_count(dtype, threads, rows):
    # 512 rows of 64-300-300-10 is well above the GEMM's parallel threshold; 37 rows is an
    # awkward size near it.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 64))
    y = rng.integers(0, 10, rows)
    net = bp.Network([64, 300, 300, 10], activation="tanh", dtype=dtype, seed=1)
    results = {}
    for n in (1, 2, 3):
        threads(n)
        loss, grads = net.loss_and_grad(X, y)
        results[n] = (loss, grads.tobytes(), net.forward(X).tobytes())
    assert results[1] == results[2] == results[3]


def test_train_step_is_bit_identical_for_1_and_2_threads(dtype, threads):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((512, 64))
    y = rng.integers(0, 10, 512)
    params = {}
    for n in (1, 2):
        threads(n)
        net = bp.Network([64, 300, 300, 10], activation="relu", dtype=dtype, seed=2)
        opt = bp.optim.SGD(lr=0.01, momentum=0.9)
        for _ in range(2):
            net.train_step(X, y, opt)
        params[n] = net.params.tobytes()
    assert params[1] == params[2]


@pytest.mark.parametrize("given, expected", [
    ({}, "10000"),
    ({"GOMP_SPINCOUNT": "5"}, "5"),
    ({"OMP_WAIT_POLICY": "active"}, None),
])
def test_openmp_spin_is_bounded_unless_the_user_chose(given, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(given)
    code = "import os, backprop; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd="/")
    assert out.stdout.strip() == str(expected)
