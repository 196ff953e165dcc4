"""The first layers against Keras 3: Dense, Conv2D, MaxPooling2D, Flatten, LSTM, the
activations, Reshape, Dropout at inference — predict and training steps from copied
weights."""

import numpy as np
import pytest

from dlcore import layers
from keras_parity import assert_layer_matches_keras


@pytest.fixture
def x_img():
    return np.random.default_rng(1).standard_normal((6, 9, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax"])
def test_dense(optimizer, activation):
    x = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    assert_layer_matches_keras(
        lambda: layers.Dense(4, activation=activation),
        lambda k: k.layers.Dense(4, activation=activation),
        x,
        optimizer=optimizer,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(filters=4, kernel_size=3),
        dict(filters=2, kernel_size=(2, 3), strides=2, padding="same", activation="relu"),
        dict(filters=3, kernel_size=3, dilation_rate=2, padding="same"),
        dict(filters=3, kernel_size=1, use_bias=False),
    ],
)
def test_conv2d(x_img, kwargs):
    assert_layer_matches_keras(
        lambda: layers.Conv2D(**kwargs), lambda k: k.layers.Conv2D(**kwargs), x_img
    )


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(pool_size=3, strides=2, padding="same"), dict(pool_size=(2, 3))]
)
def test_max_pooling2d(x_img, kwargs):
    assert_layer_matches_keras(
        lambda: layers.MaxPooling2D(**kwargs),
        lambda k: k.layers.MaxPooling2D(**kwargs),
        x_img,
        train=False,
    )


def test_flatten_reshape_dropout_leaky_relu(x_img):
    for make_dl, make_k in [
        (lambda: layers.Flatten(), lambda k: k.layers.Flatten()),
        (lambda: layers.Reshape((-1, 3)), lambda k: k.layers.Reshape((-1, 3))),
        (lambda: layers.Dropout(0.5), lambda k: k.layers.Dropout(0.5)),
        (lambda: layers.LeakyReLU(0.1), lambda k: k.layers.LeakyReLU(negative_slope=0.1)),
        (lambda: layers.Activation("tanh"), lambda k: k.layers.Activation("tanh")),
    ]:
        assert_layer_matches_keras(make_dl, make_k, x_img, train=False)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lstm(return_sequences, optimizer):
    x = np.random.default_rng(2).standard_normal((4, 7, 3)).astype(np.float32)
    assert_layer_matches_keras(
        lambda: layers.LSTM(5, return_sequences=return_sequences),
        lambda k: k.layers.LSTM(5, return_sequences=return_sequences),
        x,
        optimizer=optimizer,
    )
