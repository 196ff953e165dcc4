"""Weight constraints against Keras 3's: the functions, and in training (applied after
each update, as Keras' optimizers do), in configs and in .keras files."""

import numpy as np
import pytest

import dlcore
from dlcore import Tensor, constraints, layers, optimizers

CASES = [("MaxNorm", dict(max_value=1.5)), ("MaxNorm", dict(max_value=2, axis=[0, 1])),
         ("NonNeg", {}), ("UnitNorm", dict(axis=1)),
         ("MinMaxNorm", dict(min_value=0.5, max_value=1.2, rate=0.7))]  # fmt: skip


@pytest.mark.parametrize("name,kw", CASES)
def test_constraints_match_keras(rng, name, kw):
    keras = pytest.importorskip("keras")
    w = rng.standard_normal((3, 4, 5)).astype(np.float32)
    ours = getattr(constraints, name)(**kw)
    np.testing.assert_allclose(ours(w), np.asarray(getattr(keras.constraints, name)(**kw)(w)),
                               rtol=1e-6, atol=1e-7)  # fmt: skip
    again = constraints.get({"class_name": name, "config": ours.get_config()})
    np.testing.assert_array_equal(again(w), ours(w))


def test_max_norm_dense_trains_as_keras(rng):
    keras = pytest.importorskip("keras")
    x = rng.standard_normal((16, 4)).astype(np.float32) * 3
    y = rng.standard_normal((16, 3)).astype(np.float32) * 5
    km = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        3, kernel_constraint=keras.constraints.MaxNorm(0.5), bias_constraint="non_neg")])  # fmt: skip
    dm = dlcore.Sequential([layers.Input((4,)), layers.Dense(
        3, kernel_constraint=constraints.MaxNorm(0.5), bias_constraint="non_neg")])  # fmt: skip
    dm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse")
    dm.compile(optimizer=optimizers.SGD(0.2), loss="mse")
    for _ in range(3):
        np.testing.assert_allclose(dm.train_on_batch(x, y), km.train_on_batch(x, y), rtol=1e-5)
    for a, b in zip(dm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    kernel = dm.layers[0].kernel.numpy()
    assert np.sqrt((kernel**2).sum(axis=0)).max() <= 0.5 + 1e-6
    config = dm.layers[0].get_config()
    assert config["kernel_constraint"]["class_name"] == "MaxNorm"
    rebuilt = layers.Dense.from_config(config)
    assert isinstance(rebuilt.kernel_constraint, constraints.MaxNorm)


def test_constraints_in_a_custom_loop_and_in_keras_files(rng, tmp_path):
    keras = pytest.importorskip("keras")
    w = Tensor(np.full((2, 3), 5.0, np.float32), requires_grad=True)
    holder = layers.Layer(name="holder")
    v = holder.add_weight("v", (2, 3), "ones", constraint="non_neg")
    opt = optimizers.SGD(1.0, params=[v, w])
    v.grad = np.full((2, 3), 3.0, np.float32)  # the step takes v to -2: back to 0
    opt.step()
    assert (v.numpy() == 0).all()
    km = keras.Sequential([keras.Input((4,)),
                           keras.layers.Dense(2, kernel_constraint=keras.constraints.UnitNorm())])  # fmt: skip
    km.save(tmp_path / "k.keras")
    loaded = dlcore.models.load_model(tmp_path / "k.keras")
    assert isinstance(loaded.layers[0].kernel_constraint, constraints.UnitNorm)
    loaded.save(tmp_path / "d.keras")
    back = keras.models.load_model(tmp_path / "d.keras")
    assert type(back.layers[0].kernel_constraint).__name__ == "UnitNorm"


def test_bad_constraint_names_say_so():
    with pytest.raises(ValueError, match=r"unknown constraint 'max_nrom'.*MaxNorm"):
        layers.Dense(2, kernel_constraint="max_nrom")
