"""Flushing subnormal numbers to zero while training (off by default: IEEE arithmetic)."""

from __future__ import annotations

from . import _core


def set_flush_denormals(enabled: bool) -> None:
    """Run the native training steps with subnormal numbers flushed to zero, or not.

    Off by default. On x86-64 CPUs that take a slow microcode assist for every operation that
    meets a subnormal float (many Intel CPUs), a network that has learned its data so well that
    its gradients shrink below 1.2e-38 (float32) can train several times slower; flushing them
    to zero, as TensorFlow and JAX do, removes that cost. Results change only where a subnormal
    value would have appeared (read or made): such a gradient becomes 0, so Rprop and Quickprop,
    which follow a gradient's sign, leave that weight where it is. It applies to Network.train_step and to the epochs of fit and the estimators with
    mini-batch optimizers (SGD, Adam and the like); full-batch L-BFGS and Levenberg-Marquardt,
    Optimizer.step, kernels called directly (backprop.kernels), loss_and_grad, forward and
    predict keep IEEE
    arithmetic, as does the calling thread once a call returns. Every thread of a training call
    flushes alike, so results still do not depend on the thread count. Process-wide, like
    set_num_threads. Where the CPU has no such mode (not x86-64) this changes nothing.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool; got {type(enabled).__name__}")
    _core.set_flush_subnormals(enabled)


def get_flush_denormals() -> bool:
    """Whether training flushes subnormal numbers to zero (set_flush_denormals)."""
    return bool(_core.flush_subnormals())
