"""Keras 3's focal and overlap losses: BinaryFocalCrossentropy, CategoricalFocalCrossentropy,
Dice and Tversky. Values (every reduction, with and without sample weights, from
probabilities and from logits) and function forms agree with Keras'; names, defaults and
configs are Keras'; gradients agree with finite differences; and a model compiled with
them trains as Keras' does from the same weights."""

import numpy as np
import pytest

from dlcore import Tensor, layers, losses, models, optimizers
from gradcheck import check_tensor_op
from keras_parity import assert_close, keras_module

RTOL = 2e-5
REDUCTIONS = ["sum_over_batch_size", "sum", None, "mean_with_sample_weight"]


def softmax(z, axis=-1):
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def binary_case(rng, shape=(6, 4)):
    z = (rng.standard_normal(shape) * 2).astype(np.float32)
    y = rng.integers(0, 2, shape).astype(np.float32)
    return y, z, sigmoid(z).astype(np.float32)


def categorical_case(rng, shape=(6, 4)):
    z = (rng.standard_normal(shape) * 2).astype(np.float32)
    y = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])]
    return y, z, softmax(z).astype(np.float32)


def segmentation_case(rng, shape=(3, 5, 5, 2)):
    y = (rng.random(shape) > 0.6).astype(np.float32)
    return y, rng.random(shape).astype(np.float32)


# (class name, options, kind of data, whether y_pred holds logits)
CASES = [
    ("BinaryFocalCrossentropy", {}, "binary", False),
    ("BinaryFocalCrossentropy", {"from_logits": True}, "binary", True),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 3.0},
     "binary", False),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "from_logits": True,
                                 "label_smoothing": 0.2, "gamma": 1.5}, "binary", True),
    ("BinaryFocalCrossentropy", {"gamma": 0.0, "label_smoothing": 0.1}, "binary", False),
    ("BinaryFocalCrossentropy", {"axis": 0}, "binary", False),
    ("CategoricalFocalCrossentropy", {}, "categorical", False),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, "categorical", True),
    ("CategoricalFocalCrossentropy", {"alpha": [0.1, 0.2, 0.3, 0.4], "gamma": 3.0,
                                      "label_smoothing": 0.1}, "categorical", False),
    ("CategoricalFocalCrossentropy", {"alpha": 1.0, "gamma": 0.5, "from_logits": True},
     "categorical", True),
    ("Dice", {}, "segmentation", False),
    ("Dice", {"axis": (1, 2, 3)}, "segmentation", False),
    ("Dice", {"axis": -1}, "segmentation", False),
    ("Tversky", {}, "segmentation", False),
    ("Tversky", {"alpha": 0.3, "beta": 0.7, "axis": (1, 2, 3)}, "segmentation", False),
    ("Tversky", {"alpha": 0.8, "beta": 0.2, "axis": (1, 2)}, "segmentation", False),
]  # fmt: skip
IDS = [f"{c}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'defaults'}" for c, o, *_ in CASES]


def case_data(rng, kind, logits):
    if kind == "binary":
        y, z, p = binary_case(rng)
    elif kind == "categorical":
        y, z, p = categorical_case(rng)
    else:
        y, p = segmentation_case(rng)
        z = p
    return y, (z if logits else p)


def weights_for(rng, cls, options, y, pred):
    """Sample weights of the per-sample losses' shape (one per sample for the usual
    axis; Keras broadcasts weights against the losses' last axis, dlcore their first,
    so the full shape is what both read alike); one per sample for a single loss."""
    shape = getattr(losses, cls)(reduction=None, **options)(y, Tensor(pred)).shape
    return rng.random(shape or y.shape[:1]).astype(np.float32) + 0.1


@pytest.mark.parametrize("cls,options,kind,logits", CASES, ids=IDS)
def test_values_match_keras(rng, cls, options, kind, logits):
    keras = keras_module()
    y, pred = case_data(rng, kind, logits)
    w = weights_for(rng, cls, options, y, pred)
    for reduction in REDUCTIONS:
        ours = getattr(losses, cls)(reduction=reduction, **options)
        theirs = getattr(keras.losses, cls)(reduction=reduction, **options)
        assert_close(ours(y, Tensor(pred)).data, theirs(y, pred), f"{cls} {reduction}", RTOL, 1e-6)
        assert_close(ours(y, Tensor(pred), sample_weight=w).data,
                     theirs(y, pred, sample_weight=w), f"{cls} {reduction} weighted",
                     RTOL, 1e-6)  # fmt: skip


@pytest.mark.parametrize("cls,options,kind,logits", CASES, ids=IDS)
def test_function_forms_match_keras(rng, cls, options, kind, logits):
    keras = keras_module()
    y, pred = case_data(rng, kind, logits)
    name = losses.registry.name_of(getattr(losses, cls)())
    fn = getattr(losses, getattr(losses, cls).name)
    assert name == cls
    ours = fn(y, Tensor(pred), **options)
    theirs = getattr(keras.losses, getattr(losses, cls).name)(y, pred, **options)
    assert ours.shape == tuple(np.shape(theirs))
    assert_close(ours.data, theirs, f"{fn.__name__}", RTOL, 1e-6)


@pytest.mark.parametrize("cls,options,kind,logits", CASES, ids=IDS)
def test_gradients_agree_with_finite_differences(rng, cls, options, kind, logits):
    y, pred = case_data(rng, kind, logits)
    y, pred = y.astype(np.float64), pred.astype(np.float64)
    if not logits:  # away from the clipping at 1e-7 and 1 - 1e-7
        pred = np.clip(pred, 0.05, 0.95)
    w = weights_for(rng, cls, options, y, pred).astype(np.float64)
    make = getattr(losses, cls)
    check_tensor_op(lambda t: make(**options)(y, t), pred, rtol=1e-5, atol=1e-8)
    check_tensor_op(lambda t: make(reduction=None, **options)(y, t), pred, rtol=1e-5, atol=1e-8)
    check_tensor_op(lambda t: make(**options)(y, t, sample_weight=w), pred, rtol=1e-5, atol=1e-8)


def test_gradient_from_a_sigmoid_output_matches_from_logits(rng):
    y, z, _ = binary_case(rng)
    z = z.astype(np.float64)
    a = Tensor(z, requires_grad=True)
    losses.BinaryFocalCrossentropy()(y, a.sigmoid()).backward()
    b = Tensor(z, requires_grad=True)
    losses.BinaryFocalCrossentropy(from_logits=True)(y, b).backward()
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-10)


# ---------------------------------------------------------------- names and configs

NAMES = [
    ("binary_focal_crossentropy", "BinaryFocalCrossentropy"),
    ("categorical_focal_crossentropy", "CategoricalFocalCrossentropy"),
    ("dice", "Dice"),
    ("tversky", "Tversky"),
]


@pytest.mark.parametrize("name,cls", NAMES)
def test_names_defaults_and_config_round_trip_as_keras(name, cls):
    keras = keras_module()
    ours, theirs = getattr(losses, cls)(), getattr(keras.losses, cls)()
    assert isinstance(losses.get(name), getattr(losses, cls))
    assert isinstance(losses.get(cls), getattr(losses, cls))
    assert isinstance(losses.get(getattr(losses, name)), getattr(losses, cls))  # function form
    assert ours.name == theirs.name == name
    config, k_config = ours.get_config(), theirs.get_config()
    assert set(k_config) <= set(config)
    for key, value in k_config.items():
        assert config[key] == value, key
    again = getattr(losses, cls).from_config(config)
    assert again.get_config() == config
    assert losses.deserialize(losses.serialize(ours)).get_config() == config
    # Keras' config makes the same dlcore loss, and the other way round
    assert getattr(losses, cls).from_config(k_config).get_config() == config
    assert getattr(keras.losses, cls).from_config(config).get_config() == k_config


def test_options_travel_through_configs():
    focal = losses.CategoricalFocalCrossentropy(alpha=[0.5, 0.25, 0.25], gamma=1.0,
                                                from_logits=True, label_smoothing=0.1,
                                                reduction="sum", name="cfc")  # fmt: skip
    again = losses.deserialize(losses.serialize(focal))
    assert again.get_config() == focal.get_config()
    assert again.alpha == [0.5, 0.25, 0.25] and again.reduction == "sum" and again.name == "cfc"
    dice = losses.Dice(axis=[1, 2, 3])  # JSON gives a tuple back as a list
    assert dice.axis == (1, 2, 3)
    assert losses.Dice.from_config(dice.get_config()).axis == (1, 2, 3)
    tversky = losses.Tversky(0.2, 0.8, "sum", "tv", (1, 2))  # Keras' positional order
    assert (tversky.alpha, tversky.beta, tversky.reduction, tversky.name, tversky.axis) == (
        0.2, 0.8, "sum", "tv", (1, 2))  # fmt: skip
    bfc = losses.BinaryFocalCrossentropy(True, 0.3, 1.0, True, 0.1, -1, "sum", "b")
    assert bfc.get_config() == {"reduction": "sum", "name": "b", "apply_class_balancing": True,
                                "alpha": 0.3, "gamma": 1.0, "from_logits": True,
                                "label_smoothing": 0.1, "axis": -1}  # fmt: skip


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("make, error, message", [
    (lambda: losses.BinaryFocalCrossentropy(reduction="avg"), ValueError, "reduction must be"),
    (lambda: losses.Dice(reduction="mean_over_batch"), ValueError, "reduction must be"),
    (lambda: losses.BinaryFocalCrossentropy(label_smoothing=1.5), ValueError,
     r"label_smoothing must be in \[0, 1\], got 1.5"),
    (lambda: losses.CategoricalFocalCrossentropy(label_smoothing=-0.1), ValueError,
     "label_smoothing"),
    (lambda: losses.BinaryFocalCrossentropy(gamma="2"), TypeError,
     "gamma must be a number, got '2' of type str"),
    (lambda: losses.BinaryFocalCrossentropy(alpha=None), TypeError, "alpha must be a number"),
    (lambda: losses.BinaryFocalCrossentropy(gamma=float("nan")), ValueError,
     "gamma must be a finite number"),
    (lambda: losses.CategoricalFocalCrossentropy(alpha=["a"]), TypeError, "alpha must be a number"),
    (lambda: losses.CategoricalFocalCrossentropy(alpha=[]), ValueError, "alpha"),
    (lambda: losses.CategoricalFocalCrossentropy(axis=None), ValueError, "axis must be an int"),
    (lambda: losses.Dice(axis="rows"), ValueError, "axis must be an int, a tuple of ints or None"),
    (lambda: losses.Tversky(beta=[0.5]), TypeError, "beta must be a number"),
], ids=["bfce-reduction", "dice-reduction", "smoothing-high", "smoothing-low", "gamma-str",
        "alpha-none", "gamma-nan", "alpha-list-str", "alpha-empty", "cfce-axis-none", "dice-axis",
        "tversky-beta"])  # fmt: skip
def test_bad_arguments_name_the_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_inputs_name_what_was_received_and_expected(rng):
    y, _, p = binary_case(rng)
    with pytest.raises(ValueError, match=r"y_true holds values from 0.0 to 2.0.*\[0, 1\]"):
        losses.BinaryFocalCrossentropy()(y * 2, Tensor(p))
    with pytest.raises(
        ValueError, match=r"y_true has shape \(6, 3\) but y_pred has shape \(6, 4\)"
    ):
        losses.Dice()(y[:, :3], Tensor(p))
    with pytest.raises(ValueError, match=r"alpha has 3 weights but y_pred has 4 classes"):
        losses.CategoricalFocalCrossentropy(alpha=[0.2, 0.3, 0.5])(y, Tensor(p))
    with pytest.raises(ValueError, match=r"axis 3 is out of range for y_pred of shape \(6, 4\)"):
        losses.Tversky(axis=(1, 3))(y, Tensor(p))
    with pytest.raises(ValueError, match="sample_weight of shape"):
        losses.BinaryFocalCrossentropy()(y, Tensor(p), sample_weight=np.ones(5))


def test_what_keras_accepts_is_accepted(rng):
    # Keras checks neither gamma's sign nor Tversky's weights: neither does dlcore
    keras = keras_module()
    y, _, p = binary_case(rng)
    p = np.clip(p, 0.05, 0.95)
    for ours, theirs in (
        (losses.BinaryFocalCrossentropy(gamma=-0.5), keras.losses.BinaryFocalCrossentropy(gamma=-0.5)),
        (losses.Tversky(alpha=2.0, beta=-0.5), keras.losses.Tversky(alpha=2.0, beta=-0.5)),
    ):  # fmt: skip
        assert_close(ours(y, Tensor(p)).data, theirs(y, p), "accepted options", RTOL, 1e-6)
    # 1-D labels against a (N, 1) prediction, as Keras' loss classes accept
    z = rng.standard_normal((5, 1)).astype(np.float32)
    labels = (z[:, 0] > 0).astype(np.float32)
    assert_close(losses.BinaryFocalCrossentropy(from_logits=True)(labels, Tensor(z)).data,
                 keras.losses.BinaryFocalCrossentropy(from_logits=True)(labels, z),
                 "1-D labels", RTOL, 1e-6)  # fmt: skip


# ---------------------------------------------------------------- training


def _binary_data(rng, n=32):
    x = rng.standard_normal((n, 5)).astype(np.float32)
    y = (x[:, :1] + 0.5 * x[:, 1:2] > 0).astype(np.float32)
    return x, y


def _train_both(keras, make_k_loss, make_d_loss, activation, x, y, steps=3, sample_weight=None):
    """Keras' and dlcore's Dense(4, tanh) -> Dense(y's width, activation) from the same
    weights, each compiled with its loss and SGD: the losses of ``steps`` train_on_batch
    calls and the weights after them agree."""
    width = y.shape[-1]
    k_model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(4, activation="tanh"),
                                keras.layers.Dense(width, activation=activation)])  # fmt: skip
    d_model = models.Sequential([layers.Input((x.shape[1],)), layers.Dense(4, activation="tanh"),
                                 layers.Dense(width, activation=activation)])  # fmt: skip
    d_model.set_weights(k_model.get_weights())
    k_model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=make_k_loss())
    d_model.compile(optimizer=optimizers.SGD(learning_rate=0.5), loss=make_d_loss())
    seen = []
    for step in range(steps):
        lk = k_model.train_on_batch(x, y, sample_weight=sample_weight)
        ld = d_model.train_on_batch(x, y, sample_weight=sample_weight)
        assert_close(ld, lk, f"loss at step {step}", 2e-4, 2e-6)
        seen.append(ld)
    assert_close(d_model.get_weights(), k_model.get_weights(), "weights after training", 2e-4, 2e-6)
    return seen, d_model


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_focal_training_matches_keras(rng, from_logits):
    keras = keras_module()
    x, y = _binary_data(rng)
    w = rng.random(len(x)).astype(np.float32)
    options = {"from_logits": from_logits, "apply_class_balancing": True, "alpha": 0.6}
    activation = None if from_logits else "sigmoid"
    for weights in (None, w):
        seen, _ = _train_both(keras, lambda: keras.losses.BinaryFocalCrossentropy(**options),
                              lambda: losses.BinaryFocalCrossentropy(**options), activation, x, y,
                              sample_weight=weights)  # fmt: skip
        assert seen[-1] < seen[0]


def test_losses_by_name_train_as_keras(rng):
    keras = keras_module()
    x, y = _binary_data(rng)
    seen, _ = _train_both(keras, lambda: "binary_focal_crossentropy",
                          lambda: "binary_focal_crossentropy", "sigmoid", x, y)  # fmt: skip
    assert seen[-1] < seen[0]
    labels = (x[:, :3] @ rng.standard_normal((3, 3))).argmax(-1)
    onehot = np.eye(3, dtype=np.float32)[labels]
    for name in ("categorical_focal_crossentropy", "dice", "tversky"):
        seen, _ = _train_both(keras, lambda n=name: n, lambda n=name: n, "softmax", x, onehot)
        assert seen[-1] < seen[0], name


def test_fit_lowers_the_focal_loss(rng):
    x, y = _binary_data(rng, 64)
    model = models.Sequential([layers.Input((5,)), layers.Dense(1)])
    model.compile(optimizer="adam", loss=losses.BinaryFocalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0).history["loss"]
    assert history[-1] < history[0]
    model.compile(optimizer=optimizers.Adam(0.05), loss=losses.binary_focal_crossentropy)
    assert isinstance(model.loss, losses.BinaryFocalCrossentropy)


def test_a_model_compiled_with_a_focal_loss_travels_to_keras_and_back(rng, tmp_path):
    pytest.importorskip("h5py")
    keras = keras_module()
    x, y = _binary_data(rng)
    model = models.Sequential([layers.Input((5,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss=losses.BinaryFocalCrossentropy(gamma=3.0, from_logits=True,
                                                                       apply_class_balancing=True))  # fmt: skip
    model.train_on_batch(x, y)
    model.save(tmp_path / "focal.keras")
    k_model = keras.models.load_model(tmp_path / "focal.keras")
    assert k_model.loss.get_config() == {
        **model.loss.get_config(),
        "reduction": "sum_over_batch_size",
    }
    k_model.save(tmp_path / "back.keras")
    back = models.load_model(tmp_path / "back.keras")
    assert _same_config(back.loss, model.loss)
    assert_close(back.evaluate(x, y, verbose=0), k_model.evaluate(x, y, verbose=0), "evaluate",
                 RTOL, 1e-6)  # fmt: skip
    for path in (tmp_path / "m.dlc", tmp_path / "m.keras"):
        model.save(path)
        assert _same_config(models.load_model(path).loss, model.loss)


def _same_config(a, b):
    """Configs equal up to the spelling of the reduction (a Keras file's
    'sum_over_batch_size' is read as its synonym 'mean')."""
    synonyms = {"mean": "sum_over_batch_size"}

    def plain(loss):
        config = loss.get_config()
        return {**config, "reduction": synonyms.get(config["reduction"], config["reduction"])}

    return plain(a) == plain(b)
