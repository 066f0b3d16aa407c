"""Shared test settings: tolerances in one place, and the dtypes every kernel is tested in."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

DTYPES = (np.float32, np.float64)

# Relative tolerance of a native result against the NumPy reference, per dtype; absolute
# tolerances are scaled by the size of the sum (k for GEMM) where a sum is involved.
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}
ATOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-14}

# Finite-difference gradient checks (float64, central differences, eps 1e-6).
GRADCHECK_RTOL = 1e-5
GRADCHECK_ATOL = 1e-8


def tolerances(dtype, terms: int = 1) -> dict[str, float]:
    """rtol/atol for comparing a result made of sums of `terms` products."""
    dt = np.dtype(dtype)
    scale = max(1.0, float(np.sqrt(terms)))
    return {"rtol": RTOL[dt] * scale, "atol": ATOL[dt] * scale}


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(params=bp.kernels.available_isas())
def gemm_isa(request):
    """Runs a test once per GEMM path this CPU has, then restores the automatic choice."""
    bp.kernels.set_gemm_isa(request.param)
    yield request.param
    bp.kernels.set_gemm_isa("auto")


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    before = bp.get_num_threads()
    yield bp.set_num_threads
    bp.set_num_threads(before)


@pytest.fixture(autouse=True)
def _splits_never_pause():
    """A busy machine must not quietly turn a test's split GEMMs into one-thread ones (the pause
    after a late thread, call_burst.hpp): a test of the pause sets one of its own."""
    before = bp._core.call_burst_settings()
    bp._core.set_call_burst_settings(before[0], before[1], 0)
    yield
    bp._core.set_call_burst_settings(*before)


@pytest.fixture(autouse=True)
def _flushing_restored():
    """Training flushes subnormals to zero by default: a test that turns it off (or on) leaves
    the default behind."""
    yield
    bp.set_flush_denormals(True)


# A burst window no two calls fall outside of: every GEMM after the first is in a burst.
ALWAYS_IN_BURST_NS = 10 ** 15


@pytest.fixture
def call_burst():
    """Changes the rule of call_burst.hpp (bursts of calls, late threads), then restores it:
    call it with any of window_ns, late_start_ns and pause_ns. Each change also forgets the
    calls so far."""
    before = bp._core.call_burst_settings()

    def change(window_ns=None, late_start_ns=None, pause_ns=None):
        now = bp._core.call_burst_settings()
        bp._core.set_call_burst_settings(now[0] if window_ns is None else window_ns,
                                         now[1] if late_start_ns is None else late_start_ns,
                                         now[2] if pause_ns is None else pause_ns)

    yield change
    bp._core.set_call_burst_settings(*before)
