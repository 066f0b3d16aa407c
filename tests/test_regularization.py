"""Gradient clipping (global norm and value) and L1, shared by every first-order optimizer."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def _grads(dtype, n=10_000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n).astype(dtype) * 3, rng.standard_normal(n).astype(dtype)


def test_clip_norm_scales_the_whole_gradient_as_torch_does(dtype):
    params, grads = _grads(dtype)
    expected = params.astype(np.float64).copy()
    norm = np.sqrt((grads.astype(np.float64) ** 2).sum())
    coefficient = min(1.0, 1.5 / (norm + 1e-6))
    expected -= 0.1 * grads * coefficient
    bp.optim.SGD(lr=0.1, clip_norm=1.5).step(params, grads)
    np.testing.assert_allclose(params, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_clip_norm_above_the_norm_changes_nothing(dtype):
    params, grads = _grads(dtype)
    plain = params.copy()
    bp.optim.SGD(lr=0.1, clip_norm=1e9).step(params, grads)
    bp.optim.SGD(lr=0.1).step(plain, grads)
    assert params.tobytes() == plain.tobytes()


def test_clip_value_clamps_each_entry_then_l1_adds_the_sign(dtype):
    params, grads = _grads(dtype, n=257)
    expected = params - np.dtype(dtype).type(0.5) * (np.clip(grads, -0.3, 0.3) + 0.01 * np.sign(params))
    bp.optim.SGD(lr=0.5, clip_value=0.3, l1=0.01).step(params, grads)
    np.testing.assert_allclose(params, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_the_gradient_norm_is_the_same_for_any_thread_count(threads):
    grads = np.random.default_rng(3).standard_normal(300_001)
    results = []
    for count in (1, 2):
        threads(count)
        params = np.zeros_like(grads)
        bp.optim.Adam(lr=0.1, clip_norm=0.5).step(params, grads)
        results.append(params.tobytes())
    assert results[0] == results[1]


def test_l1_drives_useless_weights_to_zero():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 8))
    y = X[:, :2] @ np.array([[2.0], [-1.0]])  # only the first two inputs matter
    net = bp.Network([8, 1], output="identity", loss="mse", dtype="float64", seed=0)
    net.fit(X, y, optimizer=bp.optim.SGD(lr=0.05, l1=0.02), epochs=300, batch_size=None,
            verbose=0)
    w = net.layers[0].W.ravel()
    assert np.abs(w[2:]).max() < 0.02
    assert abs(w[0]) > 1.5 and abs(w[1]) > 0.5


def test_options_are_saved_with_the_optimizer_settings():
    opt = bp.optim.RMSprop(lr=0.01, clip_norm=2.0, clip_value=1.0, l1=0.001)
    settings = opt._settings()
    assert settings["clip_norm"] == 2.0 and settings["clip_value"] == 1.0 and settings["l1"] == 0.001
    again = bp.optim.RMSprop(**settings)
    assert again._settings() == settings


@pytest.mark.parametrize("options, match", [
    ({"clip_norm": 0}, "clip_norm"), ({"clip_norm": -1}, "clip_norm"),
    ({"clip_value": float("nan")}, "clip_value"), ({"l1": -0.1}, "l1"),
])
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        bp.optim.Adam(**options)


def test_unknown_options_are_refused():
    with pytest.raises(TypeError, match="clipnorm"):
        bp.optim.SGD(clipnorm=1.0)
