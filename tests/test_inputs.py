"""The native checks every batch goes through: finiteness and one-hot class targets, against
NumPy (the plain twin), on sizes around the block the finiteness scan works in."""

import numpy as np
import pytest

import backprop as bp
from backprop import _core
from backprop._arrays import require_finite
from backprop._targets import as_targets

BLOCK = 1 << 14  # kElementwiseBlock in cpp/include/backprop/config.hpp
SIZES = [1, 2, 7, 8, 9, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5]
BAD_VALUES = [np.nan, np.inf, -np.inf]


@pytest.mark.parametrize("size", SIZES)
def test_all_finite_is_true_for_finite_extremes(dtype, size):
    info = np.finfo(dtype)
    values = np.array([info.max, -info.max, info.tiny, info.smallest_subnormal, -0.0, 0.0, 1.0],
                      dtype)
    x = np.resize(values, size)
    assert _core.all_finite(x) is True
    assert _core.all_finite(x.reshape(1, size)) is True


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("bad", BAD_VALUES, ids=["nan", "inf", "-inf"])
def test_all_finite_finds_one_bad_value_anywhere(dtype, size, bad):
    rng = np.random.default_rng(size)
    for position in sorted({0, size // 2, size - 1, int(rng.integers(size))}):
        x = rng.uniform(-1, 1, size).astype(dtype)
        x[position] = bad
        assert _core.all_finite(x) is bool(np.isfinite(x).all()) is False, position


PARALLEL = 1 << 18  # kFiniteScanParallelMin: from here the scan is shared out over the threads


@pytest.mark.parametrize("size", [PARALLEL - 1, PARALLEL, PARALLEL + 3 * BLOCK + 7])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_all_finite_over_threads_finds_a_bad_value_in_any_share(dtype, size, count, threads):
    threads(count)
    rng = np.random.default_rng(size + count)
    x = rng.uniform(-1, 1, size).astype(dtype)
    assert _core.all_finite(x) is True
    # each share's first and last values (for_each_share: shares of whole 16-element units), a
    # block edge inside a share, the last value, and one at random
    units = -(-size // 16)
    edges = {units * part // count * 16 for part in range(1, count)}
    positions = {0, BLOCK - 1, BLOCK, size - 1, int(rng.integers(size))}
    positions |= {edge + shift for edge in edges for shift in (-1, 0)}
    for position in sorted(positions):
        for bad in BAD_VALUES:
            x[position] = bad
            assert _core.all_finite(x) is False, (position, bad)
        x[position] = 0.5
    assert _core.all_finite(x) is True


def test_all_finite_of_an_empty_array_is_true(dtype):
    assert _core.all_finite(np.empty((0, 3), dtype)) is True


@pytest.mark.parametrize("array", [
    pytest.param(np.arange(12.0).reshape(3, 4)[:, ::2], id="strided"),
    pytest.param(np.asfortranarray(np.arange(12.0).reshape(3, 4)), id="fortran"),
    pytest.param(np.arange(12, dtype=np.float16), id="float16"),
])
def test_require_finite_takes_any_layout_and_float_type(array):
    require_finite(array, "a")
    bad = array.copy(order="K")
    bad.flat[5] = np.nan
    with pytest.raises(ValueError, match="a contains NaN or Inf"):
        require_finite(bad, "a")


def test_all_finite_refuses_what_it_cannot_scan():
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        _core.all_finite(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        _core.all_finite(np.zeros((4, 4))[:, ::2])


@pytest.mark.parametrize("label_dtype", ["int64", "int32", "uint8", "int8", "float64"])
def test_one_hot_targets_match_numpy(dtype, label_dtype):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 7, 50)
    got = as_targets(ids.astype(label_dtype), "cross_entropy", 7, 50, np.dtype(dtype))
    assert got.dtype == dtype and got.shape == (50, 7) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.eye(7, dtype=dtype)[ids])


@pytest.mark.parametrize("ids,message", [
    ([0, 3, 7], r"y holds class ids from 0 to 7; the network has 7 outputs"),
    ([-2, 3, 1], r"y holds class ids from -2 to 3"),
    ([np.iinfo(np.int64).min, 0], r"y holds class ids from -9223372036854775808 to 0"),
])
def test_one_hot_refuses_ids_outside_the_classes(ids, message):
    with pytest.raises(ValueError, match=message):
        as_targets(np.array(ids), "cross_entropy", 7, len(ids), np.dtype(np.float32))


def test_one_hot_leaves_out_unwritten_when_an_id_is_out_of_range():
    out = np.full((3, 4), 5.0, np.float32)
    assert _core.one_hot(np.array([0, 4, 1]), out) == (0, 4)
    np.testing.assert_array_equal(out, 5.0)
    assert _core.one_hot(np.array([0, 3, 1]), out) == (0, 3)
    np.testing.assert_array_equal(out, np.eye(4, dtype=np.float32)[[0, 3, 1]])


def test_one_hot_checks_its_arrays():
    with pytest.raises(TypeError, match="ids must have dtype int64"):
        _core.one_hot(np.zeros(3, np.int32), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="out must have one row per id: 3"):
        _core.one_hot(np.zeros(3, np.int64), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="out must be writable"):
        out = np.zeros((3, 2))
        out.flags.writeable = False
        _core.one_hot(np.zeros(3, np.int64), out)


def test_a_nan_past_the_first_block_of_a_batch_is_refused():
    net = bp.Network([BLOCK // 8 + 3, 4, 3], seed=0)
    X = np.ones((9, net.n_inputs), np.float32)
    X[8, -1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        net.train_step(X, np.zeros(9, np.int64), bp.optim.SGD(lr=0.1))
