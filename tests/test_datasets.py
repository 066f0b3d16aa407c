"""Tests for backprop.datasets: shapes, dtypes, values checked independently, splits, bad input."""

import csv
import gzip
import io
import math
from collections import Counter
from importlib import resources

import numpy as np
import pytest

from backprop import datasets

FLOAT_DTYPES = ["float32", "float64"]
N_DIGITS = 1797


def _rows_as_multiset(a):
    return Counter(tuple(row) for row in np.asarray(a).reshape(len(a), -1).tolist())


def _read_digits_with_csv_module():
    data_file = resources.files("backprop.datasets").joinpath("data").joinpath("digits.csv.gz")
    text = gzip.decompress(data_file.read_bytes()).decode("ascii")
    return [[int(field) for field in row] for row in csv.reader(io.StringIO(text))]


# --- shapes, dtypes and layout of every generator ------------------------------------------

GENERATORS = {
    "xor": (lambda dtype: datasets.xor(dtype), (4, 2), (4, 1)),
    "parity": (lambda dtype: datasets.parity(5, dtype), (32, 5), (32, 1)),
    "symmetry": (lambda dtype: datasets.symmetry(6, dtype), (64, 6), (64, 1)),
    "encoder": (lambda dtype: datasets.encoder(8, dtype), (8, 8), (8, 8)),
    "two_spirals": (lambda dtype: datasets.two_spirals(dtype=dtype), (194, 2), (194, 1)),
    "two_spirals_noisy": (
        lambda dtype: datasets.two_spirals(10, noise=0.1, dtype=dtype), (20, 2), (20, 1)),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_shapes_dtypes_and_layout(name, dtype):
    make, x_shape, y_shape = GENERATORS[name]
    X, y = make(dtype)
    assert X.shape == x_shape and y.shape == y_shape
    assert X.dtype == np.dtype(dtype) and y.dtype == np.dtype(dtype)
    assert X.flags.c_contiguous and y.flags.c_contiguous
    assert X.flags.writeable and y.flags.writeable


@pytest.mark.parametrize("dtype", ["float32", np.float32, np.dtype("float64"), float])
def test_dtype_accepts_numpy_spellings(dtype):
    X, _ = datasets.xor(dtype)
    assert X.dtype == np.dtype(dtype)


# --- digits --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_digits_shapes_and_dtypes(dtype):
    X, y = datasets.load_digits(dtype=dtype)
    assert X.shape == (N_DIGITS, 64) and X.dtype == np.dtype(dtype) and X.flags.c_contiguous
    assert y.shape == (N_DIGITS,) and y.dtype == np.int64 and y.flags.c_contiguous


def test_digits_scaled_values_lie_in_unit_interval():
    X, _ = datasets.load_digits()
    assert X.min() == 0.0 and X.max() == 1.0


def test_digits_raw_values_are_integer_counts_and_scaling_divides_by_16():
    raw, _ = datasets.load_digits(scale=False)
    scaled, _ = datasets.load_digits(scale=True)
    assert raw.min() == 0 and raw.max() == 16
    np.testing.assert_array_equal(raw, np.round(raw))
    np.testing.assert_array_equal(scaled, raw / 16)


def test_digits_labels_cover_all_ten_classes():
    _, y = datasets.load_digits()
    counts = np.bincount(y)
    assert counts.size == 10 and np.all(counts > 0)
    assert counts.sum() == N_DIGITS
    assert y.min() == 0 and y.max() == 9


def test_digits_match_file_read_with_csv_module():
    rows = _read_digits_with_csv_module()
    X, y = datasets.load_digits(scale=False)
    assert len(rows) == N_DIGITS
    assert y[0] == rows[0][64]
    np.testing.assert_array_equal(X[0], rows[0][:64])
    np.testing.assert_array_equal(y, [row[64] for row in rows])
    np.testing.assert_array_equal(X, [row[:64] for row in rows])


def test_digits_each_call_returns_fresh_arrays():
    X, y = datasets.load_digits()
    X[:] = -1.0
    y[:] = -1
    X2, y2 = datasets.load_digits()
    assert X2.min() == 0.0 and y2.min() == 0


# --- train_test_split ----------------------------------------------------------------------

def _labelled_rows(n=103, n_classes=4):
    """Rows whose first column is a unique id, so every sample can be traced through a split."""
    rng = np.random.default_rng(123)
    X = np.column_stack((np.arange(n), rng.normal(size=(n, 3))))
    y = rng.integers(0, n_classes, size=n)
    return X, y


@pytest.mark.parametrize(
    "test_size, n_test", [(0.25, 450), (0.5, 899), (0.1, 180), (300, 300), (1, 1)])
def test_split_sizes(test_size, n_test):
    X, y = datasets.load_digits()
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, test_size=test_size)
    assert X_test.shape == (n_test, 64) and y_test.shape == (n_test,)
    assert X_train.shape == (N_DIGITS - n_test, 64) and y_train.shape == (N_DIGITS - n_test,)


def test_split_fraction_is_not_inflated_by_rounding_error():
    X = np.arange(10)
    _, X_test, _, _ = datasets.train_test_split(X, X, test_size=0.7)  # 0.7 * 10 = 7.000000000000001
    assert len(X_test) == 7


@pytest.mark.parametrize("stratify", [True, False])
def test_split_is_disjoint_and_complete(stratify):
    X, y = _labelled_rows()
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, stratify=stratify)
    train_ids, test_ids = set(X_train[:, 0]), set(X_test[:, 0])
    assert not train_ids & test_ids
    assert train_ids | test_ids == set(X[:, 0])
    assert _rows_as_multiset(np.concatenate((X_train, X_test))) == _rows_as_multiset(X)
    # each row keeps its own label
    for part_X, part_y in ((X_train, y_train), (X_test, y_test)):
        np.testing.assert_array_equal(part_y, y[part_X[:, 0].astype(int)])


def test_split_recombines_digits_as_multiset():
    X, y = datasets.load_digits(scale=False)
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, seed=7)
    whole = np.column_stack((X, y))
    parts = np.concatenate((np.column_stack((X_train, y_train)), np.column_stack((X_test, y_test))))
    assert _rows_as_multiset(parts) == _rows_as_multiset(whole)


@pytest.mark.parametrize("test_size", [0.25, 0.33, 0.5, 37])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_stratification_keeps_class_proportions(test_size, seed):
    X, y = datasets.load_digits()
    _, _, y_train, y_test = datasets.train_test_split(X, y, test_size=test_size, seed=seed)
    class_counts = np.bincount(y, minlength=10)
    for counts, part_size in ((np.bincount(y_test, minlength=10), len(y_test)),
                              (np.bincount(y_train, minlength=10), len(y_train))):
        expected = class_counts * part_size / N_DIGITS
        assert np.all(np.abs(counts - expected) <= 1), (counts, expected)


def test_split_stratification_of_unbalanced_labels():
    y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    X = np.arange(y.size)
    _, _, _, y_test = datasets.train_test_split(X, y, test_size=0.2)
    counts = np.bincount(y_test, minlength=3)
    assert counts.sum() == 20
    assert np.all(np.abs(counts - np.array([90, 9, 1]) * 0.2) <= 1)


def test_split_same_seed_same_split_different_seed_different():
    X, y = datasets.load_digits()
    first = datasets.train_test_split(X, y, seed=3)
    again = datasets.train_test_split(X, y, seed=3)
    other = datasets.train_test_split(X, y, seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])


def test_split_without_stratification_and_for_float_targets():
    X, y = datasets.parity(6)  # y is (64, 1) float: split without stratification
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, test_size=16, seed=1)
    assert X_train.shape == (48, 6) and X_test.shape == (16, 6)
    assert y_train.shape == (48, 1) and y_test.shape == (16, 1)
    assert _rows_as_multiset(np.concatenate((X_train, X_test))) == _rows_as_multiset(X)
    Xs, ys = _labelled_rows()
    a = datasets.train_test_split(Xs, ys, stratify=False, seed=5)
    b = datasets.train_test_split(Xs, ys, stratify=False, seed=5)
    np.testing.assert_array_equal(a[1], b[1])


def test_split_keeps_dtypes_and_returns_contiguous_copies():
    X, y = datasets.load_digits(dtype="float32")
    parts = datasets.train_test_split(X, y)
    assert [p.dtype for p in parts] == [np.float32, np.float32, np.int64, np.int64]
    assert all(p.flags.c_contiguous and p.flags.owndata for p in parts)


def test_split_accepts_lists():
    X_train, X_test, y_train, y_test = datasets.train_test_split(
        [[0], [1], [2], [3]], [0, 1, 0, 1], test_size=2)
    assert X_train.shape == (2, 1) and X_test.shape == (2, 1)
    assert sorted(y_test.tolist()) == [0, 1]


# --- binary-pattern tasks ------------------------------------------------------------------

def test_xor_values():
    X, y = datasets.xor()
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y[:, 0], [int(a) ^ int(b) for a, b in X])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10])
def test_parity_against_independent_count(n):
    X, y = datasets.parity(n)
    assert X.shape == (2 ** n, n) and y.shape == (2 ** n, 1)
    for i, (row, target) in enumerate(zip(X.tolist(), y[:, 0].tolist())):
        assert row == [float(bit) for bit in format(i, f"0{n}b")]  # counting order, MSB first
        assert target == float(sum(row) % 2)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 10])
def test_symmetry_against_independent_check(n):
    X, y = datasets.symmetry(n)
    assert X.shape == (2 ** n, n) and y.shape == (2 ** n, 1)
    for i, (row, target) in enumerate(zip(X.tolist(), y[:, 0].tolist())):
        assert row == [float(bit) for bit in format(i, f"0{n}b")]
        assert target == float(row == row[::-1])
    assert y.sum() == 2 ** math.ceil(n / 2)


def test_symmetry_six_bits_has_eight_positives():
    X, y = datasets.symmetry(6)
    assert X.shape == (64, 6)
    assert int(y.sum()) == 8


@pytest.mark.parametrize("n", [1, 2, 8, 10])
def test_encoder_is_identity(n):
    X, Y = datasets.encoder(n)
    np.testing.assert_array_equal(X, np.eye(n))
    np.testing.assert_array_equal(Y, X)
    assert not np.shares_memory(X, Y)


def test_largest_allowed_parity():
    X, y = datasets.parity(20, dtype="float32")
    assert X.shape == (2 ** 20, 20) and y.shape == (2 ** 20, 1)
    assert y.sum() == 2 ** 19


# --- two spirals ---------------------------------------------------------------------------

def test_two_spirals_classic_points():
    X, y = datasets.two_spirals()
    i = np.arange(97)
    radius = 6.5 * (104 - i) / 104
    angle = i * np.pi / 16
    np.testing.assert_array_equal(X[:97, 0], radius * np.sin(angle))
    np.testing.assert_array_equal(X[:97, 1], radius * np.cos(angle))
    np.testing.assert_array_equal(y[:97], 0.0)
    np.testing.assert_array_equal(y[97:], 1.0)


@pytest.mark.parametrize("n", [1, 2, 5, 97, 200])
def test_two_spirals_classes_are_point_reflections(n):
    X, y = datasets.two_spirals(n)
    assert X.shape == (2 * n, 2)
    np.testing.assert_array_equal(X[n:], -X[:n])
    np.testing.assert_array_equal(y[:, 0], [0.0] * n + [1.0] * n)
    radii = np.hypot(X[:, 0], X[:, 1])
    assert np.all(radii > 0)
    assert radii[0] == pytest.approx(6.5)
    if n > 1:
        assert radii[n - 1] == pytest.approx(0.5)  # the spiral ends after three turns
        assert np.all(np.diff(radii[:n]) < 0)


def test_two_spirals_noise_is_seeded():
    clean, _ = datasets.two_spirals()
    a, _ = datasets.two_spirals(noise=0.2, seed=1)
    b, _ = datasets.two_spirals(noise=0.2, seed=1)
    c, _ = datasets.two_spirals(noise=0.2, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.1 < np.std(a - clean) < 0.3


# --- bad arguments -------------------------------------------------------------------------

X4, Y4 = np.zeros((4, 2)), np.array([0, 1, 0, 1])
split = datasets.train_test_split
DTYPE_MSG = r"^dtype must be 'float32' or 'float64'"

BAD_CALLS = [
    # (call, exception, message pattern)
    (lambda: datasets.parity(0), ValueError, r"^n must be an int in 1\.\.20; got 0$"),
    (lambda: datasets.parity(21), ValueError, r"^n must be an int in 1\.\.20; got 21$"),
    (lambda: datasets.parity(3.0), TypeError, r"^n must be an int in 1\.\.20; got float 3\.0$"),
    (lambda: datasets.parity(True), TypeError, r"^n must be an int"),
    (lambda: datasets.parity("4"), TypeError, r"^n must be an int"),
    (lambda: datasets.symmetry(0), ValueError, r"^n must be an int in 1\.\.20"),
    (lambda: datasets.symmetry(21), ValueError, r"^n must be an int in 1\.\.20"),
    (lambda: datasets.symmetry(2.5), TypeError, r"^n must be an int"),
    (lambda: datasets.encoder(0), ValueError, r"^n must be an int >= 1; got 0$"),
    (lambda: datasets.encoder(None), TypeError, r"^n must be an int >= 1; got NoneType None$"),
    (lambda: datasets.xor("float16"), ValueError, DTYPE_MSG + r"; got float16$"),
    (lambda: datasets.xor("int64"), ValueError, DTYPE_MSG + r"; got int64$"),
    (lambda: datasets.xor("nonsense"), TypeError, DTYPE_MSG + r".*not a NumPy dtype"),
    (lambda: datasets.xor(None), TypeError, DTYPE_MSG + r"; got None$"),
    (lambda: datasets.parity(3, dtype="int32"), ValueError, DTYPE_MSG),
    (lambda: datasets.symmetry(3, dtype=np.float16), ValueError, DTYPE_MSG),
    (lambda: datasets.encoder(3, dtype="complex128"), ValueError, DTYPE_MSG),
    (lambda: datasets.load_digits(dtype="uint8"), ValueError, DTYPE_MSG),
    (lambda: datasets.load_digits(scale=1), TypeError, r"^scale must be True or False"),
    (lambda: datasets.load_digits(scale="yes"), TypeError, r"^scale must be True or False"),
    (lambda: datasets.two_spirals(0), ValueError, r"^n_per_spiral must be an int >= 1; got 0$"),
    (lambda: datasets.two_spirals(9.7), TypeError, r"^n_per_spiral must be an int >= 1"),
    (lambda: datasets.two_spirals(noise=-0.1), ValueError, r"^noise must be a finite number >= 0"),
    (lambda: datasets.two_spirals(noise=float("nan")), ValueError, r"^noise must be a finite"),
    (lambda: datasets.two_spirals(noise="0.1"), TypeError, r"^noise must be a real number"),
    (lambda: datasets.two_spirals(seed=-1), ValueError, r"^seed must be an int >= 0; got -1$"),
    (lambda: datasets.two_spirals(seed=1.5), TypeError, r"^seed must be an int >= 0"),
    (lambda: datasets.two_spirals(dtype="float16"), ValueError, DTYPE_MSG),
    (lambda: split(np.zeros((5, 2)), Y4), ValueError,
     r"^X and y must have the same length; got len\(X\)=5 and len\(y\)=4$"),
    (lambda: split(X4, Y4, test_size=0.0), ValueError,
     r"^test_size as a fraction must be in \(0, 1\); got 0\.0$"),
    (lambda: split(X4, Y4, test_size=1.0), ValueError, r"^test_size as a fraction must be in"),
    (lambda: split(X4, Y4, test_size=-0.5), ValueError, r"^test_size as a fraction must be in"),
    (lambda: split(X4, Y4, test_size=float("nan")), ValueError, r"^test_size as a fraction"),
    (lambda: split(X4, Y4, test_size=0.99), ValueError,
     r"^test_size=0\.99 gives 4 test samples out of 4"),
    (lambda: split(X4, Y4, test_size=0), ValueError,
     r"^test_size as a count must be in 1\.\.3 for 4 samples; got 0$"),
    (lambda: split(X4, Y4, test_size=4), ValueError, r"^test_size as a count must be in 1\.\.3"),
    (lambda: split(X4, Y4, test_size="0.25"), TypeError,
     r"^test_size must be a float in \(0, 1\) or an int count"),
    (lambda: split(X4, Y4, test_size=True), TypeError, r"^test_size must be a float"),
    (lambda: split(X4, Y4, seed=-3), ValueError, r"^seed must be an int >= 0; got -3$"),
    (lambda: split(X4, Y4, seed="0"), TypeError, r"^seed must be an int >= 0"),
    (lambda: split(X4, Y4, stratify=1), TypeError, r"^stratify must be True or False"),
    (lambda: split(np.float64(1.0), Y4), ValueError, r"^X must have at least one dimension"),
    (lambda: split(X4, 3), ValueError, r"^y must have at least one dimension"),
    (lambda: split(X4[:1], Y4[:1]), ValueError, r"^X and y need at least 2 samples"),
]


@pytest.mark.parametrize("call, exception, pattern", BAD_CALLS)
def test_bad_arguments_raise_naming_the_argument(call, exception, pattern):
    with pytest.raises(exception, match=pattern) as info:
        call()
    assert type(info.value) is exception


def test_keyword_only_arguments():
    with pytest.raises(TypeError):
        datasets.load_digits(False)  # scale is keyword-only
    with pytest.raises(TypeError):
        datasets.train_test_split(X4, Y4, 0.5)  # test_size is keyword-only
