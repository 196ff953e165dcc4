"""Activations by name (``Dense(activation="gelu")``) and the activation layers ReLU,
ELU, PReLU and Softmax against Keras 3 (predict and training steps from copied weights),
finite-difference gradients, bad arguments, files and the summary line."""

import numpy as np
import pytest

import dlcore
from dlcore import Tensor, activations, layers, models
from dlcore import functional as F
from dlcore.functional.activations import ActivatedTensor
from gradcheck import check_layer, check_tensor_op
from keras_parity import (
    assert_close,
    assert_layer_matches_keras,
    assert_round_trip,
    keras_module,
)

NAMES = ["gelu", "silu", "swish", "elu", "selu", "softplus", "softsign", "hard_sigmoid",
         "hard_silu", "hard_swish", "exponential", "relu6", "mish", "log_softmax"]  # fmt: skip


@pytest.fixture
def x2d():
    return (np.random.default_rng(0).standard_normal((8, 5)) * 2).astype(np.float32)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_dense_with_named_activation_matches_keras(x2d, name, optimizer):
    assert_layer_matches_keras(
        lambda: layers.Dense(6, activation=name), lambda k: k.layers.Dense(6, activation=name),
        x2d * 0.5, optimizer=optimizer,
    )  # fmt: skip


def test_activation_layer_and_function_by_name(x2d):
    keras = keras_module()
    for name in NAMES:
        fn = activations.get(name)
        assert activations.get(activations.serialize(fn)) is fn
        expected = np.asarray(keras.activations.get(name)(x2d))
        assert_close(fn(Tensor(x2d)).numpy(), expected, f"activations.{name}")
        assert_close(layers.Activation(name)(x2d).numpy(), expected, f"Activation({name!r})")
    assert activations.get("swish") is activations.silu
    assert activations.serialize(activations.swish) == "silu"
    assert_close(F.gelu(Tensor(x2d), approximate=True).numpy(),
                 np.asarray(keras.activations.gelu(x2d, approximate=True)), "gelu tanh")  # fmt: skip
    with pytest.raises(ValueError, match="unknown activation 'gelu_fast'"):
        activations.get("gelu_fast")


def test_sigmoid_and_softmax_keep_their_logits_for_the_losses(x2d):
    t = Tensor(x2d)
    for fn, name in ((F.sigmoid, "sigmoid"), (F.softmax, "softmax")):
        out = fn(t)
        assert isinstance(out, ActivatedTensor) and out.activation == name and out.logits is t
    assert not isinstance(F.softmax(t, axis=0), ActivatedTensor)


@pytest.mark.parametrize(
    "fn",
    [F.gelu, lambda x: F.gelu(x, approximate=True), F.silu, F.elu,
     lambda x: F.elu(x, alpha=0.3), F.selu, F.softplus, F.softsign, F.hard_sigmoid,
     F.hard_silu, F.exponential, F.relu6, F.mish, F.sigmoid, F.tanh,
     lambda x: F.relu(x, negative_slope=0.1, max_value=1.5, threshold=0.2)],
)  # fmt: skip
def test_activation_gradients(rng, fn):
    x = rng.uniform(-4, 4, (3, 7))
    # away from the kinks (0, 0.2, 1.5, +-3, 6) where a difference straddles a corner
    x[np.abs(x[..., None] - [0, 0.2, 1.5, -3, 3]).min(-1) < 1e-3] += 0.01
    check_tensor_op(fn, x)


RELU_CASES = [dict(), dict(max_value=6.0), dict(negative_slope=0.1, threshold=0.5),
              dict(max_value=2.0, negative_slope=0.2)]  # fmt: skip


@pytest.mark.parametrize("kwargs", RELU_CASES)
def test_relu_layer_matches_keras(x2d, kwargs):
    assert_layer_matches_keras(
        lambda: layers.ReLU(**kwargs), lambda k: k.layers.ReLU(**kwargs), x2d, train=False
    )


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_elu_layer_matches_keras(x2d, alpha):
    assert_layer_matches_keras(
        lambda: layers.ELU(alpha), lambda k: k.layers.ELU(alpha), x2d, train=False
    )


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]])
def test_softmax_layer_matches_keras(axis):
    x = np.random.default_rng(1).standard_normal((4, 3, 5)).astype(np.float32)
    assert_layer_matches_keras(
        lambda: layers.Softmax(axis), lambda k: k.layers.Softmax(axis), x, train=False
    )


def test_masked_softmax_matches_keras():
    keras = keras_module()
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    for mask in (np.array([1, 1, 0, 1], bool), np.random.default_rng(3).random((2, 3, 4)) > 0.3,
                 np.array([[1], [0], [1]], np.float32)):  # fmt: skip
        expected = np.asarray(keras.layers.Softmax()(x, mask=mask))
        assert_close(layers.Softmax()(x, mask=mask).numpy(), expected, f"mask {mask.shape}")
    check_tensor_op(lambda t: layers.Softmax(dtype="float64")(t, mask=np.array([1, 0, 1, 1], bool)),
                    x.astype(np.float64))  # fmt: skip
    with pytest.raises(ValueError, match=r"mask of shape \(3,\) does not broadcast .* \(2, 3, 4\)"):
        layers.Softmax()(x, mask=np.ones(3, bool))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kwargs", [dict(), dict(shared_axes=[1, 2]),
                                    dict(alpha_initializer="ones", shared_axes=2)])  # fmt: skip
def test_prelu_matches_keras(optimizer, kwargs):
    x = np.random.default_rng(4).standard_normal((5, 3, 4, 2)).astype(np.float32)
    d_model, _ = assert_layer_matches_keras(
        lambda: layers.PReLU(**kwargs), lambda k: k.layers.PReLU(**kwargs), x, optimizer=optimizer
    )
    shape = {(): (3, 4, 2), (1, 2): (1, 1, 2), (2,): (3, 1, 2)}
    assert d_model.layers[0].alpha.shape == shape[tuple(np.ravel(kwargs.get("shared_axes", ())))]


@pytest.mark.parametrize(
    "layer, shape",
    [(layers.PReLU, (3, 4, 2)), (lambda **k: layers.PReLU(shared_axes=[1], **k), (1, 3, 2)),
     (layers.ELU, (2, 5)), (lambda **k: layers.ReLU(max_value=1.0, negative_slope=0.3,
                                                    threshold=0.1, **k), (3, 7)),
     (lambda **k: layers.Softmax(axis=[1, 2], **k), (2, 3, 4))],
)  # fmt: skip
def test_layer_gradients(rng, layer, shape):
    built = layer(dtype="float64")
    built.build((None, *shape[1:]))
    built.set_weights([rng.standard_normal(w.shape) for w in built.weights])
    x = rng.standard_normal(shape)
    x[np.abs(x[..., None] - [0, 0.1, 1.0]).min(-1) < 1e-3] += 0.01
    check_layer(built, x)


def test_bad_arguments_and_inputs():
    for kwargs, match in [
        (dict(max_value=-1), "max_value must be a finite number >= 0, got -1"),
        (dict(negative_slope=-0.1), "negative_slope must be a finite number >= 0, got -0.1"),
        (dict(threshold=float("nan")), "threshold must be a finite number >= 0, got nan"),
    ]:
        with pytest.raises(ValueError, match=match):
            layers.ReLU(**kwargs)
    with pytest.raises(TypeError, match="ReLU: max_value must be a number, got '6'"):
        layers.ReLU(max_value="6")
    with pytest.raises(TypeError, match="ELU: alpha must be a number, got None"):
        layers.ELU(None)
    with pytest.raises(ValueError, match=r"shared_axes must be axes >= 1 .* got \[0\]"):
        layers.PReLU(shared_axes=[0])
    with pytest.raises(ValueError, match=r"shared axis 4 is not an axis of inputs of shape"):
        layers.PReLU(shared_axes=4)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"needs the sizes of the axes it does not share"):
        layers.PReLU().build((None, None, 3))
    p = layers.PReLU()
    p(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected inputs of shape \(None, 3\), got \(2, 4\)"):
        p(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="Softmax: axis must be an int or a list of ints"):
        layers.Softmax(axis="last")
    with pytest.raises(ValueError, match=r"axis 3 is out of range for inputs of shape \(2, 3\)"):
        layers.Softmax(axis=3)(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="argument 'approximate' must be True, False"):
        F.gelu(Tensor(np.zeros(2)), approximate="maybe")


@pytest.mark.parametrize("suffix", [".dlc", ".keras"])
def test_save_load_round_trip_and_summary(tmp_path, rng, suffix):
    model = models.Sequential([
        layers.Dense(4, activation="gelu", input_shape=(3, 5)),
        layers.PReLU(shared_axes=[1]),
        layers.ReLU(max_value=6.0, negative_slope=0.1),
        layers.ELU(0.5),
        layers.Dense(3, activation="mish"),
        layers.Softmax(axis=1),
    ])  # fmt: skip
    x = rng.standard_normal((6, 3, 5)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, rng.random((6, 3, 3)), epochs=1, verbose=0)
    _, lines = assert_round_trip(model, x, tmp_path / f"m{suffix}")
    assert any("(PReLU)" in l and "(None, 3, 4)" in l and l.endswith(" 4") for l in lines)
    assert any("(Softmax)" in l and "(None, 3, 3)" in l for l in lines)
    assert dlcore.layers.deserialize(dlcore.layers.serialize(model.layers[2])).max_value == 6.0
