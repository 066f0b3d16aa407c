"""Bad inputs to backprop.kernels: each raises the exact exception with a message naming the
argument, and leaves every array it was given byte-for-byte as it was."""

import functools
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import backprop as bp

K = bp.kernels


def _f64(*shape):
    """A float64 array with distinct, recognisable values."""
    size = int(np.prod(shape, dtype=np.int64))
    return (np.arange(size, dtype=np.float64) * 0.25 - 1.0).reshape(shape)


def _f32(*shape):
    return _f64(*shape).astype(np.float32)


def _read_only(array):
    array.flags.writeable = False
    return array


def _call(function, *args, **kwargs):
    """The call to make, and everything passed to it (arrays are checked afterwards)."""
    return functools.partial(function, *args, **kwargs), [*args, *kwargs.values()]


def _overlapping_views(first_shape, second_shape, offset):
    """Two C-contiguous views into one buffer, the second starting `offset` elements in."""
    size = max(int(np.prod(first_shape)), offset + int(np.prod(second_shape)))
    buffer = _f64(size)
    first = buffer[: int(np.prod(first_shape))].reshape(first_shape)
    second = buffer[offset: offset + int(np.prod(second_shape))].reshape(second_shape)
    return first, second


def _sgd_velocity_aliasing_params():
    params = _f64(7)
    return _call(K.sgd_update, params, _f64(7), params, lr=0.1, momentum=0.9)


def _sgd_velocity_aliasing_grads():
    grads = _f64(7)
    return _call(K.sgd_update, _f64(7), grads, grads, lr=0.1, momentum=0.9)


def _sgd_params_aliasing_grads():
    params = _f64(7)
    return _call(K.sgd_update, params, params, lr=0.1)


def _gemm_out_overlapping_a():
    A, out = _overlapping_views((3, 3), (3, 3), offset=6)
    return _call(K.gemm, A, _f64(3, 3), out=out)


def _gemm_ref_out_overlapping_b():
    B, out = _overlapping_views((3, 3), (3, 3), offset=8)
    return _call(K.gemm_ref, _f64(3, 3), B, out=out)


def _activation_out_overlapping_u():
    u, out = _overlapping_views((10,), (10,), offset=5)
    return _call(K.activation_forward, u, "tanh", out=out)


def _softmax_backward_out_overlapping_grad():
    grad, out = _overlapping_views((3, 4), (3, 4), offset=11)
    return _call(K.softmax_backward, grad, _f64(3, 4), out=out)


def _bias_grad_out_is_a_row_of_grad():
    grad = _f64(4, 5)
    return _call(K.bias_grad, grad, out=grad[1])


def _velocity_overlapping_params():
    params, velocity = _overlapping_views((8,), (8,), offset=4)
    return _call(K.sgd_update, params, _f64(8), velocity, lr=0.1, momentum=0.9)


def _sharing(shape, make_call):
    """A setup that passes one fresh array to make_call, which passes it on twice."""
    return lambda: make_call(_f64(*shape))


def _does_not_fit(op_a, op_b):
    message = f"A and B do not fit: op(A) has shape {op_a} and op(B) has shape {op_b}"
    return "^" + re.escape(message) + "$"


def _row(id, setup, error, match):
    return pytest.param(setup, error, match, id=id)


STRINGS = np.array([["a", "b"], ["c", "d"]])
NAN_2D = np.array([[0.0, np.nan], [1.0, 2.0]])
INF_2D = np.array([[0.0, np.inf], [1.0, 2.0]])
NEG_INF_2D = np.array([[0.0, -np.inf], [1.0, 2.0]])

BAD_INPUTS = [
    # --- out of the wrong dtype, or not an array -------------------------------------------
    _row("gemm-out-float16",
         lambda: _call(K.gemm, _f64(3, 4), _f64(4, 5), out=np.zeros((3, 5), np.float16)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got float16$"),
    _row("gemm-out-int64",
         lambda: _call(K.gemm, _f64(3, 4), _f64(4, 5), out=np.zeros((3, 5), np.int64)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got int64$"),
    _row("gemm_ref-out-int32",
         lambda: _call(K.gemm_ref, _f64(3, 4), _f64(4, 5), out=np.zeros((3, 5), np.int32)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got int32$"),
    _row("gemm-out-list", lambda: _call(K.gemm, _f64(1, 1), _f64(1, 1), out=[[0.0]]),
         TypeError, r"^out must be a numpy\.ndarray; got list$"),
    _row("activation_forward-out-float16",
         lambda: _call(K.activation_forward, _f32(5), "relu", out=np.zeros(5, np.float16)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got float16$"),
    _row("activation_backward-out-int",
         lambda: _call(K.activation_backward, _f64(5), _f64(5), "relu", out=np.zeros(5, np.int64)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got int64$"),
    _row("softmax-out-float16",
         lambda: _call(K.softmax, _f64(2, 3), out=np.zeros((2, 3), np.float16)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got float16$"),
    _row("softmax_backward-out-int",
         lambda: _call(K.softmax_backward, _f64(2, 3), _f64(2, 3), out=np.zeros((2, 3), np.int16)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got int16$"),
    _row("loss_grad-out-float16",
         lambda: _call(K.loss_grad, _f64(2, 3), _f64(2, 3), "mse",
                       out=np.zeros((2, 3), np.float16)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got float16$"),
    _row("bias_grad-out-int", lambda: _call(K.bias_grad, _f64(2, 3), out=np.zeros(3, np.int64)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got int64$"),
    _row("bias_grad-out-complex",
         lambda: _call(K.bias_grad, _f64(2, 3), out=np.zeros(3, np.complex128)),
         TypeError, r"^out's dtype must be 'float32' or 'float64'; got complex128$"),

    # --- inputs that are not real numbers ----------------------------------------------------
    _row("gemm-A-strings", lambda: _call(K.gemm, STRINGS.copy(), _f64(2, 2)),
         TypeError, r"^A must hold real numbers; got dtype <U1$"),
    _row("gemm-B-object", lambda: _call(K.gemm, _f64(2, 2), _f64(2, 2).astype(object)),
         TypeError, r"^B must hold real numbers; got dtype object$"),
    _row("gemm-A-None", lambda: _call(K.gemm, None, _f64(2, 2)),
         TypeError, r"^A must hold real numbers; got dtype object$"),
    _row("gemm_ref-A-complex", lambda: _call(K.gemm_ref, _f64(2, 2) + 1j, _f64(2, 2)),
         TypeError, r"^A must hold real numbers; got dtype complex128$"),
    _row("gemm-B-datetime", lambda: _call(K.gemm, _f64(2, 2), np.zeros((2, 2), "datetime64[s]")),
         TypeError, r"^B must hold real numbers; got dtype datetime64\[s\]$"),
    _row("activation_forward-u-complex",
         lambda: _call(K.activation_forward, _f64(4).astype(np.complex64), "tanh"),
         TypeError, r"^u must hold real numbers; got dtype complex64$"),
    _row("activation_backward-grad-strings",
         lambda: _call(K.activation_backward, np.array(["1", "2"]), _f64(2), "tanh"),
         TypeError, r"^grad must hold real numbers; got dtype <U1$"),
    _row("activation_backward-u-bytes",
         lambda: _call(K.activation_backward, _f64(2), np.array([b"1", b"2"]), "tanh"),
         TypeError, r"^u must hold real numbers; got dtype \|S1$"),
    _row("softmax-u-object", lambda: _call(K.softmax, np.array([[1.0, "x"]], dtype=object)),
         TypeError, r"^u must hold real numbers; got dtype object$"),
    _row("softmax_backward-p-complex",
         lambda: _call(K.softmax_backward, _f64(2, 2), _f64(2, 2) * 1j),
         TypeError, r"^p must hold real numbers; got dtype complex128$"),
    _row("loss-y-strings", lambda: _call(K.loss, _f64(2, 2), STRINGS.copy(), "mse"),
         TypeError, r"^y must hold real numbers; got dtype <U1$"),
    _row("loss_grad-u-complex", lambda: _call(K.loss_grad, _f64(2, 2) + 0j, _f64(2, 2), "mse"),
         TypeError, r"^u must hold real numbers; got dtype complex128$"),
    _row("bias_grad-grad-object", lambda: _call(K.bias_grad, _f64(2, 2).astype(object)),
         TypeError, r"^grad must hold real numbers; got dtype object$"),
    _row("sgd_update-grads-complex", lambda: _call(K.sgd_update, _f64(3), _f64(3) + 1j, lr=0.1),
         TypeError, r"^grads must hold real numbers; got dtype complex128$"),
    _row("sgd_update-params-list", lambda: _call(K.sgd_update, [1.0, 2.0], _f64(2), lr=0.1),
         TypeError, r"^params must be a numpy\.ndarray; got list$"),
    _row("sgd_update-params-int", lambda: _call(K.sgd_update, np.arange(3), _f64(3), lr=0.1),
         TypeError, r"^params' dtype must be 'float32' or 'float64'; got int64$"),
    _row("sgd_update-params-strings",
         lambda: _call(K.sgd_update, np.array(["a", "b"]), _f64(2), lr=0.1),
         TypeError, r"^params' dtype must be 'float32' or 'float64'; got <U1$"),
    _row("sgd_update-velocity-float32-for-float64",
         lambda: _call(K.sgd_update, _f64(3), _f64(3), _f32(3), lr=0.1, momentum=0.9),
         TypeError, r"^velocity must have dtype float64, got float32$"),
    _row("sgd_update-velocity-list",
         lambda: _call(K.sgd_update, _f64(3), _f64(3), [0.0, 0.0, 0.0], lr=0.1, momentum=0.9),
         TypeError, r"velocity must be a numpy\.ndarray"),

    # --- wrong number of dimensions ----------------------------------------------------------
    _row("gemm-A-1d", lambda: _call(K.gemm, _f64(4), _f64(4, 5)),
         ValueError, r"^A must be 2-D; got shape \(4,\)$"),
    _row("gemm-A-0d", lambda: _call(K.gemm, np.array(2.0), _f64(1, 1)),
         ValueError, r"^A must be 2-D; got shape \(\)$"),
    _row("gemm-B-3d", lambda: _call(K.gemm, _f64(3, 4), _f64(4, 5, 1)),
         ValueError, r"^B must be 2-D; got shape \(4, 5, 1\)$"),
    _row("gemm_ref-B-1d", lambda: _call(K.gemm_ref, _f64(3, 4), _f64(4)),
         ValueError, r"^B must be 2-D; got shape \(4,\)$"),
    _row("gemm-out-1d", lambda: _call(K.gemm, _f64(3, 4), _f64(4, 5), out=np.zeros(15)),
         ValueError, r"^out must be 2-D, got 1-D with shape \(15,\)$"),
    _row("softmax-u-1d", lambda: _call(K.softmax, _f64(5)),
         ValueError, r"^u must be 2-D, got 1-D with shape \(5,\)$"),
    _row("softmax-u-3d", lambda: _call(K.softmax, _f64(2, 3, 4)),
         ValueError, r"^u must be 2-D, got 3-D with shape \(2, 3, 4\)$"),
    _row("softmax_backward-grad-1d", lambda: _call(K.softmax_backward, _f64(6), _f64(2, 3)),
         ValueError, r"^grad must be 2-D, got 1-D with shape \(6,\)$"),
    _row("loss-u-1d", lambda: _call(K.loss, _f64(4), _f64(4), "mse"),
         ValueError, r"^u must be 2-D, got 1-D with shape \(4,\)$"),
    _row("loss_grad-y-3d", lambda: _call(K.loss_grad, _f64(2, 3), _f64(2, 3, 1), "mse"),
         ValueError, r"^y must be 2-D, got 3-D with shape \(2, 3, 1\)$"),
    _row("bias_grad-grad-1d", lambda: _call(K.bias_grad, _f64(5)),
         ValueError, r"^grad must be 2-D; got shape \(5,\)$"),
    _row("bias_grad-out-2d", lambda: _call(K.bias_grad, _f64(2, 5), out=np.zeros((1, 5))),
         ValueError, r"^out must be 1-D, got 2-D with shape \(1, 5\)$"),

    # --- shapes that do not fit --------------------------------------------------------------
    _row("gemm-inner-dims", lambda: _call(K.gemm, _f64(3, 4), _f64(5, 2)),
         ValueError, _does_not_fit((3, 4), (5, 2))),
    _row("gemm-inner-dims-trans_b", lambda: _call(K.gemm, _f64(3, 4), _f64(2, 5), trans_b=True),
         ValueError, _does_not_fit((3, 4), (5, 2))),
    _row("gemm_ref-inner-dims-trans_a",
         lambda: _call(K.gemm_ref, _f64(3, 4), _f64(4, 2), trans_a=True),
         ValueError, _does_not_fit((4, 3), (4, 2))),
    _row("gemm-out-shape", lambda: _call(K.gemm, _f64(3, 4), _f64(4, 5), out=np.zeros((3, 4))),
         ValueError, r"^out must have shape \(3, 5\), got \(3, 4\)$"),
    _row("gemm_ref-out-shape-transposed",
         lambda: _call(K.gemm_ref, _f64(3, 4), _f64(4, 5), out=np.zeros((5, 3))),
         ValueError, r"^out must have shape \(3, 5\), got \(5, 3\)$"),
    _row("gemm-beta-without-out", lambda: _call(K.gemm, _f64(3, 4), _f64(4, 5), beta=1.0),
         ValueError, r"^beta != 0 adds to out's contents, so out must be given$"),
    _row("activation_forward-out-shape",
         lambda: _call(K.activation_forward, _f64(5, 3), "relu", out=np.zeros((3, 5))),
         ValueError, r"^out must have the shape of u \(5, 3\), got \(3, 5\)$"),
    _row("activation_backward-grad-shape",
         lambda: _call(K.activation_backward, _f64(3, 4), _f64(3, 5), "relu"),
         ValueError, r"^grad must have the shape of u \(3, 5\), got \(3, 4\)$"),
    _row("softmax-out-shape", lambda: _call(K.softmax, _f64(2, 3), out=np.zeros((2, 4))),
         ValueError, r"^out must have the shape of u \(2, 3\), got \(2, 4\)$"),
    _row("softmax_backward-grad-shape", lambda: _call(K.softmax_backward, _f64(2, 4), _f64(2, 3)),
         ValueError, r"^grad must have the shape of p \(2, 3\), got \(2, 4\)$"),
    _row("loss-y-shape", lambda: _call(K.loss, _f64(4, 3), _f64(4, 2), "mse"),
         ValueError, r"^y must have the shape of u \(4, 3\), got \(4, 2\)$"),
    _row("loss_grad-out-shape",
         lambda: _call(K.loss_grad, _f64(4, 3), _f64(4, 3), "mse", out=np.zeros((3, 4))),
         ValueError, r"^out must have the shape of u \(4, 3\), got \(3, 4\)$"),
    _row("bias_grad-out-shape", lambda: _call(K.bias_grad, _f64(2, 5), out=np.zeros(4)),
         ValueError, r"^out must have shape \(5,\), got \(4,\)$"),
    _row("sgd_update-grads-shape", lambda: _call(K.sgd_update, _f64(7), _f64(6), lr=0.1),
         ValueError, r"^grads must have the shape of params \(7,\), got \(6,\)$"),
    _row("sgd_update-velocity-shape",
         lambda: _call(K.sgd_update, _f64(7), _f64(7), np.zeros(8), lr=0.1, momentum=0.9),
         ValueError, r"^velocity must have the shape of params \(7,\), got \(8,\)$"),
    _row("loss-no-rows", lambda: _call(K.loss, np.zeros((0, 3)), np.zeros((0, 3)), "mse"),
         ValueError, r"^u must have at least one row$"),
    _row("loss_grad-no-rows",
         lambda: _call(K.loss_grad, np.zeros((0, 3)), np.zeros((0, 3)), "cross_entropy"),
         ValueError, r"^u must have at least one row$"),

    # --- out (or params, velocity) not C-contiguous --------------------------------------------
    _row("gemm-out-transposed-view",
         lambda: _call(K.gemm, _f64(3, 4), _f64(4, 5), out=np.zeros((5, 3)).T),
         ValueError, r"^out must be C-contiguous$"),
    _row("gemm_ref-out-column-slice",
         lambda: _call(K.gemm_ref, _f64(3, 4), _f64(4, 5), out=np.zeros((3, 10))[:, ::2]),
         ValueError, r"^out must be C-contiguous$"),
    _row("activation_forward-out-strided",
         lambda: _call(K.activation_forward, _f64(5), "relu", out=np.zeros(10)[::2]),
         ValueError, r"^out must be C-contiguous$"),
    _row("activation_backward-out-reversed",
         lambda: _call(K.activation_backward, _f64(5), _f64(5), "elu", out=np.zeros(5)[::-1]),
         ValueError, r"^out must be C-contiguous$"),
    _row("softmax-out-fortran",
         lambda: _call(K.softmax, _f64(3, 4), out=np.asfortranarray(np.zeros((3, 4)))),
         ValueError, r"^out must be C-contiguous$"),
    _row("softmax_backward-out-transposed",
         lambda: _call(K.softmax_backward, _f64(3, 4), _f64(3, 4), out=np.zeros((4, 3)).T),
         ValueError, r"^out must be C-contiguous$"),
    _row("loss_grad-out-strided",
         lambda: _call(K.loss_grad, _f64(3, 4), _f64(3, 4), "mse", out=np.zeros((6, 4))[::2]),
         ValueError, r"^out must be C-contiguous$"),
    _row("bias_grad-out-strided", lambda: _call(K.bias_grad, _f64(2, 5), out=np.zeros(10)[::2]),
         ValueError, r"^out must be C-contiguous$"),
    _row("sgd_update-params-strided", lambda: _call(K.sgd_update, _f64(14)[::2], _f64(7), lr=0.1),
         ValueError, r"^params must be C-contiguous$"),
    _row("sgd_update-velocity-strided",
         lambda: _call(K.sgd_update, _f64(7), _f64(7), np.zeros(14)[::2], lr=0.1, momentum=0.9),
         ValueError, r"^velocity must be C-contiguous$"),

    # --- read-only out, params, velocity -----------------------------------------------------
    _row("gemm-out-read-only",
         lambda: _call(K.gemm, _f64(3, 4), _f64(4, 5), out=_read_only(np.zeros((3, 5)))),
         ValueError, r"^out must be writable, got a read-only array$"),
    _row("gemm_ref-out-broadcast",
         lambda: _call(K.gemm_ref, _f64(1, 1), _f64(1, 1),
                       out=np.broadcast_to(np.zeros((1, 1)), (1, 1))),
         ValueError, r"^out must be writable, got a read-only array$"),
    _row("activation_forward-out-read-only",
         lambda: _call(K.activation_forward, _f64(5), "relu", out=_read_only(np.zeros(5))),
         ValueError, r"^out must be writable, got a read-only array$"),
    _row("activation_backward-out-read-only",
         lambda: _call(K.activation_backward, _f64(5), _f64(5), "relu",
                       out=_read_only(np.zeros(5))),
         ValueError, r"^out must be writable, got a read-only array$"),
    _row("softmax-out-read-only",
         lambda: _call(K.softmax, _f64(2, 3), out=_read_only(np.zeros((2, 3)))),
         ValueError, r"^out must be writable, got a read-only array$"),
    _row("softmax_backward-out-read-only",
         lambda: _call(K.softmax_backward, _f64(2, 3), _f64(2, 3),
                       out=_read_only(np.zeros((2, 3)))),
         ValueError, r"^out must be writable, got a read-only array$"),
    _row("loss_grad-out-read-only",
         lambda: _call(K.loss_grad, _f64(2, 3), _f64(2, 3), "mse",
                       out=_read_only(np.zeros((2, 3)))),
         ValueError, r"^out must be writable, got a read-only array$"),
    _row("bias_grad-out-read-only",
         lambda: _call(K.bias_grad, _f64(2, 3), out=_read_only(np.zeros(3))),
         ValueError, r"^out must be writable, got a read-only array$"),
    _row("sgd_update-params-read-only",
         lambda: _call(K.sgd_update, _read_only(_f64(3)), _f64(3), lr=0.1),
         ValueError, r"^params must be writable, got a read-only array$"),
    _row("sgd_update-velocity-read-only",
         lambda: _call(K.sgd_update, _f64(3), _f64(3), _read_only(np.zeros(3)), lr=0.1,
                       momentum=0.9),
         ValueError, r"^velocity must be writable, got a read-only array$"),

    # --- out sharing memory with an input ------------------------------------------------------
    _row("gemm-out-is-A", _sharing((3, 3), lambda A: _call(K.gemm, A, _f64(3, 3), out=A)),
         ValueError, r"^out must not share memory with A$"),
    _row("gemm-out-is-B", _sharing((3, 3), lambda B: _call(K.gemm, _f64(3, 3), B, out=B)),
         ValueError, r"^out must not share memory with B$"),
    _row("gemm-out-overlaps-A", _gemm_out_overlapping_a,
         ValueError, r"^out must not share memory with A$"),
    _row("gemm_ref-out-overlaps-B", _gemm_ref_out_overlapping_b,
         ValueError, r"^out must not share memory with B$"),
    _row("activation_forward-out-is-u",
         _sharing((5,), lambda u: _call(K.activation_forward, u, "sigmoid", out=u)),
         ValueError, r"^out must not share memory with u$"),
    _row("activation_forward-out-overlaps-u", _activation_out_overlapping_u,
         ValueError, r"^out must not share memory with u$"),
    _row("activation_backward-out-is-grad",
         _sharing((5,), lambda g: _call(K.activation_backward, g, _f64(5), "relu", out=g)),
         ValueError, r"^out must not share memory with grad$"),
    _row("activation_backward-out-is-u",
         _sharing((5,), lambda u: _call(K.activation_backward, _f64(5), u, "relu", out=u)),
         ValueError, r"^out must not share memory with u$"),
    _row("softmax-out-is-u", _sharing((2, 3), lambda u: _call(K.softmax, u, out=u)),
         ValueError, r"^out must not share memory with u$"),
    _row("softmax_backward-out-is-p",
         _sharing((2, 3), lambda p: _call(K.softmax_backward, _f64(2, 3), p, out=p)),
         ValueError, r"^out must not share memory with p$"),
    _row("softmax_backward-out-overlaps-grad", _softmax_backward_out_overlapping_grad,
         ValueError, r"^out must not share memory with grad$"),
    _row("loss_grad-out-is-u",
         _sharing((2, 3), lambda u: _call(K.loss_grad, u, _f64(2, 3), "mse", out=u)),
         ValueError, r"^out must not share memory with u$"),
    _row("loss_grad-out-is-y",
         _sharing((2, 3), lambda y: _call(K.loss_grad, _f64(2, 3), y, "mse", out=y)),
         ValueError, r"^out must not share memory with y$"),
    _row("bias_grad-out-is-a-row-of-grad", _bias_grad_out_is_a_row_of_grad,
         ValueError, r"^out must not share memory with grad$"),

    # --- unknown names -----------------------------------------------------------------------
    _row("activation_forward-unknown", lambda: _call(K.activation_forward, _f64(3), "swish"),
         ValueError, r"^activation must be one of 'identity', .*'gelu'; got 'swish'$"),
    _row("activation_forward-wrong-case", lambda: _call(K.activation_forward, _f64(3), "ReLU"),
         ValueError, r"^activation must be one of .*; got 'ReLU'$"),
    _row("activation_forward-not-a-string", lambda: _call(K.activation_forward, _f64(3), 3),
         ValueError, r"^activation must be one of .*; got 3$"),
    _row("activation_forward-softmax-is-not-elementwise",
         lambda: _call(K.activation_forward, _f64(3), "softmax"),
         ValueError, r"^activation must be one of .*; got 'softmax'$"),
    _row("activation_backward-unknown",
         lambda: _call(K.activation_backward, _f64(3), _f64(3), "mish"),
         ValueError, r"^activation must be one of .*; got 'mish'$"),
    _row("activation_forward-alpha-nan",
         lambda: _call(K.activation_forward, _f64(3), "elu", alpha=float("nan")),
         ValueError, r"^alpha must be a finite number; got nan$"),
    _row("activation_backward-alpha-inf",
         lambda: _call(K.activation_backward, _f64(3), _f64(3), "leaky_relu", alpha=float("inf")),
         ValueError, r"^alpha must be a finite number; got inf$"),
    _row("loss-unknown", lambda: _call(K.loss, _f64(2, 3), _f64(2, 3), "hinge"),
         ValueError, r"^loss must be one of 'mse', .*; got 'hinge'$"),
    _row("loss_grad-unknown", lambda: _call(K.loss_grad, _f64(2, 3), _f64(2, 3), "nll"),
         ValueError, r"^loss must be one of .*; got 'nll'$"),
    _row("loss-unknown-output",
         lambda: _call(K.loss, _f64(2, 3), _f64(2, 3), "mse", output="linear"),
         ValueError, r"^output must be one of 'softmax', .*; got 'linear'$"),
    _row("loss_grad-unknown-output",
         lambda: _call(K.loss_grad, _f64(2, 3), _f64(2, 3), "mse", output="swish"),
         ValueError, r"^output must be one of .*; got 'swish'$"),
    _row("loss-unknown-reduction",
         lambda: _call(K.loss, _f64(2, 3), _f64(2, 3), "mse", reduction="avg"),
         ValueError, r"^reduction must be one of 'mean', 'sum'; got 'avg'$"),
    _row("loss_grad-unknown-reduction",
         lambda: _call(K.loss_grad, _f64(2, 3), _f64(2, 3), "mse", reduction=None),
         ValueError, r"^reduction must be one of 'mean', 'sum'; got None$"),

    # --- a loss with an output it is not defined for -----------------------------------------
    _row("loss-cross_entropy-sigmoid",
         lambda: _call(K.loss, _f64(2, 3), _f64(2, 3), "cross_entropy", output="sigmoid"),
         ValueError, r"^loss 'cross_entropy' needs output 'softmax'; got output 'sigmoid'$"),
    _row("loss_grad-cross_entropy-identity",
         lambda: _call(K.loss_grad, _f64(2, 3), _f64(2, 3), "cross_entropy", output="identity"),
         ValueError, r"^loss 'cross_entropy' needs output 'softmax'; got output 'identity'$"),
    _row("loss-binary_cross_entropy-softmax",
         lambda: _call(K.loss, _f64(2, 3), _f64(2, 3), "binary_cross_entropy", output="softmax"),
         ValueError, r"^loss 'binary_cross_entropy' needs output 'sigmoid'; got output 'softmax'$"),
    _row("loss_grad-binary_cross_entropy-tanh",
         lambda: _call(K.loss_grad, _f64(2, 3), _f64(2, 3), "binary_cross_entropy", output="tanh"),
         ValueError, r"^loss 'binary_cross_entropy' needs output 'sigmoid'; got output 'tanh'$"),

    # --- NaN or Inf in a loss's inputs --------------------------------------------------------
    _row("loss-u-nan", lambda: _call(K.loss, NAN_2D.copy(), _f64(2, 2), "mse"),
         ValueError, r"^u contains NaN or Inf$"),
    _row("loss-u-inf", lambda: _call(K.loss, INF_2D.copy(), _f64(2, 2), "cross_entropy"),
         ValueError, r"^u contains NaN or Inf$"),
    _row("loss-y-neg-inf",
         lambda: _call(K.loss, _f64(2, 2), NEG_INF_2D.copy(), "binary_cross_entropy"),
         ValueError, r"^y contains NaN or Inf$"),
    _row("loss_grad-u-neg-inf",
         lambda: _call(K.loss_grad, NEG_INF_2D.copy(), _f64(2, 2), "binary_cross_entropy"),
         ValueError, r"^u contains NaN or Inf$"),
    _row("loss_grad-y-nan",
         lambda: _call(K.loss_grad, _f64(2, 2), NAN_2D.copy(), "cross_entropy",
                       out=np.zeros((2, 2))),
         ValueError, r"^y contains NaN or Inf$"),
    _row("loss_grad-u-nan-float32",
         lambda: _call(K.loss_grad, NAN_2D.astype(np.float32), _f32(2, 2), "mse", output="relu"),
         ValueError, r"^u contains NaN or Inf$"),

    # --- sgd_update's state ------------------------------------------------------------------
    _row("sgd_update-momentum-without-velocity",
         lambda: _call(K.sgd_update, _f64(3), _f64(3), lr=0.1, momentum=0.9),
         ValueError, r"^velocity is required when momentum is not 0$"),
    _row("sgd_update-nesterov-without-velocity",
         lambda: _call(K.sgd_update, _f64(3), _f64(3), None, lr=0.1, momentum=0.5, nesterov=True),
         ValueError, r"^velocity is required when momentum is not 0$"),
    _row("sgd_update-velocity-is-params", _sgd_velocity_aliasing_params,
         ValueError, r"^velocity must not share memory with params$"),
    _row("sgd_update-velocity-overlaps-params", _velocity_overlapping_params,
         ValueError, r"^velocity must not share memory with params$"),
    _row("sgd_update-velocity-is-grads", _sgd_velocity_aliasing_grads,
         ValueError, r"^velocity must not share memory with grads$"),
    _row("sgd_update-grads-are-params", _sgd_params_aliasing_grads,
         ValueError, r"^params must not share memory with grads$"),
    # --- the fused dense kernels -------------------------------------------------------------
    _row("dense_forward-X-1d", lambda: _call(K.dense_forward, _f64(4), _f64(4, 5)),
         ValueError, r"^X must be 2-D; got shape \(4,\)$"),
    _row("dense_forward-W-3d", lambda: _call(K.dense_forward, _f64(3, 4), _f64(4, 5, 1)),
         ValueError, r"^W must be 2-D; got shape \(4, 5, 1\)$"),
    _row("dense_forward-inner-dims", lambda: _call(K.dense_forward, _f64(3, 4), _f64(5, 2)),
         ValueError,
         r"^X and W do not fit: X has shape \(3, 4\), so W must have 4 rows; got shape \(5, 2\)$"),
    _row("dense_forward-b-shape",
         lambda: _call(K.dense_forward, _f64(3, 4), _f64(4, 5), _f64(4)),
         ValueError, r"^b must have shape \(5,\), got \(4,\)$"),
    _row("dense_forward-b-2d",
         lambda: _call(K.dense_forward, _f64(3, 4), _f64(4, 5), _f64(1, 5)),
         ValueError, r"^b must be 1-D; got shape \(1, 5\)$"),
    _row("dense_forward-X-strings", lambda: _call(K.dense_forward, STRINGS.copy(), _f64(2, 2)),
         TypeError, r"^X must hold real numbers; got dtype <U1$"),
    _row("dense_forward-unknown-activation",
         lambda: _call(K.dense_forward, _f64(3, 4), _f64(4, 5), None, "swish"),
         ValueError, r"^activation must be one of .*; got 'swish'$"),
    _row("dense_forward-alpha-nan",
         lambda: _call(K.dense_forward, _f64(3, 4), _f64(4, 5), None, "elu", alpha=float("nan")),
         ValueError, r"^alpha must be a finite number; got nan$"),
    _row("hidden_delta-inner-dims",
         lambda: _call(K.hidden_delta, _f64(3, 4), _f64(5, 3), _f64(3, 5), "relu"),
         ValueError,
         r"^delta and W do not fit: delta has shape \(3, 4\), so W must have 4 columns; "
         r"got shape \(5, 3\)$"),
    _row("hidden_delta-u-shape",
         lambda: _call(K.hidden_delta, _f64(3, 4), _f64(5, 4), _f64(3, 4), "relu"),
         ValueError, r"^u must have shape \(3, 5\), got \(3, 4\)$"),
    _row("hidden_delta-u-1d",
         lambda: _call(K.hidden_delta, _f64(3, 4), _f64(5, 4), _f64(15), "relu"),
         ValueError, r"^u must be 2-D; got shape \(15,\)$"),
    _row("hidden_delta-softmax-is-not-elementwise",
         lambda: _call(K.hidden_delta, _f64(3, 4), _f64(5, 4), _f64(3, 5), "softmax"),
         ValueError, r"^activation must be one of .*; got 'softmax'$"),
    _row("sgd_update-nesterov-without-momentum",
         lambda: _call(K.sgd_update, _f64(3), _f64(3), lr=0.1, nesterov=True),
         ValueError, r"nesterov"),
]


def _arrays_in(values):
    """Every ndarray passed, and the arrays its views were taken from."""
    seen = {}
    for value in values:
        while isinstance(value, np.ndarray):
            seen.setdefault(id(value), value)
            value = value.base
    return list(seen.values())


@pytest.mark.parametrize("setup,error,match", BAD_INPUTS)
def test_bad_input_raises_and_changes_nothing(setup, error, match):
    call, values = setup()
    arrays = _arrays_in(values)
    before = [(a.dtype, a.shape, a.tobytes(), a.flags.writeable) for a in arrays]
    with pytest.raises(error, match=match):
        call()
    for array, (dtype, shape, data, writeable) in zip(arrays, before):
        assert array.dtype == dtype and array.shape == shape
        assert array.flags.writeable == writeable
        assert array.tobytes() == data, "a failed call changed an array it was given"


def test_the_table_has_unique_ids():
    ids = [row.id for row in BAD_INPUTS]
    assert len(ids) == len(set(ids))


# Calls on degenerate but legal-looking inputs: each may return or raise ValueError/TypeError,
# but must never take the interpreter down. They run in a child process so a crash is a failure
# of this test rather than of the whole session.
ODD_CALLS = r"""
    import numpy as np
    import backprop as bp
    K = bp.kernels
    empty_rows, empty_cols = np.zeros((0, 4)), np.zeros((3, 0))
    calls = [
        lambda: K.softmax(empty_rows),
        lambda: K.softmax(empty_cols),
        lambda: K.softmax_backward(empty_cols, empty_cols),
        lambda: K.loss(empty_cols, empty_cols, "cross_entropy"),
        lambda: K.loss_grad(empty_cols, empty_cols, "cross_entropy"),
        lambda: K.loss(empty_cols, empty_cols, "mse", output="softmax"),
        lambda: K.loss_grad(empty_cols, empty_cols, "mse", output="softmax"),
        lambda: K.bias_grad(np.zeros((0, 0))),
        lambda: K.bias_grad(empty_cols, accumulate=True),
        lambda: K.activation_forward(np.float64(2.0), "gelu"),
        lambda: K.activation_forward(np.zeros((2, 0, 3)), "elu"),
        lambda: K.activation_backward(np.zeros((0,)), np.zeros((0,)), "tanh"),
        lambda: K.gemm(np.zeros((0, 0)), np.zeros((0, 0))),
        lambda: K.dense_forward(np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), "gelu"),
        lambda: K.dense_forward(np.zeros((0, 3)), np.zeros((3, 2)), None, "relu"),
        lambda: K.hidden_delta(np.zeros((2, 0)), np.zeros((3, 0)), np.zeros((2, 3)), "elu"),
        lambda: K.dense_forward(np.ones((3, 4))[:, ::-1], np.broadcast_to(2.0, (4, 2)),
                                np.ones(4)[::2], "tanh"),
        lambda: K.gemm(np.zeros((5, 0)), np.zeros((0, 7)), beta=1.0, out=np.ones((5, 7))),
        lambda: K.gemm(np.ones((3, 4))[:, ::-1], np.ones((4, 2))[::-1]),
        lambda: K.gemm(np.broadcast_to(1.0, (3, 4)), np.broadcast_to(2.0, (4, 2))),
        lambda: K.gemm(np.ones((2, 2)), np.ones((2, 2)), alpha=float("nan")),
        lambda: K.gemm(np.ones((2, 2)), np.ones((2, 2)), out=np.zeros((2, 2), np.float32),
                       beta=float("inf")),
        lambda: K.sgd_update(np.zeros(0), np.zeros(0), np.zeros(0), lr=0.1, momentum=0.9),
        lambda: K.sgd_update(np.float64(1.0), 1.0, lr=0.1),
        lambda: K.sgd_update(np.zeros(3), np.zeros(3), "velocity", lr=0.1, momentum=0.9),
        lambda: K.sgd_update(np.zeros(3), np.zeros(3), 12, lr=0.1, momentum=0.9),
        lambda: K.sgd_update(np.zeros(3), np.zeros(3), lr=float("nan")),
    ]
    for call in calls:
        try:
            call()
        except (ValueError, TypeError, FloatingPointError):
            pass
    print("survived", len(calls))
"""


def test_degenerate_inputs_do_not_crash():
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(ODD_CALLS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stderr}"
    assert result.stdout.startswith("survived"), result.stdout


# A (m, 0) array whose data pointer sits on an inaccessible page: any read of its "first"
# element is a segfault, so a kernel that reads u[0] of an empty row is caught every time.
GUARD_PAGE_CALL = r"""
    import ctypes, mmap, sys
    import numpy as np
    import backprop as bp
    K = bp.kernels
    page = mmap.PAGESIZE
    memory = mmap.mmap(-1, 2 * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    if ctypes.CDLL(None).mprotect(ctypes.c_void_p(base + page), page, 0) != 0:  # PROT_NONE
        sys.exit(3)
    u = np.frombuffer(memory, dtype=np.float64, count=0, offset=page).reshape(3, 0)
    try:
        {call}
    except (ValueError, TypeError):
        pass
    print("survived")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses mprotect through ctypes")
@pytest.mark.parametrize("call", [
    pytest.param("K.softmax(u)", id="softmax"),
    pytest.param('K.loss(u, u, "cross_entropy")', id="loss-cross_entropy"),
    pytest.param('K.loss_grad(u, u, "cross_entropy")', id="loss_grad-cross_entropy"),
    pytest.param('K.loss(u, u, "mse", output="softmax")', id="loss-mse-softmax"),
])
def test_rows_without_columns_are_never_read(call):
    script = textwrap.dedent(GUARD_PAGE_CALL).replace("{call}", call)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 3, "could not protect the guard page"
    assert result.returncode == 0 and result.stdout.strip() == "survived", (
        f"exit code {result.returncode}\n{result.stderr}")
