"""Flushing subnormal numbers to zero while training (on by default, as TensorFlow and JAX do)."""

from __future__ import annotations

from . import _core


def set_flush_denormals(enabled: bool) -> None:
    """Run the native training steps with subnormal numbers flushed to zero (the default), or
    in IEEE arithmetic (False).

    On x86-64 CPUs that take a slow microcode assist for every operation that meets a
    subnormal float (many Intel CPUs), IEEE arithmetic can make training many times slower. It
    takes no exotic data: with momentum above 0.5 (fit's default SGD has 0.9; Adam's betas are
    0.9 and 0.999), the velocity of a
    weight whose gradient has become zero, such as one of a ReLU unit that no longer fires,
    decays into the subnormals and then stays at the smallest of them for good, since 0.9 times
    it rounds back to it. A network of 784-128-10 trained on inputs in [0, 1) ran 7 times
    slower from its 16th epoch on (Adam: 6 times). Flushing, as TensorFlow and JAX do by default, removes that
    cost; PyTorch keeps IEEE arithmetic unless told (``torch.set_flush_denormal``).

    Results change only where a subnormal value would have appeared (read or made): such a
    value becomes 0, so Rprop and Quickprop, which follow a gradient's sign, leave a weight
    whose gradient is subnormal where it is. It applies to Network.train_step, to the epochs
    of fit and the estimators with mini-batch optimizers (SGD, Adam and the like), and to
    Optimizer.step (so a loop of your own around loss_and_grad is flushed in its updates,
    where the cliff above lies); full-batch L-BFGS and Levenberg-Marquardt, kernels called
    directly (backprop.kernels), loss_and_grad, gradcheck, forward and predict keep the calling
    thread's arithmetic (IEEE unless other code changed it), and every thread has its own again
    once a training call returns. "IEEE arithmetic" here likewise means the calling thread's
    own mode. Every thread of a training call flushes alike, so
    results still do not depend on the thread count. Process-wide, like set_num_threads. Where
    the CPU has no such mode (not x86-64) this changes nothing.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool; got {type(enabled).__name__}")
    _core.set_flush_subnormals(enabled)


def get_flush_denormals() -> bool:
    """Whether training flushes subnormal numbers to zero (set_flush_denormals)."""
    return bool(_core.flush_subnormals())
