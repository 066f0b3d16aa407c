"""The GEMM's fused epilogue (kernels.dense_forward and kernels.hidden_delta) against the plain
kernels run one after the other: the same bytes, on every path of the blocked GEMM."""

import numpy as np
import pytest

import backprop as bp
import reference as ref
from conftest import ALWAYS_IN_BURST_NS, tolerances

K = bp.kernels

ACTIVATION_CASES = [(name, None) for name in ref.ACTIVATIONS] + [("leaky_relu", 0.2),
                                                                  ("elu", 0.5)]

# (m, k, n): the register tiles (6 x 16 float and 6 x 8 double for avx2 and generic, 8 x 32 and
# 8 x 16 for avx512) and one more or less in m and n; a
# k of one, of two k blocks (KC = 256) and of a partial second one, where the bias must start
# the first block and the activation end the last; m <= 64 with a small B (read in place) and
# m = 65 (packed); n within one register tile (A read in place); primes; last row panels of 1
# to 3 rows, whose tiles in full column panels run two at a time on the 6-row tiles (m = 3, 8,
# 9, 32 and 97; 32 across two k blocks); row, column and k blocks at once (141 x 1059 x 257:
# on one thread the AVX-512 tiles then pack each k block of A once for both column blocks).
DENSE_SHAPES = [(1, 1, 1), (5, 7, 15), (6, 3, 16), (7, 9, 17), (13, 1, 9), (6, 256, 8),
                (11, 257, 31), (64, 256, 256), (65, 256, 256), (64, 300, 7), (97, 131, 113),
                (3, 600, 40), (8, 5, 32), (7, 3, 31), (9, 11, 33), (16, 9, 15), (17, 4, 65),
                (32, 257, 67), (141, 257, 1059)]


def _shape_id(shape):
    return "x".join(map(str, shape))


def _dense_operands(dtype, m, k, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (m, k)).astype(dtype)
    W = rng.uniform(-1, 1, (k, n)).astype(dtype)
    b = rng.uniform(-1, 1, n).astype(dtype)
    return X, W, b


def _plain_forward(X, W, b, name, alpha):
    """U from a GEMM onto the broadcast bias (beta = 1), then the activation in its own pass."""
    u = np.zeros((X.shape[0], W.shape[1]), X.dtype) if b is None else np.tile(b, (X.shape[0], 1))
    K.gemm(X, W, beta=0.0 if b is None else 1.0, out=u)
    return u, K.activation_forward(u, name, alpha=alpha)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=_shape_id)
def test_dense_forward_gives_the_bytes_of_the_plain_kernels(gemm_isa, dtype, threads, shape):
    threads(1)
    m, k, n = shape
    X, W, b = _dense_operands(dtype, m, k, n, seed=m + k + n)
    for name, alpha in ACTIVATION_CASES:
        for bias in (b, None):
            u, y = K.dense_forward(X, W, bias, name, alpha=alpha)
            plain_u, plain_y = _plain_forward(X, W, bias, name, alpha)
            assert u.dtype == dtype and y.dtype == dtype and u.shape == (m, n)
            np.testing.assert_array_equal(u, plain_u, err_msg=f"{name} U")
            np.testing.assert_array_equal(y, plain_y, err_msg=f"{name} Y")


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=_shape_id)
def test_hidden_delta_gives_the_bytes_of_the_plain_kernels(gemm_isa, dtype, threads, shape):
    threads(1)
    m, n_next, width = shape  # delta is m x n_next, W is width x n_next, u is m x width
    rng = np.random.default_rng(m * n_next + width)
    delta = rng.uniform(-1, 1, (m, n_next)).astype(dtype)
    W = rng.uniform(-1, 1, (width, n_next)).astype(dtype)
    u = (rng.standard_normal((m, width)) * 3).astype(dtype)
    for name, alpha in ACTIVATION_CASES:
        got = K.hidden_delta(delta, W, u, name, alpha=alpha)
        plain = K.activation_backward(K.gemm(delta, W, trans_b=True), u, name, alpha=alpha)
        assert got.dtype == dtype and got.shape == (m, width)
        np.testing.assert_array_equal(got, plain, err_msg=name)


def test_dense_kernels_match_the_reference(dtype):
    X, W, b = _dense_operands(dtype, 37, 45, 29, seed=5)
    u, y = K.dense_forward(X, W, b, "tanh")
    assert np.allclose(u, ref.gemm(X, W) + b, **tolerances(dtype))
    assert np.allclose(y, np.tanh(ref.gemm(X, W) + b), **tolerances(dtype))
    delta = np.random.default_rng(6).uniform(-1, 1, (37, 11)).astype(dtype)
    W_next = np.random.default_rng(7).uniform(-1, 1, (29, 11)).astype(dtype)
    expected = ref.gemm(delta, W_next, trans_b=True) * ref.activation_derivative("tanh", u)
    assert np.allclose(K.hidden_delta(delta, W_next, u, "tanh"), expected, **tolerances(dtype))


# From gemm_parallel_min_flops (2^20 float, 2^19 double): slabs of C per thread; from
# kGemmSharedMinFlops (2^27), on the AVX2 and portable paths: threads share packed blocks and
# split the tiles of one block (the AVX-512 path keeps to slabs: config.hpp, SHARE_PACKED_BLOCKS).
@pytest.mark.parametrize("shape", [(300, 500, 700), (301, 530, 900)], ids=["slabs", "shared"])
def test_dense_kernels_bytes_do_not_depend_on_thread_count(gemm_isa, dtype, threads, shape):
    m, k, n = shape
    X, W, b = _dense_operands(dtype, m, k, n, seed=11)
    delta = np.random.default_rng(12).uniform(-1, 1, (m, n)).astype(dtype)
    results = []
    for count in (1, 2, 3):
        threads(count)
        u, y = K.dense_forward(X, W, b, "gelu")
        results.append((u, y, K.hidden_delta(delta, W, X, "gelu")))  # u: any m x k
    for other in results[1:]:
        for first, second in zip(results[0], other):
            np.testing.assert_array_equal(first, second)


# (m, k, n) that split in a burst on every path (from 2^18 multiply-adds), and their k blocks
# (KC = 256, balanced): one row; one block (by slabs on any thread count); two blocks (by slabs
# on three threads); 3 x 171, 5 x 207 (k prime) and 12 x 250, which do not divide evenly
# between the threads; 2 x 150 with A read in place; tiny's first layer (4 x 196).
K_SPLIT_SHAPES = [(1, 2063, 131), (64, 256, 64), (5, 257, 211), (33, 512, 31), (7, 513, 97),
                  (13, 1031, 29), (3, 3000, 33), (64, 300, 97), (32, 784, 128)]


@pytest.mark.parametrize("shape", K_SPLIT_SHAPES, ids=_shape_id)
def test_dense_forward_split_by_k_blocks_gives_the_bytes_of_one_thread(gemm_isa, dtype, threads,
                                                                       call_burst, shape):
    m, k, n = shape
    X, W, b = _dense_operands(dtype, m, k, n, seed=m * k + n)
    call_burst(window_ns=ALWAYS_IN_BURST_NS)
    for name, alpha in [("relu", None), ("tanh", None), ("elu", 0.5), ("identity", None)]:
        for bias in (b, None):
            threads(1)
            expected = K.dense_forward(X, W, bias, name, alpha=alpha)
            for count in (2, 3):
                threads(count)
                # a call on record puts the next in a burst, where every shape here splits
                bp._core.gemm_thread_count(m, n, k, dtype == np.float64)
                assert bp._core.gemm_thread_count(m, n, k, dtype == np.float64) == count
                splits_before = bp._core.gemm_k_split_count()
                got = K.dense_forward(X, W, bias, name, alpha=alpha, split="k_blocks")
                took_k_blocks = bp._core.gemm_k_split_count() - splits_before
                assert took_k_blocks == bp._core.gemm_k_split_applies(m, k, count)
                for part, got_part, expected_part in zip("UY", got, expected):
                    assert got_part.tobytes() == expected_part.tobytes(), \
                        f"{name}, bias {bias is not None}: {part} on {count} threads"
    u, _ = K.dense_forward(X, W, b, "identity", split="k_blocks")
    np.testing.assert_allclose(u, ref.gemm(X, W) + b, **tolerances(dtype, k))


def test_k_blocks_split_where_the_products_are_small_beside_the_weights():
    # gemm_k_split_applies: as many k blocks (KC = 256, balanced) as threads, and the other
    # threads' blocks' products (m x n each) at most a third of op(B) (k x n): 3 m others <= k.
    applies = bp._core.gemm_k_split_applies
    assert applies(32, 784, 2) and applies(32, 784, 3)  # 4 blocks of 196: 2, then 3, others
    assert applies(130, 784, 2) and not applies(131, 784, 2)  # 3 x 130 x 2 = 780 <= 784
    assert applies(128, 784, 2) and not applies(128, 784, 3)  # mnist's first layer: 2 others
    assert not applies(1, 256, 2) and not applies(1, 512, 3)  # fewer blocks than threads
    assert applies(170, 512, 2) and not applies(171, 512, 2)
    assert not applies(32, 784, 1) and not applies(0, 784, 2) and not applies(32, 0, 2)
    # A network's layers ask for two blocks at least (min_k_blocks), each 64 deep or more: a
    # 256-deep product of 64 rows then splits in two blocks of 128, one of 86 rows does not
    # (3 x 86 > 256), and under 128 deep there is one block.
    assert applies(64, 256, 2, 2) and not applies(64, 256, 2)
    assert applies(85, 256, 2, 2) and not applies(86, 256, 2, 2)
    assert not applies(64, 256, 3, 2)
    assert applies(32, 128, 2, 2) and not applies(1, 127, 2, 2)
    assert applies(32, 784, 2, 2) == applies(32, 784, 2)  # KC's four blocks are already two
    with pytest.raises(ValueError, match="min_k_blocks"):
        applies(64, 256, 2, 0)


def test_dense_forward_nan_is_the_one_threads_with_k_blocks(dtype, threads, call_burst):
    # A NaN in U from the first k block meets a NaN of the other sign (inf - inf) from the third:
    # the one-thread write-back keeps the first, and so must the block products' merge.
    m, k, n = 8, 1024, 40
    X, W, _ = _dense_operands(dtype, m, k, n, seed=3)
    X[:, 10] = np.nan
    X[:, 700] = X[:, 701] = np.inf
    W[700], W[701] = 1.0, -1.0
    call_burst(window_ns=ALWAYS_IN_BURST_NS)
    threads(1)
    expected, _ = K.dense_forward(X, W)
    threads(2)
    bp._core.gemm_thread_count(m, n, k, dtype == np.float64)
    splits_before = bp._core.gemm_k_split_count()
    got, _ = K.dense_forward(X, W, split="k_blocks")
    assert bp._core.gemm_k_split_count() == splits_before + 1
    assert np.isnan(got).all() and got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("split", ["rows", "K_BLOCKS", None, 2])
def test_dense_forward_refuses_an_unknown_split(split):
    X, W, b = _dense_operands(np.float32, 2, 3, 4, seed=0)
    with pytest.raises(ValueError, match="split must be one of"):
        K.dense_forward(X, W, b, "relu", split=split)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_dense_forward_with_no_inputs_gives_the_bias(dtype, bias):
    b = np.array([0.5, -2.0, 0.0], dtype) if bias else None
    u, y = K.dense_forward(np.zeros((4, 0), dtype), np.zeros((0, 3), dtype), b, "relu")
    expected = np.tile(b, (4, 1)) if bias else np.zeros((4, 3), dtype)
    np.testing.assert_array_equal(u, expected)
    np.testing.assert_array_equal(y, np.maximum(expected, 0))


def test_dense_forward_result_dtype():
    X = np.ones((2, 3), np.float32)
    assert K.dense_forward(X, np.ones((3, 4), np.float32))[0].dtype == np.float32
    assert K.dense_forward(X, np.ones((3, 4)), np.ones(4, np.float32))[1].dtype == np.float64
    assert K.dense_forward([[1, 2]], [[1], [2]], [3])[0].tolist() == [[8.0]]
