"""Tests for backprop.kernels: every native kernel against the NumPy oracle, tests/reference.py."""

import math
import platform

import numpy as np
import pytest
from numpy.testing import assert_allclose

import backprop as bp
from backprop._arrays import empty_on_cache_lines
import reference as ref
from conftest import ALWAYS_IN_BURST_NS, tolerances

K = bp.kernels

@pytest.fixture(autouse=True)
def _one_thread(threads):
    """Compare with the oracle on one thread; the tests that want more threads ask for them.

    NumPy's OpenBLAS and our OpenMP both keep their worker threads spinning for a while after a
    call, so alternating the two (kernel, reference, kernel, ...) on a machine with few cores
    costs milliseconds per switch. That N threads give the same bytes as one is checked below.
    """
    threads(1)


# Elementwise kernels split work over threads from this many elements on (config.hpp); the
# tests above it run on two threads, where no BLAS call sits between kernel and reference.
ELEMENTWISE_PARALLEL_MIN = 1 << 15


def _threads_for(threads, size):
    threads(2 if size >= ELEMENTWISE_PARALLEL_MIN else 1)


# Every (trans_a, trans_b); the GEMM tests loop over them inside one test, which keeps the
# number of collected tests (and the per-test overhead) down.
TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]


def _shape_id(shape):
    return "x".join(map(str, shape))


def _uniform(rng, shape, dtype):
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


def _gemm_operands(rng, m, n, k, trans_a, trans_b, dtype):
    """A and B stored so that op(A) is m x k and op(B) is k x n."""
    A = _uniform(rng, (k, m) if trans_a else (m, k), dtype)
    B = _uniform(rng, (n, k) if trans_b else (k, n), dtype)
    return A, B


# --------------------------------------------------------------------------------------------
# gemm: shapes

# The GEMM's register tile and cache blocks, and the most rows for which B is read in place
# (kGemmDirectBMaxRows) when B has at most DIRECT_BYTES (kGemmDirectBMaxBytes) and its rows lie
# at most DIRECT_ROW_BYTES apart (kGemmDirectBMaxRowBytes), and the most column panels for which
# A is read in place (DIRECT_A_PANELS, kGemmDirectAMaxPanels), copied from
# cpp/include/backprop/config.hpp (GemmBlocking, and GemmBlocking512 for the avx512 path); ITEM
# is the dtype's size in bytes and LANES the values in one vector of the path; NARROW_WIDTH is
# the rows of one block of the narrow kernel (gemm_dispatch.cpp, select_narrow_kernel). A
# GEMM that reads A in place runs tiles of MR_IN_PLACE rows and blocks of MC_IN_PLACE; on the
# AVX-512 path (GemmBlocking512InPlaceA) it cuts each block into panels of 14, CUT (8) and CUT /
# 2 (4) rows where it can, each read in place (a block of an odd number of rows, or of 2, 6 or
# 10, keeps a lower last panel, packed); the AVX-512 kernel's tiles of 4 and 8 rows also run the
# last panels of a packed A that are that low. A transposed A is read in place up to
# DIRECT_AT_PANELS column panels (kGemmDirectTransposedAMaxPanels512).
_SHARED_LIMITS = {"DIRECT": 64, "DIRECT_BYTES": 512 << 10, "DIRECT_ROW_BYTES": 512,
                  "DIRECT_A_PANELS": 16}
_BLOCKING_256 = {
    np.dtype(np.float32): {"MR": 6, "NR": 16, "MC": 144, "KC": 256, "NC": 4080, "ITEM": 4,
                           "LANES": 8, "MR_IN_PLACE": 6, "MC_IN_PLACE": 144,
                           "DIRECT_AT_PANELS": 16, "NARROW_WIDTH": 16, **_SHARED_LIMITS},
    np.dtype(np.float64): {"MR": 6, "NR": 8, "MC": 96, "KC": 256, "NC": 4080, "ITEM": 8,
                           "LANES": 4, "MR_IN_PLACE": 6, "MC_IN_PLACE": 96,
                           "DIRECT_AT_PANELS": 16, "NARROW_WIDTH": 8, **_SHARED_LIMITS},
}
_BLOCKING_512 = {
    np.dtype(np.float32): {"MR": 14, "NR": 32, "MC": 140, "KC": 256, "NC": 1024, "ITEM": 4,
                           "LANES": 16, "MR_IN_PLACE": 14, "MC_IN_PLACE": 140,
                           "DIRECT_AT_PANELS": 4, "NARROW_WIDTH": 16, **_SHARED_LIMITS},
    np.dtype(np.float64): {"MR": 14, "NR": 16, "MC": 112, "KC": 256, "NC": 512, "ITEM": 8,
                           "LANES": 8, "MR_IN_PLACE": 14, "MC_IN_PLACE": 112,
                           "DIRECT_AT_PANELS": 4, "NARROW_WIDTH": 8, **_SHARED_LIMITS},
}


def blocking(isa, dtype):
    """The tile and block sizes of GEMM path `isa` in `dtype`."""
    return (_BLOCKING_512 if isa == "avx512" else _BLOCKING_256)[np.dtype(dtype)]


def direct_b_columns(b, columns):
    """columns, or fewer: as many as B's rows may hold and still be read in place."""
    return min(columns, b["DIRECT_ROW_BYTES"] // b["ITEM"])


def packed_a_columns(b, extra=5):
    """A column count with more panels than DIRECT_A_PANELS: A is packed, in MR-row panels."""
    return (b["DIRECT_A_PANELS"] + 1) * b["NR"] + extra


EDGE_SIZES = (1, 2, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 255)


def _edge_shapes():
    """Each edge size in each of m, n, k, the other two at (17, 9) and at (1, 64)."""
    shapes = set()
    for size in EDGE_SIZES:
        for first, second in ((17, 9), (1, 64)):
            shapes.update({(size, first, second), (second, size, first), (first, second, size)})
    shapes.update({(97, 131, 113), (131, 113, 97), (211, 89, 263)})  # primes
    return sorted(shapes)


EDGE_SHAPES = _edge_shapes()

# (m, n, k) around the tile and block sizes of the dtype under test, one boundary per line
# with the other dimensions off any boundary; the last lines cross several at once.
BLOCKING_SHAPES = [
    pytest.param(lambda b: (b["MR"] - 1, 2 * b["NR"] + 3, 31), id="MR-1"),
    pytest.param(lambda b: (b["MR"] + 1, 2 * b["NR"] + 3, 31), id="MR+1"),
    pytest.param(lambda b: (2 * b["MR"] + 1, b["NR"] - 1, 31), id="NR-1"),
    pytest.param(lambda b: (2 * b["MR"] + 1, b["NR"], 31), id="NR"),
    pytest.param(lambda b: (2 * b["MR"] + 1, b["NR"] + 1, 31), id="NR+1"),
    # A last column panel at most one vector (LANES) wide has a kernel of its own that splits
    # the k steps into even and odd sums: widths LANES - 1, LANES and LANES + 1, odd and even k.
    pytest.param(lambda b: (2 * b["MR"] + 1, b["NR"] + b["LANES"] - 1, 31), id="NR+LANES-1"),
    pytest.param(lambda b: (2 * b["MR"] + 1, b["NR"] + b["LANES"], 32), id="NR+LANES"),
    pytest.param(lambda b: (2 * b["MR"] + 1, b["NR"] + b["LANES"] + 1, 31), id="NR+LANES+1"),
    pytest.param(lambda b: (b["MR"] + 1, b["LANES"], 1), id="LANES,k=1"),
    pytest.param(lambda b: (19, b["NR"] + b["LANES"] - 1, b["KC"] + 1), id="NR+LANES-1,KC+1"),
    # A last row panel of one to four rows beyond whole panels of MR_IN_PLACE rows, A read in
    # place (on the 6-row tiles most of these blocks are cut into panels of 6 and 5 rows instead,
    # and on the AVX-512 ones those of an even number of rows into panels of 14, 8 and 4): full
    # and partial column panels, odd and even k, and across a k block; a block of 4 rows alone.
    pytest.param(lambda b: (2 * b["MR_IN_PLACE"] + 2, 2 * b["NR"], 31), id="2MR+2,2NR"),
    pytest.param(lambda b: (2 * b["MR_IN_PLACE"] + 1, 2 * b["NR"] - 3, 32), id="2MR+1,2NR-3"),
    pytest.param(lambda b: (b["MR_IN_PLACE"] + 2, b["NR"] + b["LANES"] + 1, b["KC"] + 1),
                 id="MR+2,NR+LANES+1,KC+1"),
    pytest.param(lambda b: (b["MR_IN_PLACE"] + 3, 2 * b["NR"], 31), id="MR+3"),
    pytest.param(lambda b: (b["MR_IN_PLACE"] + 4, 2 * b["NR"] + 1, 31), id="MR+4"),
    pytest.param(lambda b: (4, 2 * b["NR"] + 1, 31), id="4rows"),
    pytest.param(lambda b: (4, packed_a_columns(b), 31), id="packed,4rows"),
    # With few column panels A is read in place, in panels of MR_IN_PLACE rows ...
    pytest.param(lambda b: (b["MR_IN_PLACE"] - 1, 2 * b["NR"] + 3, 31), id="MR_IN_PLACE-1"),
    pytest.param(lambda b: (b["MR_IN_PLACE"] + 1, 2 * b["NR"] + 3, 31), id="MR_IN_PLACE+1"),
    pytest.param(lambda b: (b["MC_IN_PLACE"] - 1, 37, 29), id="MC_IN_PLACE-1"),
    pytest.param(lambda b: (b["MC_IN_PLACE"], 37, 29), id="MC_IN_PLACE"),
    pytest.param(lambda b: (b["MC_IN_PLACE"] + 1, 37, 29), id="MC_IN_PLACE+1"),
    pytest.param(lambda b: (2 * b["MC_IN_PLACE"] + 1, 37, 29), id="2MC_IN_PLACE+1"),
    # ... on the AVX-512 path, blocks cut into panels of 14, 8 and 4 rows read in place (on the
    # 6-row tiles, panels of 6 and 5 rows, or a last one packed): 14 + 14 + 4 rows; four of 14
    # and one of 8, the last column panel one vector wide; 136 rows across a k block (float:
    # eight of 14 and three of 8); MC_IN_PLACE + 30 rows in two balanced blocks, the second
    # ending in two panels of 8; 10 rows cannot be cut, and keep a packed last panel.
    pytest.param(lambda b: (2 * b["MR_IN_PLACE"] + 4, 2 * b["NR"] + 3, 31), id="cut,2MR+4"),
    pytest.param(lambda b: (4 * b["MR_IN_PLACE"] + 8, b["NR"] + b["LANES"] - 1, 33),
                 id="cut,4MR+8,NR+LANES-1"),
    pytest.param(lambda b: (8 * b["MR_IN_PLACE"] + 24, 3 * b["NR"], b["KC"] + 1),
                 id="cut,8MR+24,KC+1"),
    pytest.param(lambda b: (b["MC_IN_PLACE"] + 30, 37, 29), id="cut,MC_IN_PLACE+30"),
    pytest.param(lambda b: (10, 2 * b["NR"] + 3, 31), id="cut,10rows"),
    # ... with more, A is packed in panels of MR rows: the row blocks, and a last row panel of
    # each tile height's rows and one more (AVX-512: 4, 8 and 14 rows; the 6-row tiles cut most
    # of these blocks into panels of 6 and 5 rows), one vector wide too.
    pytest.param(lambda b: (b["MC"] - 1, packed_a_columns(b), 29), id="MC-1"),
    pytest.param(lambda b: (b["MC"], packed_a_columns(b), 29), id="MC"),
    pytest.param(lambda b: (b["MC"] + 1, packed_a_columns(b), 29), id="MC+1"),
    pytest.param(lambda b: (b["MR"] - 1, packed_a_columns(b), 31), id="packed,MR-1"),
    pytest.param(lambda b: (b["MR"] + 1, packed_a_columns(b), 30), id="packed,MR+1"),
    pytest.param(lambda b: (b["MR"] + 4, packed_a_columns(b), 31), id="packed,MR+4"),
    pytest.param(lambda b: (b["MR"] + 5, packed_a_columns(b), 31), id="packed,MR+5"),
    pytest.param(lambda b: (b["MR"] + 5, packed_a_columns(b, b["LANES"] + 5), 30),
                 id="packed,MR+5,LANES+5"),
    pytest.param(lambda b: (b["MR"] + 7, packed_a_columns(b, b["LANES"] + 1), 31),
                 id="packed,MR+7,LANES+1"),
    pytest.param(lambda b: (b["MR"] + 11, packed_a_columns(b), 31), id="packed,MR+11"),
    pytest.param(lambda b: (2 * b["MR"] + 8, packed_a_columns(b), 31), id="packed,2MR+8"),
    pytest.param(lambda b: (2 * b["MR"] + 9, packed_a_columns(b, b["LANES"] - 1), 31),
                 id="packed,2MR+9,LANES-1"),
    pytest.param(lambda b: (b["MR"] + 3, packed_a_columns(b, 3), 1), id="packed,MR+3,k=1"),
    # A last row panel of 1 to 3 rows, in a block too low to cut into panels of MR and MR - 1
    # rows (below), runs two full column panels per call on the 6-row tiles
    # (TWO_PANEL_MAX_ROWS): a pair and nothing else, a pair and a full panel left alone, pairs
    # across k blocks beside a partial panel, and B read in place.
    pytest.param(lambda b: (1, 2 * b["NR"], 31), id="pair,1row"),
    pytest.param(lambda b: (b["MR"] + 2, 3 * b["NR"], 30), id="pair,MR+2,3NR"),
    pytest.param(lambda b: (b["MR"] + 3, 4 * b["NR"] + 5, b["KC"] + 1),
                 id="pair,MR+3,4NR+5,KC+1"),
    pytest.param(lambda b: (2 * b["MR"] + 2, direct_b_columns(b, 4 * b["NR"] + 3), b["KC"] + 3),
                 id="pair,direct-B"),
    # A block that would end in such a panel, cut into panels of MR and MR - 1 rows on the
    # 6-row tiles (SHORT_MR; 32 = 6 + 6 + 5 + 5 + 5 + 5): B and A read in place, A packed.
    pytest.param(lambda b: (5 * b["MR"] + 2, direct_b_columns(b, 4 * b["NR"] + 3), b["KC"] + 3),
                 id="cut,direct-B"),
    pytest.param(lambda b: (2 * b["MR"] + 3, 3 * b["NR"], b["KC"] + 1), id="cut,2MR+3,KC+1"),
    pytest.param(lambda b: (4 * b["MR"] + 1, packed_a_columns(b, 3), 31), id="cut,packed"),
    pytest.param(lambda b: (19, 37, b["KC"] - 1), id="KC-1"),
    pytest.param(lambda b: (19, 37, b["KC"]), id="KC"),
    pytest.param(lambda b: (19, 37, b["KC"] + 1), id="KC+1"),
    pytest.param(lambda b: (19, 37, 2 * b["KC"] + 1), id="2KC+1"),
    pytest.param(lambda b: (3, b["NC"] + 1, 5), id="NC+1"),
    # Row, column and k blocks at once, A packed (the AVX-512 tiles run column panels fastest).
    pytest.param(lambda b: (b["MC"] + 1, b["NC"] + b["NR"] + 3, b["KC"] + 1),
                 id="MC+1,NC+NR+3,KC+1"),
    # Up to DIRECT rows an untransposed B is read in place, its last partial panel packed.
    pytest.param(lambda b: (b["DIRECT"], 3 * b["NR"] + 5, b["KC"] + 3), id="DIRECT"),
    pytest.param(lambda b: (b["DIRECT"] + 1, 3 * b["NR"] + 5, b["KC"] + 3), id="DIRECT+1"),
    pytest.param(lambda b: (b["DIRECT"] - 1, 2 * b["NR"], 2 * b["KC"] + 1), id="DIRECT-1,2NR"),
    # ... unless its rows lie more than DIRECT_ROW_BYTES apart: the widest B read in place, and
    # one column more ...
    pytest.param(lambda b: (b["DIRECT"], b["DIRECT_ROW_BYTES"] // b["ITEM"], b["KC"] + 3),
                 id="DIRECT,row-bytes"),
    pytest.param(lambda b: (b["DIRECT"], b["DIRECT_ROW_BYTES"] // b["ITEM"] + 1, b["KC"] + 3),
                 id="DIRECT,row-bytes+1"),
    # ... or B is larger than DIRECT_BYTES: the longest B that stays direct, and one row more.
    pytest.param(lambda b: (b["DIRECT"], b["DIRECT_ROW_BYTES"] // b["ITEM"],
                            b["DIRECT_BYTES"] // b["DIRECT_ROW_BYTES"]), id="DIRECT,bytes"),
    pytest.param(lambda b: (b["DIRECT"], b["DIRECT_ROW_BYTES"] // b["ITEM"],
                            b["DIRECT_BYTES"] // b["DIRECT_ROW_BYTES"] + 1), id="DIRECT,bytes+1"),
    # With at most NR columns A is read in place too, its last partial row panel packed.
    pytest.param(lambda b: (2 * b["MC"] + 5, b["NR"], 2 * b["KC"] + 3), id="2MC+5,NR,2KC+3"),
    pytest.param(lambda b: (b["MC"] + 1, b["NR"] - 3, b["KC"] + 1), id="MC+1,NR-3,KC+1"),
    pytest.param(lambda b: (b["MC"] + 1, b["NR"] + 1, b["KC"] + 1), id="MC+1,NR+1,KC+1"),
    pytest.param(lambda b: (b["MC"] - 1, 2 * b["NR"] - 1, 2 * b["KC"] - 1), id="MC-1,2NR-1,2KC-1"),
    # ... and up to DIRECT_A_PANELS column panels ...
    pytest.param(lambda b: (b["MC"] + 1, b["DIRECT_A_PANELS"] * b["NR"], b["KC"] + 1),
                 id="DIRECT_A_PANELS"),
    pytest.param(lambda b: (b["MC"] + 1, b["DIRECT_A_PANELS"] * b["NR"] + 1, b["KC"] + 1),
                 id="DIRECT_A_PANELS+1"),
    pytest.param(lambda b: (b["MC"] + 1, b["DIRECT_AT_PANELS"] * b["NR"], b["KC"] + 1),
                 id="DIRECT_AT_PANELS"),
    pytest.param(lambda b: (b["MC"] + 1, b["DIRECT_AT_PANELS"] * b["NR"] + 1, b["KC"] + 1),
                 id="DIRECT_AT_PANELS+1"),
    # ... unless A is transposed and its rows (m values each) fall into fewer L1 sets than there
    # are column panels: 4 KiB apart one set, 2 KiB apart two.
    pytest.param(lambda b: (4096 // b["ITEM"], b["NR"] - 1, 2 * b["KC"] + 1), id="A-4KiB,1panel"),
    pytest.param(lambda b: (2048 // b["ITEM"], 2 * b["NR"], b["KC"] + 3), id="A-2KiB,2panels"),
    pytest.param(lambda b: (2048 // b["ITEM"], 2 * b["NR"] + 1, b["KC"] + 3), id="A-2KiB,3panels"),
]

# (alpha, beta, what out holds before the call)
ALPHA_BETA = [
    pytest.param(1.0, 0.0, "nan", id="a1-b0-nan"),
    pytest.param(-2.5, 0.0, "nan", id="a-2.5-b0-nan"),
    pytest.param(1.0, 1.0, "random", id="a1-b1"),
    pytest.param(0.75, -1.5, "random", id="a0.75-b-1.5"),
    pytest.param(0.0, 1.0, "random", id="a0-b1"),
    pytest.param(0.0, 0.5, "random", id="a0-b0.5"),
    pytest.param(0.0, 0.0, "nan", id="a0-b0-nan"),
]
# op(A) = A^T with at most 12 columns takes the narrow kernel (whole blocks of NARROW_WIDTH
# rows, then a zero-padded last block): (37, 10, 29), (16, 12, 5), (29, 11, 33), (45, 3, 7),
# (8, 4, 64).
# With more than 16 column panels A is packed (on AVX-512 into 14-row panels, whose tiles are
# then 14, 8 and 4 rows high): (30, 600, 9), (17, 523, 5), their last column panels one or two
# vectors wide, partly masked.
ALPHA_BETA_SHAPES = [(1, 1, 1), (7, 17, 9), (13, 33, 257), (23, 41, 19), (37, 10, 29),
                     (16, 12, 5), (29, 11, 33), (45, 3, 7), (8, 4, 64), (30, 600, 9),
                     (17, 523, 5), (0, 4, 3), (4, 0, 3), (4, 3, 0), (0, 0, 0)]


def _check_gemm(kernel, dtype, shape, trans_a, trans_b, alpha=1.0, beta=0.0, fill=None):
    """kernel(...) against reference.gemm; fill is None (no out), "nan" or "random"."""
    m, n, k = shape
    case = f"shape {shape} trans_a={trans_a} trans_b={trans_b} alpha={alpha} beta={beta}"
    rng = np.random.default_rng([m, n, k, trans_a, trans_b])
    A, B = _gemm_operands(rng, m, n, k, trans_a, trans_b, dtype)
    if fill is None:
        out = C = None
    else:
        C = np.full((m, n), np.nan, dtype) if fill == "nan" else _uniform(rng, (m, n), dtype)
        out = C.copy()
    got = kernel(A, B, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, out=out)
    expected = ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta,
                        C=None if beta == 0 else C)
    if out is not None:
        assert got is out, case
    assert got.dtype == dtype and got.shape == (m, n), case
    assert np.isfinite(got).all(), f"non-finite result (NaN leaked from out?): {case}"
    assert_allclose(got, expected, err_msg=case, **tolerances(dtype, k))


def _cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where there is none."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_gemm_paths_follow_the_cpu():
    # Every path the CPU has is offered (and so run by every gemm_isa test), the portable one
    # always, and the automatic choice is the widest.
    paths = K.available_isas()
    assert paths[0] == "generic" and set(paths) <= {"generic", "avx2", "avx512"}
    flags = _cpu_flags()
    if flags is not None and platform.machine() in ("x86_64", "AMD64"):
        assert ("avx2" in paths) == ({"avx2", "fma"} <= flags)
        assert ("avx512" in paths) == ({"avx2", "fma", "avx512f"} <= flags)
    K.set_gemm_isa("auto")
    assert K.gemm_isa() == paths[-1]


def test_gemm_path_names_are_checked():
    before = K.gemm_isa()
    with pytest.raises(ValueError, match="isa must be 'auto', 'generic', 'avx2' or 'avx512'"):
        K.set_gemm_isa("avx1024")
    assert K.gemm_isa() == before


def test_gemm_paths_the_cpu_lacks_are_refused():
    missing = [name for name in ("avx2", "avx512") if name not in K.available_isas()]
    if not missing:
        pytest.skip("this CPU runs every GEMM path; none to refuse")
    before = K.gemm_isa()
    for name in missing:
        with pytest.raises(ValueError, match=f"cannot run the {name} GEMM path"):
            K.set_gemm_isa(name)
        assert K.gemm_isa() == before


@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=_shape_id)
def test_gemm_edge_shapes_match_reference(gemm_isa, dtype, shape):
    assert K.gemm_isa() == gemm_isa
    for trans_a, trans_b in TRANSPOSES:
        _check_gemm(K.gemm, dtype, shape, trans_a, trans_b)


@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=_shape_id)
def test_gemm_ref_edge_shapes_match_reference(dtype, shape):
    for trans_a, trans_b in TRANSPOSES:
        _check_gemm(K.gemm_ref, dtype, shape, trans_a, trans_b)


@pytest.mark.parametrize("make_shape", BLOCKING_SHAPES)
def test_gemm_blocking_boundaries_match_reference(gemm_isa, dtype, threads, make_shape):
    # beta != 0 here too: with k > KC it must be applied once, not once per k block.
    shape = make_shape(blocking(gemm_isa, dtype))
    for trans_a, trans_b in TRANSPOSES:
        _check_gemm(K.gemm, dtype, shape, trans_a, trans_b)
        _check_gemm(K.gemm, dtype, shape, trans_a, trans_b, alpha=-0.5, beta=1.25, fill="random")
    # The split of these shapes over threads changes at the same boundaries: same bytes.
    m, n, k = shape
    A, B = _gemm_operands(np.random.default_rng(3), m, n, k, False, True, dtype)
    C = _uniform(np.random.default_rng(4), (m, n), dtype)
    results = []
    for count in (1, 2):
        threads(count)
        out = C.copy()
        results.append(K.gemm(A, B, trans_b=True, alpha=0.5, beta=-1.0, out=out).tobytes())
    assert results[0] == results[1]


@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES)
def test_gemm_gives_the_bytes_of_its_column_blocks_multiplied_apart(gemm_isa, dtype, threads,
                                                                    trans_a, trans_b):
    # Three column blocks (2 NC + NR + 3 columns), two k blocks and two row blocks on one thread:
    # the AVX-512 tiles then pack each k block of A once for all three column blocks, looping
    # over k blocks first. The first column block multiplied apart (a GEMM of one column block,
    # k blocks in the inner loop) and the rest (two blocks) must give the same bits. (Both parts
    # stay wide: a part of a few column panels may read A in place, in other tiles.)
    threads(1)
    b = blocking(gemm_isa, dtype)
    m, n, k = b["MC"] + 1, 2 * b["NC"] + b["NR"] + 3, b["KC"] + 1
    rng = np.random.default_rng(8)
    A, B = _gemm_operands(rng, m, n, k, trans_a, trans_b, dtype)
    C = _uniform(rng, (m, n), dtype)
    whole = K.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.0, out=C.copy())
    parts = []
    for columns in (slice(0, b["NC"]), slice(b["NC"], n)):
        part = np.ascontiguousarray(B[columns] if trans_b else B[:, columns])
        parts.append(K.gemm(A, part, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.0,
                            out=np.ascontiguousarray(C[:, columns])))
    assert whole.tobytes() == np.hstack(parts).tobytes()


def test_gemm_k_block_is_the_fewest_blocks_of_kc_or_the_blocks_asked_for():
    # gemm_k_block(k, min_blocks): KC = 256 balanced (784 = 4 x 196), or min_blocks balanced
    # blocks where each stays at least 64 deep; never more than KC deep.
    k_block = bp._core.gemm_k_block
    assert [k_block(k) for k in (1, 127, 256, 257, 512, 784)] == [1, 127, 256, 129, 256, 196]
    assert [k_block(k, 2) for k in (1, 63, 64, 127, 128, 129, 200, 255, 256, 257, 784)] == \
        [1, 63, 64, 127, 64, 65, 100, 128, 128, 129, 196]
    assert [k_block(k, 4) for k in (255, 256, 512, 784)] == [85, 64, 128, 196]
    with pytest.raises(ValueError, match="min_blocks"):
        k_block(256, 0)


# (m, n, k, min_k_blocks): one row; edge row and column counts around the tiles (a last panel
# of half a tile, two panels, a short last row panel); k at and around the depths where a
# single block of KC splits in two (128) and where KC itself is reached (256); more than two
# blocks inside one block of KC (4 x 128 in 512, three of 85 in 255); and a product of more
# column blocks than one (the AVX-512 tiles then pack each k block of A once for all of them).
# No TN product of n <= 12 columns: alone, a block of it would take the narrow kernel.
MIN_K_BLOCK_SHAPES = [(1, 40, 256, 2), (13, 17, 128, 2), (15, 33, 129, 2), (7, 65, 200, 2),
                      (64, 96, 256, 2), (65, 13, 255, 2), (16, 40, 512, 4), (30, 70, 255, 4),
                      (30, 1100, 256, 2)]


@pytest.mark.parametrize("shape", MIN_K_BLOCK_SHAPES, ids=_shape_id)
def test_gemm_in_more_k_blocks_gives_the_bytes_of_each_block_added_in_turn(gemm_isa, dtype,
                                                                           threads, shape):
    # A GEMM asked for min_k_blocks sums each k block apart and adds it onto C in order: the
    # bytes of one gemm call per block, the first with the caller's alpha and beta, the later
    # ones with beta 1, on any thread count (the blocks run inside one packed block of KC).
    m, n, k, min_blocks = shape
    depth = bp._core.gemm_k_block(k, min_blocks)
    assert depth < k  # more than one block
    rng = np.random.default_rng(k + n)
    for trans_a, trans_b in TRANSPOSES:
        A, B = _gemm_operands(rng, m, n, k, trans_a, trans_b, dtype)
        C = _uniform(rng, (m, n), dtype)
        expected = C.copy()
        for first in range(0, k, depth):
            part = slice(first, min(k, first + depth))
            a = np.ascontiguousarray(A[part] if trans_a else A[:, part])
            b = np.ascontiguousarray(B[:, part] if trans_b else B[part])
            K.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=0.75,
                   beta=-0.5 if first == 0 else 1.0, out=expected)
        for count in (1, 2):
            threads(count)
            got = C.copy()
            bp._core.gemm(A, B, got, trans_a, trans_b, 0.75, -0.5, min_blocks)
            assert got.tobytes() == expected.tobytes(), (trans_a, trans_b, count)
        threads(1)
        assert_allclose(got, ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=0.75,
                                      beta=-0.5, C=C), **tolerances(dtype, k))


@pytest.mark.parametrize("make_shape", BLOCKING_SHAPES)
@pytest.mark.parametrize("tile_family", ["avx2", "avx512"])
def test_gemm_ref_blocking_boundaries_match_reference(dtype, make_shape, tile_family):
    # The reference on the shapes around either family's tiles and blocks.
    shape = make_shape(blocking(tile_family, dtype))
    for trans_a, trans_b in TRANSPOSES:
        _check_gemm(K.gemm_ref, dtype, shape, trans_a, trans_b, alpha=-0.5, beta=1.25,
                    fill="random")


@pytest.mark.parametrize("alpha,beta,fill", ALPHA_BETA)
@pytest.mark.parametrize("shape", ALPHA_BETA_SHAPES, ids=_shape_id)
def test_gemm_alpha_beta_match_reference(gemm_isa, dtype, shape, alpha, beta, fill):
    for trans_a, trans_b in TRANSPOSES:
        _check_gemm(K.gemm, dtype, shape, trans_a, trans_b, alpha, beta, fill)


@pytest.mark.parametrize("alpha,beta,fill", ALPHA_BETA)
@pytest.mark.parametrize("shape", ALPHA_BETA_SHAPES, ids=_shape_id)
def test_gemm_ref_alpha_beta_match_reference(dtype, shape, alpha, beta, fill):
    for trans_a, trans_b in TRANSPOSES:
        _check_gemm(K.gemm_ref, dtype, shape, trans_a, trans_b, alpha, beta, fill)


@pytest.mark.parametrize("kernel", [K.gemm, K.gemm_ref], ids=["gemm", "gemm_ref"])
@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3), (5, 3, 0), (0, 0, 0), (0, 3, 0)],
                         ids=_shape_id)
def test_gemm_empty_shapes(dtype, kernel, shape):
    m, n, k = shape
    A = np.ones((m, k), dtype)
    B = np.ones((k, n), dtype)
    fresh = kernel(A, B)
    assert fresh.shape == (m, n) and fresh.dtype == dtype
    np.testing.assert_array_equal(fresh, np.zeros((m, n), dtype))

    C = np.arange(m * n, dtype=dtype).reshape(m, n)
    out = C.copy()
    assert kernel(A, B, alpha=3.0, beta=2.0, out=out) is out
    np.testing.assert_array_equal(out, ref.gemm(A, B, alpha=3.0, beta=2.0, C=C))
    np.testing.assert_array_equal(out, 2 * C)

    out = np.full((m, n), np.nan, dtype)
    kernel(A, B, beta=0.0, out=out)
    np.testing.assert_array_equal(out, np.zeros((m, n), dtype))


# Outside a burst of calls (the window set to 0), from gemm_parallel_min_flops (2^20 float
# multiply-adds, 2^19 double: 131 x 10 x 509 splits in double only) to kGemmSharedMinFlops (2^27)
# each thread computes its own slab of C: rows, or columns when m <= n (TN with n <= 12 on avx2
# and avx512 splits whole blocks of the narrow kernel, with a 3-row tail for 131 rows). From
# kGemmSharedMinFlops on, on the generic and avx2 paths, the threads share packed blocks, and a
# transposed B is packed inside the first row block; the avx512 path keeps to slabs at every
# size (config.hpp, SHARE_PACKED_BLOCKS).
# n = 520 leaves a last column panel of 8: at most half a tile wide in every family but the
# AVX2 double one, so packed half as wide, its rows split between threads. On avx512, column
# slabs whose boundaries are not on cache lines of C split by rows instead when B's extra
# packing is small (split_by_columns): 131 x 1024 x 10 takes columns into a fresh result and
# rows into one 16 bytes past a line there, columns on the other paths.
THREAD_SPLIT_SHAPES = [pytest.param((131, 10, 509), id="split-in-double-only"),
                       pytest.param((300, 500, 700), id="slabs"),
                       pytest.param((131, 1024, 10), id="slabs-short-k"),
                       pytest.param((301, 530, 900), id="shared-blocks"),
                       pytest.param((301, 520, 900), id="shared-blocks-narrow-panel"),
                       # last row blocks cut into 6- and 5-row panels: A packed, and (16
                       # float column panels) A read in place
                       pytest.param((304, 530, 900), id="shared-blocks-5-row-panels"),
                       pytest.param((1004, 256, 600), id="shared-blocks-A-in-place"),
                       pytest.param((4099, 10, 300), id="narrow")]


def _result_past_a_line(shape, dtype, offset_bytes):
    """A C-contiguous result array whose data starts offset_bytes past a cache line, as NumPy's
    own large arrays do (16 bytes), or on one (0)."""
    dtype = np.dtype(dtype)
    count = shape[0] * shape[1]
    skip = offset_bytes // dtype.itemsize
    out = empty_on_cache_lines(count + skip, dtype)[skip:].reshape(shape)
    assert out.ctypes.data % 64 == offset_bytes
    return out


# A fresh result starts on a cache line; a caller's may not, which changes how a split
# GEMM divides C between threads (split_by_columns) but never its bytes.
RESULT_OFFSETS = [pytest.param(None, id="fresh"), pytest.param(16, id="out+16B")]


def _gemm_into(A, B, trans_a, trans_b, m, n, offset_bytes):
    if offset_bytes is None:
        return K.gemm(A, B, trans_a=trans_a, trans_b=trans_b)
    out = _result_past_a_line((m, n), A.dtype, offset_bytes)
    assert K.gemm(A, B, trans_a=trans_a, trans_b=trans_b, out=out) is out
    return out


@pytest.mark.parametrize("shape", THREAD_SPLIT_SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("offset_bytes", RESULT_OFFSETS)
def test_gemm_bytes_do_not_depend_on_thread_count(gemm_isa, dtype, threads, call_burst, trans_a,
                                                  trans_b, shape, offset_bytes):
    m, n, k = shape
    rng = np.random.default_rng(7)
    A, B = _gemm_operands(rng, m, n, k, trans_a, trans_b, dtype)
    call_burst(window_ns=0)
    results = {}
    for count in (1, 2, 3):
        threads(count)
        results[count] = _gemm_into(A, B, trans_a, trans_b, m, n, offset_bytes)
    for count in (2, 3):
        assert results[count].tobytes() == results[1].tobytes(), f"{count} threads differ from 1"
    expected = ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b)
    assert_allclose(results[1], expected, **tolerances(dtype, k))


@pytest.mark.parametrize("shape, offset_on_avx512", [
    # B's extra packing in row slabs, k (n - m) = 8,930 values, is under 128 per line that
    # column slabs would share (131 lines): on avx512, columns on cache lines, rows otherwise.
    pytest.param((131, 1024, 10), False, id="131x1024x10"),
    # 700 x 200 = 140,000 values against 128 per line for 300 lines in 3 k blocks (115,200):
    # columns even where they share lines.
    pytest.param((300, 500, 700), True, id="300x500x700"),
    # More rows than columns: rows on every path (the rule alone: TN takes the narrow kernel on
    # avx2 and avx512, and in float this product splits only in a burst).
    pytest.param((131, 10, 509), None, id="131x10x509"),
])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
def test_split_slabs_follow_the_results_cache_lines(gemm_isa, dtype, trans_a, trans_b, shape,
                                                    offset_on_avx512):
    # How three of THREAD_SPLIT_SHAPES divide C between threads (split_by_columns, as the GEMM
    # applies it with the family it takes on each path): rows when m > n. Else columns on the
    # paths whose tiles run row panels fastest (generic, avx2); on avx512, whose tiles run
    # column panels fastest, columns of a result on cache lines, as the package allocates them,
    # and rows for one 16 bytes past a line, as NumPy's large arrays are, when that is cheaper.
    m, n, k = shape
    A, B = _gemm_operands(np.random.default_rng(9), m, n, k, trans_a, trans_b, dtype)
    fresh = m <= n
    offset = m <= n and (offset_on_avx512 if gemm_isa == "avx512" else True)
    for offset_bytes, by_columns in ((0, fresh), (16, offset)):
        out = _result_past_a_line((m, n), dtype, offset_bytes)
        for threads in (2, 3):
            assert bp._core.gemm_splits_by_columns(A, B, out, trans_a, trans_b, threads) == \
                by_columns, f"C {offset_bytes} bytes past a line, {threads} threads"


# From the burst threshold (2^17 float multiply-adds, 2^16 double; twice that on the AVX-512
# path) a GEMM in a burst of calls splits like a larger one: slabs of columns (or rows), or
# blocks of the narrow kernel (TN, n = 10). Every shape here splits on every path.
@pytest.mark.parametrize("shape", [(131, 10, 509), (67, 29, 263), (64, 64, 64), (19, 7, 2063)],
                         ids=["131x10x509", "67x29x263", "64x64x64", "19x7x2063"])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize("offset_bytes", RESULT_OFFSETS)
def test_gemm_bytes_in_a_burst_do_not_depend_on_thread_count(gemm_isa, dtype, threads, call_burst,
                                                             trans_a, trans_b, shape,
                                                             offset_bytes):
    m, n, k = shape
    rng = np.random.default_rng(8)
    A, B = _gemm_operands(rng, m, n, k, trans_a, trans_b, dtype)
    call_burst(window_ns=ALWAYS_IN_BURST_NS)
    threads(2)
    bp._core.gemm_thread_count(m, n, k, dtype == np.float64)  # the call before the burst's
    results = {}
    for count in (1, 2, 3):
        threads(count)
        assert bp._core.gemm_thread_count(m, n, k, dtype == np.float64) == count
        results[count] = _gemm_into(A, B, trans_a, trans_b, m, n, offset_bytes)
    for count in (2, 3):
        assert results[count].tobytes() == results[1].tobytes(), f"{count} threads differ from 1"
    assert_allclose(results[1], ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b),
                    **tolerances(dtype, k))


@pytest.mark.parametrize("make_shape", [
    pytest.param(lambda b: (2 * b["MR"] + 2, b["NR"] + b["LANES"] - 1, b["KC"] + 1), id="tails"),
    pytest.param(lambda b: (3 * b["MR"] + 1, 2 * b["NR"] + 1, 33), id="3MR+1"),
    pytest.param(lambda b: (3 * b["MR"] + 1, packed_a_columns(b, 1), 33), id="3MR+1,packed"),
    # Last row panels of 2 and 3 rows, two column panels per call; B read in place. The same
    # rows in blocks cut into panels of 6 and 5 rows.
    pytest.param(lambda b: (2 * b["MR"] + 2, direct_b_columns(b, 4 * b["NR"] + 1), b["KC"] + 1),
                 id="pairs"),
    pytest.param(lambda b: (b["MR"] + 3, 5 * b["NR"], 17), id="pairs,3rows"),
    pytest.param(lambda b: (5 * b["MR"] + 2, direct_b_columns(b, 4 * b["NR"] + 1), b["KC"] + 1),
                 id="cut"),
    pytest.param(lambda b: (2 * b["MR"] + 3, 5 * b["NR"], 17), id="cut,3rows"),
    # A read in place in panels of 14, 8 and 4 rows on the AVX-512 path (9 x 14 + 8 + 8 + 4 =
    # 146 rows, in blocks of 84 and 62), and panels of 6 and 5 on the 6-row tiles.
    pytest.param(lambda b: (9 * b["MR_IN_PLACE"] + 20, 2 * b["NR"] + 1, 33), id="cut,in-place"),
    # A^T with rows 4 KiB apart is packed (A-4KiB above), while the rows cut out of it are read
    # in place: a row's bits do not depend on the tile family either.
    pytest.param(lambda b: (4096 // b["ITEM"], 2 * b["NR"] + 1, 33), id="A-4KiB"),
])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
def test_gemm_row_bytes_do_not_depend_on_the_other_rows(gemm_isa, dtype, trans_a, trans_b,
                                                        make_shape):
    # A network's output for a sample must not depend on the batch around it (forward on many
    # rows equals row by row): a row gets the same sums in a full row panel, in a last partial
    # one and alone.
    tiles = blocking(gemm_isa, dtype)
    m, n, k = make_shape(tiles)
    A, B = _gemm_operands(np.random.default_rng(11), m, n, k, trans_a, trans_b, dtype)
    whole = K.gemm(A, B, trans_a=trans_a, trans_b=trans_b)
    for first, count in ((0, 1), (m - 1, 1), (m - 2, 2), (1, tiles["MR"] + 1)):
        part = A[:, first:first + count] if trans_a else A[first:first + count]
        rows = K.gemm(np.ascontiguousarray(part), B, trans_a=trans_a, trans_b=trans_b)
        assert rows.tobytes() == whole[first:first + count].tobytes(), (first, count)


# Long columns of tiles: the AVX2 and portable paths run each column panel's run of row panels
# of one height in one kernel call (gemm_micro_kernel.hpp, TileColumn). 256 rows are two or
# three row blocks, the last cut into panels of 6 and 5 rows on the 6-row tiles; A read in place
# (transposed: rows one apart; untransposed: lda apart) or packed (a slot per panel); two k
# blocks; each thread's share of the tiles ends inside a column. Every row gets the bytes it
# gets alone, with alpha and beta, on one thread and in a burst on two.
@pytest.mark.parametrize("make_shape", [
    pytest.param(lambda b: (256, 2 * b["NR"] + 1, b["KC"] + 7), id="in-place"),
    pytest.param(lambda b: (256, packed_a_columns(b), b["KC"] + 7), id="packed"),
])
@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
def test_gemm_long_columns_give_each_row_its_bytes_alone(gemm_isa, dtype, threads, call_burst,
                                                         trans_a, trans_b, make_shape):
    m, n, k = make_shape(blocking(gemm_isa, dtype))
    rng = np.random.default_rng(m + n)
    A, B = _gemm_operands(rng, m, n, k, trans_a, trans_b, dtype)
    C = _uniform(rng, (m, n), dtype)
    threads(1)
    alone = np.vstack([
        K.gemm(np.ascontiguousarray(A[:, i:i + 1] if trans_a else A[i:i + 1]), B,
               trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.25, out=C[i:i + 1].copy())
        for i in range(m)])
    call_burst(window_ns=ALWAYS_IN_BURST_NS)
    bp._core.gemm_thread_count(m, n, k, dtype == np.float64)  # the call before the burst's
    for count in (1, 2):
        threads(count)
        assert bp._core.gemm_thread_count(m, n, k, dtype == np.float64) == count
        whole = K.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.25,
                       out=C.copy())
        assert whole.tobytes() == alone.tobytes(), count
    assert_allclose(whole, ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=0.5,
                                    beta=-1.25, C=C), **tolerances(dtype, k))


# The narrow kernel (op(A) = A^T, n <= 12, nothing fused) runs blocks of NARROW_WIDTH rows (two
# vectors on avx2, one on avx512), the last rows from a zero-padded copy, and on avx2 its columns
# in runs of at most 5 (gemm_narrow_tn.hpp); the generic path has none and runs its tiles. Every
# width n, rows around a block's edges and k from 1: each row matches the reference and has the
# bytes it has alone, with beta 0 over NaN (C must not be read), alpha alone, and alpha and
# beta; rows past the result's (the rest of a larger array) keep their bytes.
@pytest.mark.parametrize("n", range(1, 13))
def test_gemm_narrow_rows_have_their_bytes_alone(gemm_isa, dtype, n):
    width = blocking(gemm_isa, dtype)["NARROW_WIDTH"]
    rng = np.random.default_rng(n)

    def product(A, B, alpha, beta, C):
        # into the first rows of an array of width more, whose other rows must not change
        room = np.full((len(C) + width, n), -7.0, dtype)
        room[:len(C)] = C
        got = K.gemm(A, B, trans_a=True, alpha=alpha, beta=beta, out=room[:len(C)])
        assert (room[len(C):] == -7.0).all(), "rows past the result were written"
        return got

    for m in sorted({1, width - 1, width, width + 1, 2 * width + 3}):
        for k in (1, 7, 64):
            A, B = _gemm_operands(rng, m, n, k, True, False, dtype)
            nan = np.full((m, n), np.nan, dtype)
            for alpha, beta, C in ((1.0, 0.0, nan), (0.75, 0.0, nan),
                                   (0.75, -1.5, _uniform(rng, (m, n), dtype))):
                case = f"m={m} n={n} k={k} alpha={alpha} beta={beta}"
                whole = product(A, B, alpha, beta, C)
                alone = np.vstack([product(np.ascontiguousarray(A[:, i:i + 1]), B, alpha, beta,
                                           C[i:i + 1]) for i in range(m)])
                assert whole.tobytes() == alone.tobytes(), case
                expected = ref.gemm(A, B, trans_a=True, alpha=alpha, beta=beta,
                                    C=None if beta == 0 else C)
                assert_allclose(whole, expected, err_msg=case, **tolerances(dtype, k))


# --------------------------------------------------------------------------------------------
# gemm: dtype rules and out


@pytest.mark.parametrize("kernel", [K.gemm, K.gemm_ref], ids=["gemm", "gemm_ref"])
@pytest.mark.parametrize(
    "a_dtype,b_dtype,out_dtype,expected",
    [
        ("float32", "float32", None, "float32"),
        ("float64", "float64", None, "float64"),
        ("float32", "float64", None, "float64"),
        ("float64", "float32", None, "float64"),
        ("int64", "int64", None, "float64"),
        ("int32", "int32", None, "float64"),
        ("int64", "float32", None, "float64"),
        ("bool", "bool", None, "float64"),
        ("float64", "float64", "float32", "float32"),
        ("float32", "float32", "float64", "float64"),
        ("int64", "float32", "float32", "float32"),
    ],
)
def test_gemm_result_dtype(kernel, a_dtype, b_dtype, out_dtype, expected):
    rng = np.random.default_rng(11)
    A = (rng.uniform(-5, 5, (4, 6)) if a_dtype != "bool" else rng.uniform(-1, 1, (4, 6)) > 0)
    B = (rng.uniform(-5, 5, (6, 3)) if b_dtype != "bool" else rng.uniform(-1, 1, (6, 3)) > 0)
    A, B = A.astype(a_dtype), B.astype(b_dtype)
    out = None if out_dtype is None else np.empty((4, 3), out_dtype)
    got = kernel(A, B, out=out)
    assert got.dtype == np.dtype(expected)
    if out is not None:
        assert got is out
    want = ref.gemm(A.astype(expected), B.astype(expected))
    assert_allclose(got, want, **tolerances(expected, 6))


@pytest.mark.parametrize("trans_a,trans_b", TRANSPOSES, ids=["NN", "NT", "TN", "TT"])
def test_gemm_ready_operands_and_converted_ones_give_the_same_bytes(dtype, trans_a, trans_b):
    # Same-dtype C-contiguous matrices with bool flags and Python numbers take the native fast
    # entry (_core.gemm_ready); Fortran-ordered copies and NumPy scalars go through the
    # converting path. Both must compute the same product.
    rng = np.random.default_rng(5)
    A, B = _gemm_operands(rng, 37, 19, 23, trans_a, trans_b, dtype)
    C = _uniform(rng, (37, 19), dtype)
    assert bp._core.gemm_ready(A, B, None, trans_a, trans_b, 1.5, 0.0) is not None
    assert bp._core.gemm_ready(np.asfortranarray(A), B, None, trans_a, trans_b, 1.5, 0.0) is None
    ready = K.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=1.5)
    converted = K.gemm(np.asfortranarray(A), np.asfortranarray(B), trans_a=np.bool_(trans_a),
                       trans_b=np.bool_(trans_b), alpha=np.float64(1.5))
    assert ready.dtype == converted.dtype == dtype
    assert ready.tobytes() == converted.tobytes()
    out_ready, out_converted = C.copy(), C.copy()
    assert K.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=2, beta=-0.5,
                  out=out_ready) is out_ready
    K.gemm(A.tolist(), B.tolist(), trans_a=trans_a, trans_b=trans_b, alpha=2.0,
           beta=np.float32(-0.5), out=out_converted)
    assert out_ready.tobytes() == out_converted.tobytes()
    assert_allclose(out_ready, ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b, alpha=2.0,
                                        beta=-0.5, C=C), **tolerances(dtype, 23))


def test_gemm_accepts_nested_lists():
    got = K.gemm([[1, 2], [3, 4]], [[5], [6]])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, ref.gemm(np.array([[1, 2], [3, 4]]), np.array([[5], [6]])))


# --------------------------------------------------------------------------------------------
# activations

ACTIVATION_CASES = [(name, None) for name in ref.ACTIVATIONS] + [
    ("leaky_relu", 0.2),
    ("leaky_relu", 1.5),
    ("elu", 0.5),
    ("elu", 2.0),
]


def _activation_case_id(case):
    name, alpha = case
    return name if alpha is None else f"{name}-{alpha}"


# 300000 is above the parallel threshold.
ACTIVATION_SHAPES = [(0,), (1,), (7,), (3, 5), (1000,), (300000,)]

# Put first in every input, so even the small shapes see the kinks and the tails.
SPECIAL_VALUES = [0.0, -50.0, 50.0, -1000.0, 1000.0, -1e-7, 1e-7, -0.0, -1.0, 1.0, -5.0, 5.0,
                  -20.0, 20.0, -3.0, 3.0, -1e-30, 1e-30, -0.5, 0.5]


def _activation_input(rng, shape, dtype):
    u = rng.standard_normal(shape) * 3
    flat = u.reshape(-1)
    count = min(flat.size, len(SPECIAL_VALUES))
    flat[:count] = SPECIAL_VALUES[:count]
    return u.astype(dtype)


@pytest.mark.parametrize("shape", ACTIVATION_SHAPES, ids=_shape_id)
@pytest.mark.parametrize("case", ACTIVATION_CASES, ids=_activation_case_id)
def test_activation_forward_matches_reference(dtype, threads, case, shape):
    name, alpha = case
    _threads_for(threads, int(np.prod(shape)))
    u = _activation_input(np.random.default_rng(len(shape) + sum(shape)), shape, dtype)
    got = K.activation_forward(u, name, alpha=alpha)
    assert got.dtype == dtype and got.shape == shape
    assert np.isfinite(got).all()
    assert_allclose(got, ref.activation_forward(name, u, alpha), **tolerances(dtype))


@pytest.mark.parametrize("shape", ACTIVATION_SHAPES, ids=_shape_id)
@pytest.mark.parametrize("case", ACTIVATION_CASES, ids=_activation_case_id)
def test_activation_backward_matches_reference(dtype, threads, case, shape):
    name, alpha = case
    _threads_for(threads, int(np.prod(shape)))
    rng = np.random.default_rng(len(shape) + sum(shape))
    u = _activation_input(rng, shape, dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    got = K.activation_backward(grad, u, name, alpha=alpha)
    assert got.dtype == dtype and got.shape == shape
    assert np.isfinite(got).all()
    expected = grad * ref.activation_derivative(name, u, alpha)
    assert_allclose(got, expected, **tolerances(dtype))


@pytest.mark.parametrize("name", ref.ACTIVATIONS)
def test_activations_are_finite_for_large_inputs(dtype, name):
    u = np.array([-1000.0, -50.0, -1e-7, 0.0, 1e-7, 50.0, 1000.0], dtype)
    forward = K.activation_forward(u, name)
    backward = K.activation_backward(np.ones_like(u), u, name)
    assert np.isfinite(forward).all() and np.isfinite(backward).all()
    assert_allclose(forward, ref.activation_forward(name, u), **tolerances(dtype))
    assert_allclose(backward, ref.activation_derivative(name, u), **tolerances(dtype))


def test_activation_kinks_use_the_negative_side(dtype):
    zero = np.zeros(1, dtype)
    one = np.ones(1, dtype)
    assert K.activation_backward(one, zero, "relu")[0] == 0
    assert K.activation_backward(one, zero, "leaky_relu")[0] == dtype.type(0.01)
    assert K.activation_backward(one, zero, "leaky_relu", alpha=0.3)[0] == dtype.type(0.3)
    assert K.activation_backward(one, zero, "elu", alpha=0.5)[0] == dtype.type(0.5)


# The kernels' exp, expm1, log1p and tanh are their own branch-free ones (they vectorize), so
# they are measured in units in the last place against an exact reference: NumPy's long double
# (80-bit on x86-64), well beyond float64. libm's float ones reach about 2 on the same scale.
_EXACT = {
    "tanh": np.tanh,
    "sigmoid": lambda x: np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))),
                                  np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))),
    "softplus": lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
}
MAX_ULPS = 3.0


def _ulps(got, exact, dtype):
    """|got - exact| in units of the spacing of dtype at exact (rounded to dtype)."""
    spacing = np.spacing(np.abs(exact.astype(dtype))).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - exact) / spacing


def _sweep(dtype):
    """Both signs of magnitudes from the subnormals to past overflow of exp, and a fine grid
    where the functions bend."""
    info = np.finfo(dtype)
    tiny_exponent = np.log10(float(info.smallest_subnormal))
    magnitudes = np.logspace(tiny_exponent, 3, 100_000)
    grid = np.linspace(-20, 20, 100_001)
    values = np.concatenate([magnitudes, -magnitudes, grid, [0.0, -0.0]])
    return values.astype(dtype)


@pytest.mark.parametrize("name", sorted(_EXACT))
def test_transcendental_activations_are_within_a_few_ulps(dtype, name):
    u = _sweep(dtype)
    exact = _EXACT[name](u.astype(np.longdouble))
    ulps = _ulps(K.activation_forward(u, name), exact, dtype)
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= MAX_ULPS, f"{name}({u[worst]!r}) off by {float(ulps[worst]):.2f} ulps"


def test_softmax_is_within_a_few_ulps(dtype):
    rng = np.random.default_rng(5)
    u = (rng.standard_normal((4000, 10)) * 8).astype(dtype)
    # The shift by the row maximum rounds in dtype, in every softmax (NumPy's too): up to half
    # an ulp of |u - max|, which e^x turns into tens of ulps of the result. Only what follows
    # the shift is measured here: each exp, the sum and the division.
    shifted = (u - u.max(axis=1, keepdims=True)).astype(np.longdouble)
    exact = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    assert _ulps(K.softmax(u), exact, dtype).max() <= 2 * MAX_ULPS


@pytest.mark.parametrize("name", ref.ACTIVATIONS)
def test_activations_give_the_same_bits_in_vector_lanes_and_scalar_tails(dtype, name):
    # A loop over n elements runs most of them in vector lanes and the last n mod width in
    # scalar code; shifting the array by 1..17 elements moves every element through both and
    # through every lane, and its result must not change by a bit.
    rng = np.random.default_rng(11)
    u = (rng.standard_normal(53) * 4).astype(dtype)
    u[:6] = [0.0, -0.0, 30.0, -30.0, 1e-30, -1e-30]
    grad = rng.standard_normal(53).astype(dtype)
    forward = K.activation_forward(u, name)
    backward = K.activation_backward(grad, u, name)
    for shift in range(1, 18):
        assert forward[shift:].tobytes() == K.activation_forward(u[shift:], name).tobytes()
        assert backward[shift:].tobytes() == K.activation_backward(grad[shift:], u[shift:],
                                                                   name).tobytes()


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "elu", "gelu"])
def test_activations_of_special_values_match_the_reference(dtype, name):
    info = np.finfo(dtype)
    u = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, info.smallest_subnormal,
                  -info.smallest_subnormal, info.tiny, -info.tiny, info.max, -info.max], dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = ref.activation_forward(name, u)
    assert_allclose(K.activation_forward(u, name), expected, rtol=0, atol=0, equal_nan=True)


def test_float32_gelu_is_within_a_few_ulps():
    # Against erfc in double, where Phi(u) is a normal float32 (down to u = -12.4): e^(-u^2/2),
    # t, the erfc series and the products between them add up to 7.2 ulps at worst, near
    # u = -3.24 (every float in [-13.5, 13.5] swept by a reviewer). Below, the subnormal Phi
    # loses digits before the product u Phi.
    dense = np.linspace(-4, -1, 300_001).astype(np.float32)
    u = np.concatenate([_sweep(np.float32), dense])
    wide = u.astype(np.float64)
    cdf = np.array([math.erfc(-x / math.sqrt(2)) / 2 for x in wide])
    normal = cdf >= np.finfo(np.float32).tiny * 2**10
    exact = (wide * cdf)[normal].astype(np.longdouble)
    ulps = _ulps(K.activation_forward(u, "gelu")[normal], exact, np.float32)
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= 8, f"gelu({u[normal][worst]!r}) off by {float(ulps[worst]):.2f} ulps"


def test_gelu_keeps_its_digits_in_the_lower_tail(dtype):
    # u Phi(u) for u down to -12, where Phi(u) = erfc(-u / sqrt 2) / 2 is as small as 1e-33 and
    # 1 + erf(u / sqrt 2) would have cancelled to nothing; relative error only, no atol.
    u = np.linspace(-12, -3, 1001).astype(dtype)
    exact = np.array([float(x) * math.erfc(-float(x) / math.sqrt(2)) / 2 for x in u])
    exact_slope = np.array([math.erfc(-float(x) / math.sqrt(2)) / 2
                            + float(x) * math.exp(-float(x) ** 2 / 2) / math.sqrt(2 * math.pi)
                            for x in u])
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(K.activation_forward(u, "gelu"), exact, rtol=rtol, atol=0)
    # The slope cancels (Phi + u phi, of opposite signs) by about u^2: it gets u^2 ulps.
    slope = K.activation_backward(np.ones_like(u), u, "gelu")
    assert_allclose(slope, exact_slope, rtol=rtol * 150, atol=0)
    infinities = np.array([np.inf, -np.inf], dtype)
    assert K.activation_forward(infinities, "gelu").tolist() == [np.inf, 0.0]
    assert K.activation_backward(np.ones(2, dtype), infinities, "gelu").tolist() == [1.0, 0.0]


def test_tanh_is_odd_to_the_bit(dtype):
    u = _sweep(dtype)
    assert K.activation_forward(-u, "tanh").tobytes() == (-K.activation_forward(u, "tanh")).tobytes()


# --------------------------------------------------------------------------------------------
# softmax

SOFTMAX_SHAPES = [(1, 1), (1, 10), (7, 3), (300, 257), (1031, 257)]


def _softmax_backward_expected(u, y):
    """Expected softmax_backward(grad, p) for p = softmax(u), grad = p - y.

    The oracle's MSE gradient through a softmax output with reduction "sum" is exactly the
    Jacobian-transpose product J(u)^T (softmax(u) - y), which is what softmax_backward computes.
    """
    return ref.loss_grad("mse", "softmax", u, y, reduction="sum")


@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=_shape_id)
def test_softmax_matches_reference(dtype, threads, shape):
    _threads_for(threads, shape[0] * shape[1])
    rng = np.random.default_rng(sum(shape))
    u = (rng.standard_normal(shape) * 4).astype(dtype)
    got = K.softmax(u)
    assert got.dtype == dtype and got.shape == shape
    assert_allclose(got, ref.softmax(u), **tolerances(dtype, shape[1]))


@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=_shape_id)
def test_softmax_backward_matches_reference(dtype, threads, shape):
    _threads_for(threads, shape[0] * shape[1])
    rng = np.random.default_rng(sum(shape) + 1)
    u = (rng.standard_normal(shape) * 4).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    p = ref.softmax(u)
    grad = p - y
    got = K.softmax_backward(grad, p)
    assert got.dtype == dtype and got.shape == shape
    assert_allclose(got, _softmax_backward_expected(u, y), **tolerances(dtype, shape[1]))


def test_softmax_rows_of_huge_logits_are_finite(dtype):
    u = np.array(
        [
            [1000.0, 1000.0, 1000.0, 1000.0],
            [-1000.0, -1000.0, -1000.0, -1000.0],
            [1000.0, -1000.0, 0.0, 999.0],
            [-1000.0, 0.0, -999.0, 1000.0],
        ],
        dtype,
    )
    p = K.softmax(u)
    assert np.isfinite(p).all()
    assert_allclose(p, ref.softmax(u), **tolerances(dtype, 4))
    assert_allclose(p.sum(axis=1), np.ones(4), **tolerances(dtype, 4))

    y = np.eye(4, dtype=dtype)
    expected_p = ref.softmax(u)
    got = K.softmax_backward(expected_p - y, expected_p)
    assert np.isfinite(got).all()
    assert_allclose(got, _softmax_backward_expected(u, y), **tolerances(dtype, 4))


# --------------------------------------------------------------------------------------------
# losses

LOSS_OUTPUT_PAIRS = [("mse", output) for output in ref.OUTPUTS] + [
    ("binary_cross_entropy", "sigmoid"),
    ("cross_entropy", "softmax"),
]
LOSS_SHAPES = [(1, 1), (7, 5), (64, 10)]


PAIR_IDS = [f"{loss}-{output}" for loss, output in LOSS_OUTPUT_PAIRS]


def _targets(rng, shape, kind, dtype):
    """Dense targets: one-hot rows, or soft rows (non-negative, summing to one)."""
    m, n = shape
    if kind == "one_hot":
        return ref.one_hot(rng.integers(0, n, m), n, dtype)
    y = rng.uniform(0.05, 1.0, shape)
    return (y / y.sum(axis=1, keepdims=True)).astype(dtype)


def _check_loss(dtype, loss, output, reduction, u, y):
    value = K.loss(u, y, loss, output=output, reduction=reduction)
    grad = K.loss_grad(u, y, loss, output=output, reduction=reduction)
    assert isinstance(value, float) and np.isfinite(value)
    assert grad.dtype == dtype and grad.shape == u.shape
    assert np.isfinite(grad).all()
    n = u.shape[1]
    assert_allclose(value, ref.loss_value(loss, output, u, y, reduction),
                    **tolerances(dtype, u.size))
    assert_allclose(grad, ref.loss_grad(loss, output, u, y, reduction), **tolerances(dtype, n))


@pytest.mark.parametrize("target_kind", ["one_hot", "soft"])
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=_shape_id)
@pytest.mark.parametrize("loss,output", LOSS_OUTPUT_PAIRS, ids=PAIR_IDS)
def test_loss_and_grad_match_reference(dtype, loss, output, shape, reduction, target_kind):
    rng = np.random.default_rng(sum(shape))
    u = (rng.standard_normal(shape) * 2).astype(dtype)
    y = _targets(rng, shape, target_kind, dtype)
    _check_loss(dtype, loss, output, reduction, u, y)


@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("loss,output", LOSS_OUTPUT_PAIRS, ids=PAIR_IDS)
def test_loss_of_huge_logits_is_finite(dtype, loss, output, reduction):
    rng = np.random.default_rng(5)
    u = rng.choice([-1e4, 1e4], size=(6, 4))
    u[0] = [1e4, -1e4, 0.0, 1e4]
    u[1] = [-1e4, -1e4, -1e4, -1e4]
    u = u.astype(dtype)
    for kind in ("one_hot", "soft"):
        _check_loss(dtype, loss, output, reduction, u, _targets(rng, u.shape, kind, dtype))


# The cross-entropy takes its rows' log-sum-exps several at a time: 51 rows of 10 classes, 64 of
# one, and one row of more than 256 in blocks of 512 values. Each row's loss must be the one it
# gets alone, wherever it falls in a block.
@pytest.mark.parametrize("shape", [(50, 10), (51, 10), (52, 10), (103, 10), (63, 1), (64, 1),
                                   (65, 1), (3, 300), (2, 512), (3, 513), (2, 1025)],
                         ids=_shape_id)
def test_cross_entropy_rows_in_any_block_give_their_own_loss(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    u = (rng.standard_normal(shape) * 4).astype(dtype)
    y = _targets(rng, shape, "soft", dtype)
    total = K.loss(u, y, "cross_entropy", reduction="sum")
    added = 0.0
    for i in range(shape[0]):  # the rows' losses added in order, as the kernel does
        added += K.loss(u[i:i + 1], y[i:i + 1], "cross_entropy", reduction="sum")
    assert total == added
    # computed in double whatever the dtype
    assert total == pytest.approx(ref.loss_value("cross_entropy", "softmax", u, y, "sum"),
                                  rel=1e-12)


@pytest.mark.parametrize("loss", ref.LOSSES)
def test_loss_output_defaults_to_the_losses_own(dtype, loss):
    default = {"mse": "identity", "binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}
    rng = np.random.default_rng(3)
    u = rng.standard_normal((5, 3)).astype(dtype)
    y = _targets(rng, (5, 3), "soft", dtype)
    assert K.loss(u, y, loss) == K.loss(u, y, loss, output=default[loss])
    np.testing.assert_array_equal(K.loss_grad(u, y, loss),
                                  K.loss_grad(u, y, loss, output=default[loss]))


@pytest.mark.parametrize("output,alpha", [("leaky_relu", 0.2), ("elu", 0.5)])
def test_mse_loss_with_custom_output_alpha(dtype, output, alpha):
    rng = np.random.default_rng(4)
    u = (rng.standard_normal((9, 4)) * 2).astype(dtype)
    y = rng.standard_normal((9, 4)).astype(dtype)
    value = K.loss(u, y, "mse", output=output, alpha=alpha)
    grad = K.loss_grad(u, y, "mse", output=output, alpha=alpha)
    assert_allclose(value, ref.loss_value("mse", (output, alpha), u, y),
                    **tolerances(dtype, u.size))
    assert_allclose(grad, ref.loss_grad("mse", (output, alpha), u, y), **tolerances(dtype))


# --------------------------------------------------------------------------------------------
# bias_grad and sgd_update

# Around the parallel threshold, and sizes whose two threads' shares (whole multiples of 16
# elements, for_each_share in threads.hpp) are unequal or end off a multiple of 16.
SIZES = [1, 7, ELEMENTWISE_PARALLEL_MIN - 1, ELEMENTWISE_PARALLEL_MIN,
         ELEMENTWISE_PARALLEL_MIN + 17, 300000, 101632 + 3]


@pytest.mark.parametrize("rows", [0, 1, 5])
@pytest.mark.parametrize("size", SIZES)
def test_bias_grad_matches_reference(dtype, threads, size, rows):
    _threads_for(threads, size)
    # The oracle's bias gradient is D.sum(axis=0) (reference.mlp_grad: db_l = sum of rows of D_l).
    rng = np.random.default_rng(size + rows)
    grad = rng.standard_normal((rows, size)).astype(dtype)
    expected = grad.sum(axis=0)
    tol = tolerances(dtype, rows)

    fresh = K.bias_grad(grad)
    assert fresh.dtype == dtype and fresh.shape == (size,)
    assert_allclose(fresh, expected, **tol)

    out = np.full(size, np.nan, dtype)
    assert K.bias_grad(grad, out=out) is out
    assert_allclose(out, expected, **tol)

    start = rng.standard_normal(size).astype(dtype)
    out = start.copy()
    assert K.bias_grad(grad, out=out, accumulate=True) is out
    assert_allclose(out, start + expected, **tol)

    assert_allclose(K.bias_grad(grad, accumulate=True), expected, **tol)


SGD_SETTINGS = [
    pytest.param({"lr": 0.1}, id="plain"),
    pytest.param({"lr": 0.05, "momentum": 0.9}, id="momentum"),
    pytest.param({"lr": 0.05, "momentum": 0.9, "nesterov": True}, id="nesterov"),
    pytest.param({"lr": 0.1, "weight_decay": 0.01}, id="weight_decay"),
    pytest.param({"lr": 0.05, "momentum": 0.5, "nesterov": True, "weight_decay": 0.1},
                 id="nesterov-weight_decay"),
]


@pytest.mark.parametrize("settings", SGD_SETTINGS)
@pytest.mark.parametrize("size", SIZES)
def test_sgd_update_steps_match_reference(dtype, threads, size, settings):
    _threads_for(threads, size)
    steps = 4
    rng = np.random.default_rng(size)
    params = rng.standard_normal(size).astype(dtype)
    with_momentum = settings.get("momentum", 0.0) != 0.0
    velocity = np.zeros(size, dtype) if with_momentum else None
    want_params, want_velocity = params.copy(), None
    for _ in range(steps):
        grads = rng.standard_normal(size).astype(dtype)
        returned = K.sgd_update(params, grads, velocity, **settings)
        assert returned is params
        want_params, want_velocity = ref.sgd_step(want_params, grads, want_velocity, **settings)
    assert params.dtype == dtype
    assert_allclose(params, want_params, **tolerances(dtype, steps))
    if with_momentum:
        assert velocity.dtype == dtype
        assert_allclose(velocity, want_velocity, **tolerances(dtype, steps))


@pytest.mark.parametrize("where", ["first", "share_end", "share_start", "last"])
def test_sgd_update_that_overflows_in_one_share_changes_no_share(dtype, threads, where):
    # All or nothing across the threads: one value whose update overflows, in either thread's
    # share, leaves every parameter and every velocity as it was.
    threads(2)
    size = ELEMENTWISE_PARALLEL_MIN + 33  # 2051 units of 16: shares of 1025 and 1026 units
    position = {"first": 0, "share_end": 1025 * 16 - 1, "share_start": 1025 * 16,
                "last": size - 1}[where]
    rng = np.random.default_rng(position)
    params = rng.standard_normal(size).astype(dtype)
    velocity = rng.standard_normal(size).astype(dtype)
    grads = rng.standard_normal(size).astype(dtype)
    huge = np.finfo(dtype).max
    velocity[position], grads[position] = huge, huge  # 0.9 * max + max is Inf
    before = params.tobytes(), velocity.tobytes()
    with pytest.raises(FloatingPointError, match="nothing was changed"):
        K.sgd_update(params, grads, velocity, lr=0.1, momentum=0.9)
    assert (params.tobytes(), velocity.tobytes()) == before
    velocity[position] = 0.0  # now finite: every value moves
    K.sgd_update(params, grads, velocity, lr=0.1, momentum=0.9)
    assert np.isfinite(params).all() and (params != np.frombuffer(before[0], dtype)).all()


def test_sgd_update_without_momentum_leaves_velocity_alone(dtype):
    params = np.ones(7, dtype)
    velocity = np.full(7, 3.0, dtype)
    K.sgd_update(params, np.ones(7, dtype), velocity, lr=0.5)
    np.testing.assert_array_equal(velocity, np.full(7, 3.0, dtype))
    np.testing.assert_array_equal(params, np.full(7, 0.5, dtype))


def test_sgd_update_converts_grads_to_the_params_dtype(dtype):
    params = np.ones(7, dtype)
    grads = np.arange(7)  # int64: read through a converted copy
    K.sgd_update(params, grads, lr=0.5)
    want, _ = ref.sgd_step(np.ones(7, dtype), grads, None, lr=0.5)
    assert params.dtype == dtype
    assert_allclose(params, want, **tolerances(dtype))


# --------------------------------------------------------------------------------------------
# dtype rules, out and threads across the elementwise kernels


def _elementwise_calls(rng, dtype):
    """(name, call(out) -> result, out shape) for every kernel that takes an out."""
    u = rng.standard_normal((6, 5)).astype(dtype)
    g = rng.standard_normal((6, 5)).astype(dtype)
    p = ref.softmax(u)
    y = _targets(rng, (6, 5), "soft", dtype)
    A = rng.standard_normal((6, 4)).astype(dtype)
    B = rng.standard_normal((4, 5)).astype(dtype)
    return [
        ("gemm", lambda out: K.gemm(A, B, out=out), (6, 5)),
        ("gemm_ref", lambda out: K.gemm_ref(A, B, out=out), (6, 5)),
        ("activation_forward", lambda out: K.activation_forward(u, "tanh", out=out), (6, 5)),
        ("activation_backward", lambda out: K.activation_backward(g, u, "gelu", out=out), (6, 5)),
        ("softmax", lambda out: K.softmax(u, out=out), (6, 5)),
        ("softmax_backward", lambda out: K.softmax_backward(g, p, out=out), (6, 5)),
        ("loss_grad", lambda out: K.loss_grad(u, y, "cross_entropy", out=out), (6, 5)),
        ("bias_grad", lambda out: K.bias_grad(g, out=out), (5,)),
    ]


KERNELS_WITH_OUT = [name for name, _, _ in _elementwise_calls(np.random.default_rng(0), np.float64)]


@pytest.mark.parametrize("index", range(len(KERNELS_WITH_OUT)), ids=KERNELS_WITH_OUT)
def test_fresh_outputs_start_on_cache_lines(dtype, index):
    # Without out, each kernel allocates its result on a 64-byte line (NumPy's own large blocks
    # start 16 bytes past one, which splits the GEMM's stores), and computes the same values.
    _, call, shape = _elementwise_calls(np.random.default_rng(index), dtype)[index]
    for _ in range(3):  # several allocations, so a lucky address cannot pass
        fresh = call(None)
        assert fresh.ctypes.data % 64 == 0 and fresh.shape == shape and fresh.dtype == dtype
        assert fresh.flags.c_contiguous and fresh.flags.writeable
        np.testing.assert_array_equal(fresh, call(np.empty(shape, dtype)))


def test_fresh_layer_outputs_start_on_cache_lines(dtype):
    rng = np.random.default_rng(5)
    X, W = rng.standard_normal((300, 40)).astype(dtype), rng.standard_normal((40, 70)).astype(dtype)
    u, y = K.dense_forward(X, W, np.zeros(70, dtype), "tanh")
    delta = K.hidden_delta(y, rng.standard_normal((30, 70)).astype(dtype), u[:, :30], "tanh")
    via_python = K.gemm(X.tolist(), W)  # a list: the converting path, not the direct one
    for array in (u, y, delta, via_python):
        assert array.ctypes.data % 64 == 0 and array.flags.c_contiguous


@pytest.mark.parametrize("index", range(len(KERNELS_WITH_OUT)), ids=KERNELS_WITH_OUT)
def test_out_is_written_in_place_and_returned(dtype, index):
    _, call, shape = _elementwise_calls(np.random.default_rng(index), dtype)[index]
    expected = call(None)
    out = np.full(shape, np.nan, dtype)
    assert call(out) is out
    np.testing.assert_array_equal(out, expected)


ELEMENTWISE_CALLS = [
    pytest.param(lambda x, out: K.activation_forward(x, "sigmoid", out=out),
                 id="activation_forward"),
    pytest.param(lambda x, out: K.activation_backward(x, x, "softplus", out=out),
                 id="activation_backward"),
    pytest.param(lambda x, out: K.softmax(x, out=out), id="softmax"),
    pytest.param(lambda x, out: K.softmax_backward(x, x, out=out), id="softmax_backward"),
    pytest.param(lambda x, out: K.loss_grad(x, x, "mse", output="tanh", out=out), id="loss_grad"),
    pytest.param(lambda x, out: K.bias_grad(x, out=out), id="bias_grad"),
]


@pytest.mark.parametrize("call", ELEMENTWISE_CALLS)
def test_elementwise_result_dtype(call):
    ints = np.arange(-6, 6).reshape(3, 4)
    for given, expected in [("float32", "float32"), ("float64", "float64"), ("int64", "float64"),
                            ("int32", "float64"), ("bool", "float64")]:
        x = ints.astype(given)
        got = call(x, None)
        assert got.dtype == np.dtype(expected), given
        np.testing.assert_array_equal(got, call(x.astype(expected), None))
    # out's dtype decides: float64 inputs are computed in float32 and vice versa.
    for given, out_dtype in [("float64", "float32"), ("float32", "float64"), ("int64", "float32")]:
        x = ints.astype(given)
        shape = call(x, None).shape
        out = np.empty(shape, out_dtype)
        assert call(x, out) is out
        np.testing.assert_array_equal(out, call(x.astype(out_dtype), None))


def test_elementwise_bytes_do_not_depend_on_thread_count(dtype, threads):
    rng = np.random.default_rng(12)
    size = 600 * 600  # above the parallel threshold
    u = (rng.standard_normal(size) * 3).astype(dtype)
    g = rng.standard_normal(size).astype(dtype)
    results = {}
    for count in (1, 2):
        threads(count)
        params = u.copy()
        velocity = np.zeros(size, dtype)
        K.sgd_update(params, g, velocity, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
        results[count] = [
            K.activation_forward(u, "gelu"),
            K.activation_backward(g, u, "elu"),
            K.softmax(u.reshape(600, 600)),
            K.loss_grad(u.reshape(600, 600), g.reshape(600, 600), "mse", output="tanh"),
            params,
            velocity,
        ]
    for one, two in zip(results[1], results[2]):
        assert one.tobytes() == two.tobytes()


def test_activation_of_a_zero_dim_array_keeps_its_shape(dtype):
    u = np.array(-2.0, dtype)
    got = K.activation_forward(u, "relu")
    assert got.shape == ()
    assert got == ref.activation_forward("relu", u)


def test_sgd_update_of_zero_dim_params(dtype):
    params = np.array(1.0, dtype)
    K.sgd_update(params, np.array(2.0, dtype), lr=0.5)
    assert params == ref.sgd_step(np.array(1.0, dtype), np.array(2.0, dtype), None, lr=0.5)[0]
