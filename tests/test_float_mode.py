"""set_flush_denormals: training with subnormal numbers flushed to zero, on by default."""

import platform
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import backprop as bp

TINY = np.finfo(np.float32).tiny  # the smallest normal float32, 1.18e-38

x86_64 = pytest.mark.skipif(platform.machine() != "x86_64",
                            reason="flushing to zero is an x86-64 mode; elsewhere it is a no-op")


@pytest.fixture
def flushing():
    """Flushing on for the test (the default; conftest restores it after every test)."""
    bp.set_flush_denormals(True)


@pytest.fixture
def ieee():
    """IEEE arithmetic for the test (conftest restores flushing after it)."""
    bp.set_flush_denormals(False)


def _subnormal_inputs(rows):
    """Inputs of 256 values that are all subnormal (or zero), and class ids of 10."""
    rng = np.random.default_rng(5)
    X = (rng.standard_normal((rows, 256)) * 1e-39).astype(np.float32)
    return X, rng.integers(0, 10, rows)


def _train_on_subnormal_inputs(threads, steps=1, flush_from_step=0):
    """The parameters and the first layer's weight velocity after SGD steps on inputs that are
    all subnormal (or zero). The layer sizes make the GEMMs and the update run on two threads
    when asked, so worker threads meet the subnormals too. flush_from_step: turn flushing on
    before that step (0: leave it as it is)."""
    bp.set_num_threads(threads)
    net = bp.Network([256, 512, 10], seed=3)
    X, y = _subnormal_inputs(64)
    optimizer = bp.optim.SGD(lr=0.1, momentum=0.9)
    for step in range(steps):
        if flush_from_step and step == flush_from_step:
            bp.set_flush_denormals(True)
        net.train_step(X, y, optimizer)
    size = net.layers[0].W.size  # W of layer 0 leads the flat buffer
    assert np.shares_memory(net.params[:size], net.layers[0].W)
    return net.params.copy(), optimizer.state_for(net.params)[0][:size].copy()


def test_on_by_default_and_switchable():
    assert bp.get_flush_denormals() is True
    bp.set_flush_denormals(False)
    try:
        assert bp.get_flush_denormals() is False
    finally:
        bp.set_flush_denormals(True)
    assert bp.get_flush_denormals() is True
    with pytest.raises(TypeError, match="enabled must be a bool"):
        bp.set_flush_denormals(1)


@x86_64
def test_ieee_training_keeps_subnormal_gradients(ieee, threads):
    _, velocity = _train_on_subnormal_inputs(1)
    assert np.count_nonzero(velocity) > 0
    assert np.all(np.abs(velocity) < TINY)


@x86_64
def test_training_reads_subnormal_inputs_as_zero_by_default(threads):
    _, velocity = _train_on_subnormal_inputs(1)
    assert np.count_nonzero(velocity) == 0


@x86_64
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("flush", [False, True])
def test_a_dead_units_velocity_stays_subnormal_for_good_unless_flushed(flush, dtype, threads):
    # Why flushing is the default: a weight whose gradient is zero (here, of an input that is
    # always 0) and whose velocity has decayed to the smallest subnormal keeps that velocity
    # under momentum 0.9 in IEEE arithmetic, since 0.9 times it rounds back to it; every later
    # update then meets a subnormal. Flushed, the velocity becomes 0 at the next step.
    threads(2)
    bp.set_flush_denormals(flush)
    net = bp.Network([256, 512, 10], seed=3, dtype=dtype)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 256)).astype(dtype)
    X[:, 7] = 0  # the gradient of row 7 of the first W is exactly 0
    y = rng.integers(0, 10, 64)
    optimizer = bp.optim.SGD(lr=0.1, momentum=0.9)
    net.train_step(X, y, optimizer)
    velocity = optimizer.state_for(net.params)[0]
    row = slice(7 * 512, 8 * 512)  # row 7 of W, which leads the flat buffer
    smallest = np.nextafter(dtype(0), dtype(1))
    velocity[row] = smallest
    weights = net.params[row].copy()
    for _ in range(100):
        net.train_step(X, y, optimizer)
    assert net.params[row].tobytes() == weights.tobytes()  # lr times the velocity adds nothing
    assert np.all(velocity[row] == (0 if flush else smallest))


@x86_64
def test_flushed_training_gives_the_same_bytes_on_any_thread_count(flushing, threads):
    # Worker threads flush as their caller does: otherwise the half of the first product they
    # compute would hold subnormals where the one-thread run has zeros.
    one = _train_on_subnormal_inputs(1, steps=3)
    two = _train_on_subnormal_inputs(2, steps=3)
    assert one[0].tobytes() == two[0].tobytes()
    assert np.count_nonzero(two[1]) == 0


@x86_64
@pytest.mark.parametrize("flush", [False, True])
def test_optimizer_step_flushes_as_training_does(flush, threads):
    # A loop of one's own around loss_and_grad meets the same cliff in its updates.
    threads(2)
    bp.set_flush_denormals(flush)
    n = 1 << 16  # enough for the update to split over both threads
    params = np.ones(n, np.float32)
    optimizer = bp.optim.SGD(lr=0.1, momentum=0.9)
    optimizer.step(params, np.zeros(n, np.float32))
    velocity = optimizer.state_for(params)[0]
    smallest = np.nextafter(np.float32(0), np.float32(1))
    velocity[:] = smallest
    optimizer.step(params, np.zeros(n, np.float32))
    assert np.all(velocity == (0 if flush else smallest))
    assert np.all(params == 1)
    assert np.float32(1e-39) * np.float32(0.5) != 0  # and the caller computes subnormals again
    assert list(bp._core.team_float_modes(2)) == [0, 0]


@x86_64
def test_flushed_update_reads_subnormal_state_as_zero(ieee, threads):
    # A step in IEEE arithmetic leaves subnormal velocities; the next, flushed, reads them as
    # zero on every thread of the update, whose two shares both hold first-layer weights.
    _, velocity = _train_on_subnormal_inputs(2, steps=2, flush_from_step=1)
    assert np.count_nonzero(velocity) == 0


@x86_64
def test_flushing_stays_inside_the_training_call(flushing, threads):
    _train_on_subnormal_inputs(2)
    # The calling thread computes subnormals again ...
    assert np.float32(1e-39) * np.float32(0.5) != 0
    # ... and OpenMP's workers enter a region that sets no mode without flushing (the regions of
    # other code sharing the pool).
    assert list(bp._core.team_float_modes(2)) == [0, 0]


@x86_64
def test_a_larger_pool_after_flushed_training_does_not_flush(flushing, threads):
    _train_on_subnormal_inputs(2)
    # OpenMP starts a third thread inside the flushing call, born with its creator's bits:
    # backprop's regions leave it in the bits the caller had before the call.
    _train_on_subnormal_inputs(3)
    assert list(bp._core.team_float_modes(3)) == [0, 0, 0]


def _fit_on_subnormal_inputs():
    # fit's epoch is one train_epoch call, whose batches are train_step calls nested in it
    X, y = _subnormal_inputs(256)
    net = bp.Network([256, 512, 10], seed=3)
    net.fit(X, y, optimizer=bp.optim.SGD(lr=0.1, momentum=0.9), epochs=1, batch_size=64,
            verbose=0)


@x86_64
def test_flushed_fit_leaves_no_thread_flushing(flushing, threads):
    # The nested steps must not take the epoch's flushing for the bits the workers rest in.
    threads(2)
    _fit_on_subnormal_inputs()
    assert np.float32(1e-39) * np.float32(0.5) != 0
    assert list(bp._core.team_float_modes(2)) == [0, 0]


@x86_64
def test_flushed_fit_in_another_python_thread_leaves_its_pool_unflushed(flushing, threads):
    # Each Python thread has its own OpenMP pool and its own resting bits; three threads, so
    # the pool grows inside the flushed call.
    threads(3)
    seen = {}

    def train():
        _fit_on_subnormal_inputs()
        seen["caller computes subnormals"] = bool(np.float32(1e-39) * np.float32(0.5) != 0)
        seen["workers"] = list(bp._core.team_float_modes(3))

    worker = threading.Thread(target=train)
    worker.start()
    worker.join()
    assert seen == {"caller computes subnormals": True, "workers": [0, 0, 0]}


@x86_64
def test_flushed_fit_reads_subnormal_inputs_as_zero(flushing, threads):
    threads(2)
    net = bp.Network([256, 512, 10], seed=3)
    X, y = _subnormal_inputs(256)
    optimizer = bp.optim.SGD(lr=0.1, momentum=0.9)
    net.fit(X, y, optimizer=optimizer, epochs=2, batch_size=64, verbose=0)
    size = net.layers[0].W.size
    assert np.count_nonzero(optimizer.state_for(net.params)[0][:size]) == 0
    bp.set_flush_denormals(False)
    net.fit(X, y, optimizer=optimizer, epochs=1, batch_size=64, verbose=0)
    assert np.count_nonzero(optimizer.state_for(net.params)[0][:size]) > 0


@x86_64
def test_workers_first_started_by_flushed_training_do_not_flush():
    # A new thread takes its creator's mode. In a fresh process whose first two-thread work is
    # a flushed training step, OpenMP's workers are born flushing; they must not keep it, or
    # every later parallel region in the process, other libraries' included, would flush.
    script = textwrap.dedent("""
        import numpy as np, backprop as bp
        from backprop import _core
        bp.set_flush_denormals(True)
        bp.set_num_threads(2)
        net = bp.Network([256, 512, 10], seed=3)
        net.train_step(np.zeros((64, 256), np.float32), np.zeros(64, int), bp.optim.SGD(lr=0.1))
        print(*_core.team_float_modes(2))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0"]
