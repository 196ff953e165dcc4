"""Keras 3 parity helpers: build the same model in dlcore and in Keras (JAX backend, CPU),
copy Keras' weights into dlcore with ``get_weights``/``set_weights``, and compare
``predict`` and the weights and losses after a few ``train_on_batch`` steps.

Keras is an optional test dependency: ``keras_module()`` skips the test without it.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import dlcore

RTOL, ATOL = 2e-5, 2e-6  # float32 rounding, accumulated over a few layers and steps


def keras_module():
    """Keras 3 on JAX, or skip."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jax and keras warn on import (TPU probing, ...)
        keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"the parity tests run Keras on JAX, not {keras.backend.backend()}")
    return keras


import_keras = keras_module


OPTIMIZERS = {
    "sgd": (
        lambda k: k.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        lambda: dlcore.optimizers.SGD(learning_rate=0.05, momentum=0.9),
    ),
    "adam": (
        lambda k: k.optimizers.Adam(learning_rate=0.01),
        lambda: dlcore.optimizers.Adam(learning_rate=0.01),
    ),
}


def copy_weights(dl_model, k_model):
    """Keras' weights into the dlcore model, checking count and shapes match."""
    k_weights = k_model.get_weights()
    d_weights = dl_model.get_weights()
    assert [w.shape for w in d_weights] == [w.shape for w in k_weights], (
        "weight shapes differ from Keras' (order or layout)"
    )
    dl_model.set_weights(k_weights)


def assert_close(actual, expected, what, rtol=RTOL, atol=ATOL):
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), what
        for k in expected:
            assert_close(actual[k], expected[k], f"{what}[{k}]", rtol, atol)
        return
    if isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), what
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, f"{what}[{i}]", rtol, atol)
        return
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol, atol, err_msg=what)


def assert_models_match(
    dl_model,
    k_model,
    x,
    y,
    *,
    loss="mse",
    optimizer="sgd",
    steps=3,
    rtol=RTOL,
    atol=ATOL,
    train=True,
    fit_kwargs=None,
):
    """Copies Keras' weights into dl_model, then compares predict, and (with ``train``)
    the losses of ``steps`` train_on_batch calls and the weights after them. With
    ``fit_kwargs``, training is one ``fit(shuffle=False, **fit_kwargs)`` of both instead,
    and the histories are compared."""
    keras = keras_module()
    copy_weights(dl_model, k_model)
    assert_close(
        dl_model.predict(x, verbose=0), k_model.predict(x, verbose=0), "predict", rtol, atol
    )
    if not train:
        return
    make_k, make_d = OPTIMIZERS[optimizer]
    k_model.compile(optimizer=make_k(keras), loss=loss)
    dl_model.compile(optimizer=make_d(), loss=loss)
    if fit_kwargs is not None:
        kw = dict(epochs=2, batch_size=8, verbose=0, shuffle=False, **fit_kwargs)
        hk = k_model.fit(x, y, **kw).history
        hd = dl_model.fit(x, y, **kw).history
        assert_close({k: hd[k] for k in hk}, hk, "history", rtol * 10, atol * 10)
    else:
        for step in range(steps):
            lk = k_model.train_on_batch(x, y)
            ld = dl_model.train_on_batch(x, y)
            assert_close(ld, lk, f"loss at step {step}", rtol * 10, atol * 10)
    assert_close(dl_model.get_weights(), k_model.get_weights(), "weights after training",
                 rtol * 10, atol * 10)  # fmt: skip


def assert_layer_matches_keras(make_dl, make_k, x, y=None, *, seed=0, **kwargs):
    """One layer in a Sequential of each library, from the same input shape; ``make_dl``
    and ``make_k`` build the layer, or a list of layers (``make_k`` gets the keras
    module). ``y`` defaults to random targets of the output's shape."""
    keras = keras_module()
    x = np.asarray(x)
    k_layers, dl_layers = make_k(keras), make_dl()
    k_layers = k_layers if isinstance(k_layers, list) else [k_layers]
    dl_layers = dl_layers if isinstance(dl_layers, list) else [dl_layers]
    k_model = keras.Sequential([keras.Input(x.shape[1:], dtype=str(x.dtype)), *k_layers])
    dl_model = dlcore.models.Sequential(dl_layers)
    dl_model.build((None, *x.shape[1:]))
    if y is None:
        out = k_model.predict(x, verbose=0)
        y = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
    assert_models_match(dl_model, k_model, x, y, **kwargs)
    return dl_model, k_model


def assert_round_trip(model, x, path):
    """Saves ``model`` at ``path`` (``.dlc`` or ``.keras``), loads it back and compares
    ``predict`` bit for bit (and, for a ``.keras`` file, Keras' ``predict`` of the same
    file to float32 rounding); returns the loaded model and ``model.summary()``'s lines."""
    model.save(path)
    back = dlcore.models.load_model(path)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    if str(path).endswith(".keras"):
        k_model = keras_module().models.load_model(path)
        assert_close(k_model.predict(x, verbose=0), model.predict(x), "the file in Keras")
    lines = []
    model.summary(print_fn=lines.append)
    return back, lines


def assert_keras_refuses(cases):
    """Keras 3 also raises a ValueError for each (make, input shape, ...) of ``cases``:
    the dlcore layer ``make()``'s config, as a Keras layer, called on a Keras Input."""
    keras = keras_module()
    for make, shape, *_ in cases:
        config = make().get_config()
        cls = getattr(keras.layers, type(make()).__name__)
        config.pop("name")
        with pytest.raises(ValueError):
            cls(**config)(keras.Input(shape))


def assert_output_shapes(make, shape, want):
    """A layer ``make()`` gives output shape ``want`` for input ``shape`` (no batch) three
    ways, as a Keras layer does: a symbolic call, compute_output_shape and, when every
    size is known, an eager call on a batch of 2."""
    from dlcore import layers

    assert make()(layers.Input(shape)).shape == want
    assert make().compute_output_shape((None, *shape)) == want
    if None not in shape:
        assert make()(np.zeros((2, *shape), np.float32)).shape == (2, *want[1:])
