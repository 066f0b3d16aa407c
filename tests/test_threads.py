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


# OpenMP may start fewer threads than a region asks for (here OMP_THREAD_LIMIT=1 against a
# count of 2). Every split must then do all of the work with the threads it got: a product by k
# blocks (tiny's first layer), slabs of C and shared blocks (on the portable path: the AVX-512
# one keeps to slabs), and training steps (one with 256-deep layers in two k blocks each).
_FEWER_THREADS_SCRIPT = '''
import numpy as np, backprop as bp
rng = np.random.default_rng(0)
X, W = rng.uniform(-1, 1, (32, 784)), rng.uniform(-1, 1, (784, 128))
b = rng.uniform(-1, 1, 128)
A, B = rng.uniform(-1, 1, (300, 900)), rng.uniform(-1, 1, (900, 530))
Xs, ys = rng.standard_normal((64, 784)), rng.integers(0, 10, 64)
Xd = rng.standard_normal((128, 256))
def shared_blocks():
    bp.kernels.set_gemm_isa("generic")
    try:
        return bp.kernels.gemm(A, B).tobytes()
    finally:
        bp.kernels.set_gemm_isa("auto")
def run():
    net = bp.Network([784, 128, 10], dtype="float64", seed=0)
    net.fit(Xs, ys, optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=1, batch_size=32,
            verbose=0)
    deep = bp.Network([256, 256, 256, 10], dtype="float64", seed=0)
    deep.fit(Xd, np.resize(ys, 128), optimizer=bp.optim.SGD(lr=0.05, momentum=0.9), epochs=1,
             batch_size=64, verbose=0)
    return (bp.kernels.dense_forward(X, W, b, "relu", split="k_blocks")[1].tobytes(),
            bp.kernels.gemm(A[:100], B).tobytes(), bp.kernels.gemm(A, B).tobytes(),
            shared_blocks(), net.params.tobytes(), deep.params.tobytes())
bp.set_num_threads(1)
one = run()
bp.set_num_threads(2)
two = run()
print([first == second for first, second in zip(one, two)])
'''


def test_splits_do_all_the_work_when_openmp_starts_fewer_threads(tmp_path):
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    result = subprocess.run([sys.executable, "-c", _FEWER_THREADS_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, True, True, True, True, True]"


# -- how many threads a GEMM takes ------------------------------------------------------------

def _burst_min(double_precision=False):
    """The fewest multiply-adds that split in a burst on the active GEMM path."""
    return bp._core.gemm_burst_min_flops(double_precision)


# config.hpp: one thread below the burst threshold (2^17 float multiply-adds, 2^16 double, on
# the AVX2 and generic paths; twice that on the AVX-512 one), all threads from 2^20 (2^19), and
# in between only in a burst of calls (call_burst.hpp). Tests run with a pause of 0
# (conftest.py), so a split that a loaded machine happens to delay pauses nothing here.
@pytest.mark.parametrize("double_precision", [False, True], ids=["float32", "float64"])
def test_gemm_thread_count_follows_size_and_bursts(gemm_isa, threads, call_burst,
                                                   double_precision):
    scale = 2 if double_precision else 1  # a double product counts as twice the float one
    between, large = _burst_min(double_precision), 2 ** 20 // scale
    small = between - 1
    assert between == (2 ** 18 if gemm_isa == "avx512" else 2 ** 17) // scale
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, double_precision)
    threads(2)
    call_burst(window_ns=0)
    assert [count(small), count(between), count(between), count(large)] == [1, 1, 1, 2]
    call_burst(window_ns=ALWAYS_IN_BURST_NS)  # forgets the calls so far
    assert [count(between), count(between), count(small), count(large)] == [1, 2, 1, 2]
    assert bp._core.gemm_thread_count(8, 16, between // 128, double_precision) == 2
    threads(1)
    assert [count(small), count(between), count(large)] == [1, 1, 1]


def test_a_burst_is_a_call_soon_after_the_one_before(threads, call_burst):
    threads(2)
    call_burst(window_ns=10 ** 9)  # 1 s
    between = _burst_min()
    assert bp._core.gemm_thread_count(1, 1, between, False) == 1  # the first call
    assert bp._core.gemm_thread_count(1, 1, between, False) == 2
    time.sleep(1.1)
    assert bp._core.gemm_thread_count(1, 1, between, False) == 1
    assert bp._core.gemm_thread_count(1, 1, between, False) == 2


def test_a_gemm_goes_on_record_for_the_burst_rule(threads, call_burst):
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS)
    k = _burst_min() // (64 * 32)
    A, B = np.ones((64, k), np.float32), np.ones((k, 32), np.float32)  # the threshold exactly
    bp.kernels.gemm(A, B)
    assert bp._core.gemm_thread_count(64, 32, k, False) == 2
    call_burst()  # forgets the GEMM: a product too small for the rule does not go on record
    bp.kernels.gemm(A[:, :k - 1], B[:k - 1])
    assert bp._core.gemm_thread_count(64, 32, k, False) == 1


# A late limit of 0 makes every thread of an awake team late. A split whose threads had just run
# (a split ended within the window before it) is judged, and the third late one in a row within
# the pause's length pauses every split.
def test_a_third_late_split_in_a_row_pauses_every_split(threads, call_burst):
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, late_start_ns=0, pause_ns=ALWAYS_IN_BURST_NS)
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, False)
    pauses = bp._core.late_thread_pauses()
    assert bp._core.late_thread_pause_left_ns() == 0
    # The first split's threads were not known to be awake: it is not judged. The next three
    # are late.
    assert [count(2 ** 20) for _ in range(4)] == [2, 2, 2, 2]
    assert [count(2 ** 17), count(2 ** 20), count(2 ** 27)] == [1, 1, 1]
    assert bp._core.late_thread_pauses() == pauses + 1
    assert 0 < bp._core.late_thread_pause_left_ns() <= ALWAYS_IN_BURST_NS
    call_burst(pause_ns=0)  # a pause of 0 never pauses (and the change ends the last one)
    assert bp._core.late_thread_pause_left_ns() == 0
    assert [count(2 ** 20) for _ in range(4)] == [2, 2, 2, 2]
    call_burst(late_start_ns=10 ** 9, pause_ns=ALWAYS_IN_BURST_NS)  # no call starts 1 s late
    assert [count(2 ** 20) for _ in range(4)] == [2, 2, 2, 2]


# A pause says how long it has left (a benchmark waits it out), and runs down on the clock.
def test_a_pause_reports_the_time_it_has_left(threads, call_burst):
    threads(2)
    pause_ns = 1_000_000_000  # long enough that a busy host cannot end it before the checks
    call_burst(window_ns=ALWAYS_IN_BURST_NS, late_start_ns=0, pause_ns=pause_ns)
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, False)
    assert [count(2 ** 20) for _ in range(4)] == [2, 2, 2, 2]  # not judged, then late three times
    left = bp._core.late_thread_pause_left_ns()
    assert 0 < left <= pause_ns
    time.sleep(0.05)  # never returns early, on the monotonic clock the pause runs on
    later = bp._core.late_thread_pause_left_ns()
    assert 0 < later <= left - 50_000_000
    assert count(2 ** 20) == 1  # still paused
    time.sleep(later / 1e9 + 0.01)
    assert bp._core.late_thread_pause_left_ns() == 0
    assert count(2 ** 20) == 2


# A real split notes when its threads start: the last to start does so less than a second, and
# more than a nanosecond, after the region opens.
@pytest.mark.parametrize("shape", [(128, 128, 128), (301, 530, 900), (4099, 10, 300)],
                         ids=["slabs", "shared-blocks-or-slabs", "narrow"])
def test_a_split_times_the_start_of_its_threads(threads, call_burst, shape):
    m, n, k = shape
    trans_a = n == 10  # the narrow kernel's product is A^T B
    A = np.ones((k, m) if trans_a else (m, k), np.float32)
    B = np.ones((k, n), np.float32)
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, late_start_ns=10 ** 9, pause_ns=ALWAYS_IN_BURST_NS)
    for _ in range(4):
        bp.kernels.gemm(A, B, trans_a=trans_a)
    assert bp._core.gemm_thread_count(1, 1, 2 ** 20, False) == 2
    call_burst(late_start_ns=1)
    for _ in range(4):  # the first is not judged, the next three are late by more than 1 ns
        bp.kernels.gemm(A, B, trans_a=trans_a)
    assert bp._core.gemm_thread_count(1, 1, 2 ** 20, False) == 1


# Elementwise kernels split under the same rule: they are judged as a GEMM is, pause GEMMs, and
# keep to a pause.
@pytest.mark.parametrize("kernel", ["activation", "softmax"])
def test_elementwise_splits_are_judged_too(threads, call_burst, kernel):
    u = np.ones((256, 256), np.float32)  # 2^16 values: split over the threads
    run = {"activation": lambda: bp.kernels.activation_forward(u, "tanh"),
           "softmax": lambda: bp.kernels.softmax(u)}[kernel]
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, late_start_ns=0, pause_ns=ALWAYS_IN_BURST_NS)
    pauses = bp._core.late_thread_pauses()
    for _ in range(4):  # not judged, then late three times
        run()
    assert bp._core.late_thread_pauses() == pauses + 1
    run()  # paused: on one thread, so not judged (late, it would pause again)
    assert bp._core.late_thread_pauses() == pauses + 1
    assert bp._core.gemm_thread_count(1, 1, 2 ** 20, False) == 1
    threads(1)  # one thread: nothing on record
    call_burst(late_start_ns=0)
    for _ in range(3):
        run()
    assert bp._core.late_thread_pauses() == pauses + 1


def test_a_split_is_judged_only_while_its_threads_are_awake(threads, call_burst):
    # A window of 1 s: after a quiet second, the first split's threads may have been asleep
    # (waking them takes time), so its late start is not held against it; the next ones' are.
    threads(2)
    call_burst(window_ns=10 ** 9, late_start_ns=0, pause_ns=ALWAYS_IN_BURST_NS)
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, False)
    assert count(2 ** 20) == 2
    time.sleep(1.1)
    assert [count(2 ** 20) for _ in range(5)] == [2, 2, 2, 2, 1]


def test_a_split_on_time_between_late_ones_keeps_them_apart(threads, call_burst):
    # A late limit of 1 ns: a real product's threads start later than that, and a count's
    # (which runs no region) do not.
    A = np.ones((128, 128), np.float32)  # 2^21 multiply-adds
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, late_start_ns=1, pause_ns=ALWAYS_IN_BURST_NS)
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, False)
    bp.kernels.gemm(A, A)  # not judged
    for _ in range(3):
        bp.kernels.gemm(A, A)
        bp.kernels.gemm(A, A)  # late twice in a row
        assert count(2 ** 20) == 2  # on time
    for _ in range(3):
        bp.kernels.gemm(A, A)  # late three times in a row
    assert count(2 ** 20) == 1


def test_late_splits_far_apart_do_not_pause(threads, call_burst):
    # With a pause of 50 ms, a late split 0.3 s after the last one is a hiccup of its own. (A
    # pause of 1 ms failed once on a machine busy with a build: the calls right after the last
    # came more than 1 ms apart, and so were not in a row.)
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, late_start_ns=0, pause_ns=5 * 10 ** 7)
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, False)
    count(2 ** 20)
    pauses = bp._core.late_thread_pauses()
    for _ in range(3):
        time.sleep(0.3)
        assert count(2 ** 20) == 2  # late, alone
    assert bp._core.late_thread_pauses() == pauses
    # Two more right after the last: late three times in a row
    assert [count(2 ** 20), count(2 ** 20), count(2 ** 20)] == [2, 2, 1]
    assert bp._core.late_thread_pauses() == pauses + 1


def test_a_pause_soon_after_the_last_one_lasts_twice_as_long(threads, call_burst):
    # Pauses of 100 ms: the one that follows within 100 ms of the first's end lasts 200 ms. The
    # checks of a pause still running hold only if the process was not held up for long.
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, late_start_ns=0, pause_ns=10 ** 8)
    count = lambda work: bp._core.gemm_thread_count(1, 1, work, False)
    pauses = bp._core.late_thread_pauses()
    start = time.perf_counter()
    # Not judged, then late three times: a pause of 100 ms from the fourth call's end.
    assert [count(2 ** 20) for _ in range(4)] == [2, 2, 2, 2]
    fourth_done = time.perf_counter()
    first_paused = count(2 ** 20) == 1
    if time.perf_counter() - start < 0.1:
        assert first_paused
    time.sleep(0.15)
    sixth = count(2 ** 20)  # late again, less than 200 ms after the last late call
    sixth_done = time.perf_counter()
    # The first pause was over by the sixth call and had ended less than 100 ms before it:
    if fourth_done - start < 0.05 and sixth_done - start < 0.2:
        assert sixth == 2  # and it pauses for 200 ms
        time.sleep(0.15)
        still_paused = count(2 ** 20) == 1
        if time.perf_counter() - sixth_done < 0.19:  # the pause ends 200 ms after the call's end
            assert still_paused
            assert bp._core.late_thread_pauses() == pauses + 2
    time.sleep(1.05)  # past any pause above (at most a second)
    assert count(2 ** 20) == 2


def test_a_late_split_pauses_for_fifty_times_its_own_time(threads, call_burst):
    # With a pause of 1 ms, the pause after a third late split lasts 50 times its time (at most
    # a second).
    A = np.ones((512, 512), np.float32)  # 2^27 multiply-adds: a millisecond or more
    threads(2)
    call_burst(window_ns=ALWAYS_IN_BURST_NS, late_start_ns=0, pause_ns=10 ** 6)
    tooks = []
    for _ in range(4):  # not judged, then late three times: the last within 50 times its time
        start = time.perf_counter()
        bp.kernels.gemm(A, A)
        tooks.append(time.perf_counter() - start)
    # The product's time, from above: the Python side of a call, or a stall there, only adds
    # to it and does not lengthen the pause.
    took = min(tooks)
    time.sleep(min(0.25, max(0.002, 50 * took / 4)))
    still_paused = bp._core.gemm_thread_count(1, 1, 2 ** 20, False) == 1
    # took may still hold some of a call's Python side: the pause is shorter than 50 took, but
    # not by half
    if time.perf_counter() - start < min(25 * took, 1.0):
        assert still_paused
    time.sleep(1.05)  # past any pause (at most a second)
    assert bp._core.gemm_thread_count(1, 1, 2 ** 20, False) == 2


def test_a_split_gemm_goes_on_record_as_it_ends(threads, call_burst):
    # A window shorter than a large product: the product's start lies outside it, its end not.
    threads(2)
    A = np.ones((1024, 2048), np.float32)
    B = np.ones((2048, 1024), np.float32)
    bp.kernels.gemm(A, B)  # grows the packing buffers and starts the threads
    start = time.perf_counter()
    bp.kernels.gemm(A, B)
    took = time.perf_counter() - start
    call_burst(window_ns=int(took / 3 * 1e9))
    counts = []
    for _ in range(3):  # a hold-up between the product's end and the count spoils one try
        start = time.perf_counter()
        bp.kernels.gemm(A, B)
        ended = time.perf_counter()
        count = bp._core.gemm_thread_count(1, 1, _burst_min(), False)
        asked = time.perf_counter()
        # The product outlasted the window (unless much faster), and the count came within the
        # window of its end (unless the process was held up between the two).
        if ended - start > took / 3 and asked - ended < took / 3:
            counts.append(count)
    if counts:
        assert 2 in counts, counts


def test_the_burst_rule_rejects_negative_times(call_burst):
    for name in ("window_ns", "late_start_ns", "pause_ns"):
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


def _one_region_network(wiring, dtype):
    """Networks whose single-source layers run their backward step in one region on two threads
    (the first layer its weight gradient only): every such product at least 2^19 multiply-adds
    (above the GEMM's burst threshold on every path and type), below the shared blocks (2^27)."""
    if wiring == "chain":
        # derivatives in the write-back (64 x 288, 64 x 250) and in a pass (64 x 900); widths off
        # the 32-column slabs; a 10-wide last layer (the narrow weight-gradient kernel)
        layers = [bp.Dense(96, 288, "tanh"), bp.Dense(288, 250, "sigmoid"),
                  bp.Dense(250, 900, "elu"), bp.Dense(900, 10)]
        return bp.Network(layers, dtype=dtype, seed=3)
    if wiring == "dropout":  # the mask comes first: the derivative in a pass of its own
        layers = [bp.Dense(96, 256, "tanh", dropout=0.3), bp.Dense(256, 900, "relu", dropout=0.5),
                  bp.Dense(900, 10)]
        return bp.Network(layers, dtype=dtype, seed=3)
    if wiring == "shortcut":
        # layer 3 adds into layer 1's delta first; layer 2, its first reader, adds onto it
        # (beta 1) and applies the derivative
        layers = [bp.Dense(96, 256, "tanh"), bp.Dense(256, 256, "relu"),
                  bp.Dense(512, 10, inputs=[1, 2])]
        return bp.Network(layers, dtype=dtype, seed=3)
    # a source narrower than one slab (20 columns: the second thread multiplies none of dX),
    # then one output (fewer bias columns than threads)
    layers = [bp.Dense(1000, 20, "tanh"), bp.Dense(20, 8200, "relu"), bp.Dense(8200, 1)]
    return bp.Network(layers, output="identity", loss="mse", dtype=dtype, seed=3)


@pytest.mark.parametrize("wiring", ["chain", "dropout", "shortcut", "narrow"])
def test_backward_in_one_region_gives_the_bytes_of_one_thread(gemm_isa, dtype, threads, call_burst,
                                                              wiring):
    call_burst(window_ns=60 * 10**9)  # every call a burst's: products from 2^17 split
    rng = np.random.default_rng(5)
    X = rng.standard_normal((192, 1000 if wiring == "narrow" else 96)).astype(dtype)
    y = rng.standard_normal((192, 1)) if wiring == "narrow" else rng.integers(0, 10, 192)
    results, regions = {}, {}
    for n in (1, 2):
        threads(n)
        net = _one_region_network(wiring, dtype)
        opt = bp.optim.SGD(lr=0.01, momentum=0.9)
        before = bp._core.mlp_backward_region_count()
        losses = [net.train_step(X[i:i + 64], y[i:i + 64], opt) for i in range(0, 192, 64)]
        loss, grads = net.loss_and_grad(X[:64], y[:64])
        regions[n] = bp._core.mlp_backward_region_count() - before
        results[n] = (losses, loss, grads.tobytes(), net.params.tobytes())
    single_source = {"chain": 4, "dropout": 3, "shortcut": 2, "narrow": 3}[wiring]
    assert regions == {1: 0, 2: 4 * single_source}  # 3 steps and loss_and_grad
    assert np.all(np.isfinite(results[1][0]))
    assert np.any(np.frombuffer(results[1][2], dtype) != 0)
    assert results[1] == results[2]


EARLY_OPTIMIZERS = {
    "sgd-momentum": (bp.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
    "sgd": (bp.optim.SGD, {"lr": 0.01}),
    "sgd-shaped": (bp.optim.SGD, {"lr": 0.01, "momentum": 0.9, "clip_value": 0.05, "l1": 1e-4}),
    "adam": (bp.optim.Adam, {"lr": 1e-3}),
    "adamw": (bp.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.1}),
}


@pytest.mark.parametrize("optimizer", list(EARLY_OPTIMIZERS))
@pytest.mark.parametrize("wiring", ["chain", "dropout", "shortcut", "narrow"])
def test_early_update_in_one_region_gives_the_bytes_of_checked_steps(gemm_isa, dtype, threads,
                                                                     call_burst, wiring,
                                                                     optimizer):
    # A native epoch proves each update before its backward pass and makes it layer by layer
    # inside the backward regions, each thread the rows of W it has read and whose gradient it
    # wrote (slabs off even splits: 288, 250 and 900 rows). Weights and optimizer state on one
    # and two threads must be the bytes of train_steps, which check each update in the same
    # regions and write it after the backward pass (the next test holds those to loss_and_grad
    # and the optimizer's own step).
    call_burst(window_ns=60 * 10**9)

    def network():
        if wiring != "narrow":
            return _one_region_network(wiring, dtype)
        # _one_region_network's narrow one has more activations than weights, so its updates
        # are proven after the backward pass. Here W2 has 20 rows, one slab of dX: the second
        # thread would have none, so W2 is updated after its region.
        layers = [bp.Dense(2000, 20, "tanh"), bp.Dense(20, 1000, "relu"), bp.Dense(1000, 1000)]
        return bp.Network(layers, output="identity", loss="mse", dtype=dtype, seed=3)

    rng = np.random.default_rng(6)
    narrow = wiring == "narrow"
    X = rng.standard_normal((192, 2000 if narrow else 96)).astype(dtype)
    Y = (rng.standard_normal((192, 1000)) if narrow
         else np.eye(10)[rng.integers(0, 10, 192)]).astype(dtype)
    order = rng.permutation(192).astype(np.int64)
    single_source = {"chain": 4, "dropout": 3, "shortcut": 2, "narrow": 3}[wiring]
    kind, config = EARLY_OPTIMIZERS[optimizer]
    results = {}
    for n in (1, 2):
        threads(n)
        net = network()
        opt = kind(**config)
        before = bp._core.mlp_backward_region_count()
        result = net._engine.train_epoch(net.params, net._grads, opt.state_for(net.params),
                                         opt.native_spec(), X, Y, order, 64)
        assert bp._core.mlp_backward_region_count() - before == (n - 1) * 3 * single_source
        assert result["batches"] == 3
        if kind is bp.optim.SGD:
            assert result["early_updates"] == 3
        else:  # Adam's bound on its step (|a| / eps) is loose: after the first, proofs may fail
            assert result["early_updates"] >= 1
        results[n] = [net.params.tobytes()] + [buffer.tobytes() for buffer in opt.state]
    twin = network()
    twin_opt = kind(**config)
    for start in range(0, 192, 64):
        rows = order[start:start + 64]
        twin.train_step(X[rows], Y[rows], twin_opt)
    assert results[1] == results[2]
    assert results[1] == [twin.params.tobytes()] + [buffer.tobytes() for buffer in twin_opt.state]
    assert not np.array_equal(twin.params, network().params)


@pytest.mark.parametrize("optimizer", ["sgd-momentum", "sgd-shaped", "adamw"])
def test_an_early_update_takes_each_threads_gradient_rows_from_its_own_buffer(
        gemm_isa, dtype, threads, call_burst, optimizer):
    # An update proven before the backward pass reads each thread's rows of a layer's weight
    # gradient from a buffer of that thread's own, where its product wrote them, and the grads
    # buffer is not written there. Filled with NaN, that buffer must keep NaN in those rows on
    # two threads and must not reach the weights: they and the optimizer's state must be the
    # bytes of one thread's epoch, which runs no region and writes the whole gradient.
    call_burst(window_ns=60 * 10**9)
    # the output layer's products (64 x 256 x 3) are too small to split: no region
    layers = [bp.Dense(96, 256, "relu"), bp.Dense(256, 256, "tanh"), bp.Dense(256, 3)]
    rng = np.random.default_rng(8)
    X = rng.standard_normal((192, 96)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 192)]
    order = rng.permutation(192).astype(np.int64)
    kind, config = EARLY_OPTIMIZERS[optimizer]
    results, in_own_buffers, unwritten, early = {}, {}, {}, {}
    for n in (1, 2):
        threads(n)
        net = bp.Network(layers, dtype=dtype, seed=3)
        opt = kind(**config)
        net._grads.fill(np.nan)
        before = bp._core.mlp_thread_gradient_count()
        result = net._engine.train_epoch(net.params, net._grads, opt.state_for(net.params),
                                         opt.native_spec(), X, Y, order, 64)
        in_own_buffers[n] = bp._core.mlp_thread_gradient_count() - before
        unwritten[n] = int(np.isnan(net._grads).sum())
        early[n] = result["early_updates"]
        assert result["batches"] == 3
        results[n] = [net.params.tobytes()] + [buffer.tobytes() for buffer in opt.state]
    # every batch's update proven (one that was not would write the whole gradient again)
    assert early == {1: 3, 2: 3}
    # each update: both threads' rows of the first two layers' weight gradients, all of W1
    # and W2 left unwritten (the biases' and the output layer's gradients are written)
    assert in_own_buffers == {1: 0, 2: 4 * 3}
    assert unwritten == {1: 0, 2: (96 + 256) * 256}
    assert results[1] == results[2]
    assert np.all(np.isfinite(np.frombuffer(results[2][0], dtype)))


@pytest.mark.parametrize("optimizer", list(EARLY_OPTIMIZERS))
@pytest.mark.parametrize("wiring", ["chain", "dropout", "shortcut", "narrow"])
def test_train_step_checks_in_one_region_with_the_bytes_of_a_separate_update(
        gemm_isa, dtype, threads, call_burst, wiring, optimizer):
    # A train_step on its own (no bounds carried from the last) checks each layer's update in
    # its backward region, each thread the rows of W it has read and whose gradient it wrote,
    # then writes the whole update in one pass. Weights and optimizer state on one and two
    # threads must be the bytes of loss_and_grad followed by the optimizer's own step, which
    # checks the whole update after the backward pass.
    call_burst(window_ns=60 * 10**9)
    rng = np.random.default_rng(7)
    narrow = wiring == "narrow"
    X = rng.standard_normal((192, 1000 if narrow else 96)).astype(dtype)
    y = rng.standard_normal((192, 1)).astype(dtype) if narrow else rng.integers(0, 10, 192)
    single_source = {"chain": 4, "dropout": 3, "shortcut": 2, "narrow": 3}[wiring]
    kind, config = EARLY_OPTIMIZERS[optimizer]
    results = {}
    for n in (1, 2):
        threads(n)
        net = _one_region_network(wiring, dtype)
        opt = kind(**config)
        before = bp._core.mlp_backward_region_count()
        checked = bp._core.train_step_checked_in_backward_count()
        for start in range(0, 192, 64):
            # every entry is written before its check: a check that ran early would see NaN
            net._grads.fill(np.nan)
            net.train_step(X[start:start + 64], y[start:start + 64], opt)
        assert bp._core.mlp_backward_region_count() - before == (n - 1) * 3 * single_source
        assert bp._core.train_step_checked_in_backward_count() - checked == 3
        results[n] = [net.params.tobytes()] + [buffer.tobytes() for buffer in opt.state]
    twin = _one_region_network(wiring, dtype)
    twin_opt = kind(**config)
    for start in range(0, 192, 64):
        _, grads = twin.loss_and_grad(X[start:start + 64], y[start:start + 64],
                                      dropout_step=twin_opt.steps)
        twin_opt.step(twin.params, grads)
    assert results[1] == results[2]
    assert results[1] == [twin.params.tobytes()] + [buffer.tobytes() for buffer in twin_opt.state]
    assert not np.array_equal(twin.params, _one_region_network(wiring, dtype).params)


@pytest.mark.parametrize("where", ["second-slab-row", "last-bias", "after-region"])
@pytest.mark.parametrize("kind", [bp.optim.SGD, bp.optim.Adam])
def test_train_step_refuses_an_overflow_checked_in_a_region_and_changes_nothing(
        gemm_isa, dtype, threads, call_burst, where, kind):
    # A train_step on its own checks each layer's update inside the backward regions. One
    # weight's update overflows (its first state buffer near half the largest float, lr 10): in
    # the last row of the second layer's W, which the second thread checks, in that layer's last
    # bias column, or in the narrow network's second layer, whose 20 rows are checked after its
    # region. On one and two
    # threads the step must raise and leave every weight and state value as it was.
    call_burst(window_ns=60 * 10**9)
    narrow = where == "after-region"
    rng = np.random.default_rng(8)
    X = rng.standard_normal((64, 1000 if narrow else 96)).astype(dtype)
    y = rng.standard_normal((64, 1)).astype(dtype) if narrow else rng.integers(0, 10, 64)
    for n in (1, 2):
        threads(n)
        net = _one_region_network("narrow" if narrow else "chain", dtype)
        opt = kind(lr=10.0, **({"momentum": 0.9} if kind is bp.optim.SGD else {}))
        state = opt.state_for(net.params)
        layer = net.layers[1]
        w_offset = net.layers[0].W.size + net.layers[0].b.size
        if where == "second-slab-row":  # the last row of W2: the second thread's slab
            index = w_offset + layer.W.size - 1
        elif where == "last-bias":
            index = w_offset + layer.W.size + layer.b.size - 1
        else:  # a row of the narrow layer's W, checked after its region
            index = w_offset + 7 * layer.W.shape[1] + 3
        state[0][index] = np.finfo(dtype).max / 2
        before = [net.params.tobytes()] + [buffer.tobytes() for buffer in state]
        regions = bp._core.mlp_backward_region_count()
        checked = bp._core.train_step_checked_in_backward_count()
        with pytest.raises(FloatingPointError, match="unchanged"):
            net.train_step(X, y, opt)
        assert bp._core.mlp_backward_region_count() - regions == (n - 1) * (3 if narrow else 4)
        assert bp._core.train_step_checked_in_backward_count() == checked + 1
        assert [net.params.tobytes()] + [buffer.tobytes() for buffer in opt.state] == before


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


# Stealing shares (stealing_shares.hpp): a shared-block GEMM's threads take pairs of column
# panels from their own share, then from the back of the others'.
def test_stealing_shares_give_each_thread_its_own_share_then_the_back_of_the_others():
    take = bp._core.stealing_shares_taken_in_turns
    # 10 items on 2 threads, shares 0-4 and 5-9, taken in alternation: each its own, in order
    assert take(10, 2, [0, 1] * 5) == [(0, False), (5, False), (1, False), (6, False),
                                       (2, False), (7, False), (3, False), (8, False),
                                       (4, False), (9, False)]
    # thread 0 alone: its own share, then thread 1's from the back, then nothing
    assert take(10, 2, [0] * 11) == ([(i, False) for i in range(5)] +
                                     [(i, True) for i in (9, 8, 7, 6, 5)] + [(-1, False)])
    # thread 1 takes 5 and 6, thread 0 its own and then 9, 8, 7; thread 1 finds nothing left
    assert take(10, 2, [1, 1] + [0] * 8 + [1]) == ([(5, False), (6, False)] +
                                                   [(i, False) for i in range(5)] +
                                                   [(9, True), (8, True), (7, True), (-1, False)])
    # three threads (shares 0-2, 3-5, 6-9): thread 2 done, it takes from thread 0's back first
    assert take(10, 3, [2] * 6) == [(6, False), (7, False), (8, False), (9, False), (2, True),
                                    (1, True)]
    # uneven and empty shares: one item on two threads is thread 1's, which thread 0 steals
    assert take(1, 2, [1, 1, 0]) == [(0, False), (-1, False), (-1, False)]
    assert take(1, 2, [0, 1]) == [(0, True), (-1, False)]
    assert take(0, 4, [3]) == [(-1, False)]


needs_openmp = pytest.mark.skipif(not bp._core.openmp_enabled(),
                                  reason="a build without OpenMP runs every split on one thread")


@needs_openmp
@pytest.mark.parametrize("parts", [2, 3, 8])
def test_a_slow_threads_share_is_finished_by_the_others(parts):
    # part 0 waits, after its first item, until another thread has taken the last item of its
    # share (at most 10 s): the others take its items from the back once their own are done
    count = 200
    taker = bp._core.stealing_shares_race(count, parts, wait_ns=10_000_000_000)
    assert len(taker) == count and min(taker) >= 0 and max(taker) < parts  # -1 none, -2 twice
    own_share = range(count // parts)
    assert taker[own_share[-1]] != 0


@needs_openmp
@pytest.mark.parametrize("parts", [2, 3, 8])
def test_racing_threads_take_every_item_exactly_once(parts):
    # no waiting: owners and thieves meet at the ends of shares over and over
    for _ in range(20):
        taker = bp._core.stealing_shares_race(100_000, parts, wait_ns=0)
        assert min(taker) >= 0 and max(taker) < parts  # -1: taken by none, -2: twice


def test_one_thread_takes_every_item_in_order():
    taker = bp._core.stealing_shares_race(50, 1, wait_ns=1000)
    assert taker == [0] * 50


@pytest.mark.parametrize("call, pattern", [
    (lambda: bp._core.stealing_shares_taken_in_turns(-1, 2, [0]),
     r"count must be in \[0, 2147483648\]; got -1"),
    (lambda: bp._core.stealing_shares_taken_in_turns(2**31 + 1, 2, [0]),
     r"count must be in \[0, 2147483648\]; got 2147483649"),
    (lambda: bp._core.stealing_shares_taken_in_turns(4, 0, [0]),
     r"parts must be in \[1, 64\]; got 0"),
    (lambda: bp._core.stealing_shares_taken_in_turns(4, 65, [0]),
     r"parts must be in \[1, 64\]; got 65"),
    (lambda: bp._core.stealing_shares_taken_in_turns(4, 2, [0, 2]),
     r"takers must be parts in \[0, parts\); got 2"),
    (lambda: bp._core.stealing_shares_taken_in_turns(4, 2, [-1]),
     r"takers must be parts in \[0, parts\); got -1"),
    (lambda: bp._core.stealing_shares_race(2**20 + 1, 2, 0),
     r"count must be in \[0, 1048576\]; got 1048577"),
    (lambda: bp._core.stealing_shares_race(4, 65, 0), r"parts must be in \[1, 64\]; got 65"),
    (lambda: bp._core.stealing_shares_race(4, 2, -1),
     r"wait_ns must be in \[0, 10\^10\]; got -1"),
    (lambda: bp._core.stealing_shares_race(4, 2, 10**10 + 1),
     r"wait_ns must be in \[0, 10\^10\]; got 10000000001"),
])
def test_stealing_shares_test_functions_refuse_bad_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@needs_openmp
@pytest.mark.parametrize("shape, trans_b", [
    pytest.param((301, 530, 900), False, id="row-blocks-of-cut-panels-NN"),
    # one block of 13 rows, 6 + 6 + 1: each last-row tile waits for its right neighbour's
    # (config.hpp, TWO_PANEL_MAX_ROWS), and the last pair is a full panel and a partial one
    # (3000 = 187 x 16 + 8 float columns); NT packs each panel of B as it is taken
    pytest.param((13, 3000, 3500), False, id="paired-last-row-tiles-NN"),
    pytest.param((13, 3000, 3500), True, id="paired-last-row-tiles-NT"),
])
# the paths whose threads share packed blocks (config.hpp, SHARE_PACKED_BLOCKS); avx512's take
# slabs of C
@pytest.mark.parametrize("isa", [isa for isa in bp.kernels.available_isas() if isa != "avx512"])
def test_a_gemm_whose_threads_steal_panels_keeps_the_bytes_of_one_thread(isa, dtype, threads,
                                                                        call_burst, shape,
                                                                        trans_b):
    # A shared-block GEMM (>= kGemmSharedMinFlops) on two threads beside a process spinning on
    # every CPU this process may run on, so that one thread is often descheduled and the other
    # takes its panel pairs: every call's bytes equal one thread's, and pairs were stolen.
    m, n, k = shape
    bp.kernels.set_gemm_isa(isa)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    call_burst(window_ns=0)
    threads(1)
    expected = bp.kernels.gemm(A, B, trans_b=trans_b).tobytes()
    threads(2)
    spin = "import time\nend = time.time() + 20\nwhile time.time() < end: pass\n"
    spinners = [subprocess.Popen([sys.executable, "-c", spin])
                for _ in range(len(os.sched_getaffinity(0)))]
    try:
        stolen_before = bp._core.gemm_stolen_pairs_count()
        for _ in range(200):
            assert bp.kernels.gemm(A, B, trans_b=trans_b).tobytes() == expected
            if bp._core.gemm_stolen_pairs_count() > stolen_before:
                break
        assert bp._core.gemm_stolen_pairs_count() > stolen_before, "no thread stole a pair"
        for _ in range(20):
            assert bp.kernels.gemm(A, B, trans_b=trans_b).tobytes() == expected
    finally:
        bp.kernels.set_gemm_isa("auto")
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
