"""dlcore.explain: saliency against a float64 finite difference, Integrated Gradients'
completeness shrinking with steps, SmoothGrad against its definition, Grad-CAM finding a
planted pattern, one batched call per explanation, the model left as it was, errors and
the PNG overlay."""

import numpy as np
import pytest

import dlcore
from dlcore import Tensor, explain, layers, models


def small_cnn(dtype="float64", functional=False, seed=0):
    """A smooth (tanh, softmax) CNN on (6, 5, 2) images with 3 outputs."""
    dlcore.set_random_seed(seed)
    stack = [
        layers.Conv2D(4, 3, activation="tanh", padding="same", dtype=dtype, name="conv"),
        layers.Conv2D(3, 2, activation="tanh", dtype=dtype, name="last_conv"),
        layers.Flatten(dtype=dtype),
        layers.Dense(3, activation="softmax", dtype=dtype),
    ]
    if not functional:
        return models.Sequential([layers.Input((6, 5, 2), dtype=dtype), *stack])
    x = inputs = layers.Input((6, 5, 2), dtype=dtype)
    for layer in stack:
        x = layer(x)
    return models.Model(inputs, x)


def outputs(model, x):
    return model(Tensor(x), training=False).data


@pytest.fixture
def x64():
    return np.random.default_rng(3).standard_normal((3, 6, 5, 2))


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("target", [None, 2, [0, 1, 2]])
def test_saliency_is_the_finite_difference_gradient(functional, target, x64):
    model = small_cnn(functional=functional)
    grads = explain.saliency(model, x64, target=target)
    assert grads.shape == x64.shape and grads.dtype == np.float64
    chosen = outputs(model, x64).argmax(axis=1) if target is None else np.broadcast_to(target, 3)
    eps = 1e-6
    expected = np.zeros_like(x64)
    for index in np.ndindex(x64.shape):
        plus, minus = x64.copy(), x64.copy()
        plus[index] += eps
        minus[index] -= eps
        i = index[0]
        expected[index] = (
            outputs(model, plus)[i, chosen[i]] - outputs(model, minus)[i, chosen[i]]
        ) / (2 * eps)
    np.testing.assert_allclose(grads, expected, rtol=1e-6, atol=1e-9)


def test_integrated_gradients_completeness_shrinks_with_steps(x64):
    model = small_cnn()
    baseline = np.full(x64.shape[1:], 0.3)
    target = outputs(model, x64).argmax(axis=1)
    rows = np.arange(len(x64))
    gap = (
        outputs(model, x64)[rows, target]
        - outputs(model, np.broadcast_to(baseline, x64.shape))[rows, target]
    )
    errors = []
    for steps in (2, 8, 32, 128):
        attributions = explain.integrated_gradients(model, x64, baseline=baseline, steps=steps)
        assert attributions.shape == x64.shape
        errors.append(np.abs(attributions.reshape(3, -1).sum(axis=1) - gap).max())
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    # the midpoint rule: a quarter of the error per doubling of the steps, about
    assert errors[-1] < errors[0] / 100 and errors[-1] < 1e-4 * np.abs(gap).max(), errors


def test_integrated_gradients_is_the_path_average_of_saliency(x64):
    model = small_cnn()
    steps = 5
    attributions = explain.integrated_gradients(model, x64, target=1, steps=steps)
    path = [explain.saliency(model, (k + 0.5) / steps * x64, target=1) for k in range(steps)]
    np.testing.assert_allclose(attributions, x64 * np.mean(path, axis=0), rtol=1e-10, atol=1e-12)


def test_smoothgrad_is_the_mean_saliency_of_noisy_copies(x64):
    model = small_cnn()
    samples, noise = 6, 0.2
    got = explain.smoothgrad(model, x64, target=[2, 0, 1], samples=samples, noise=noise, seed=7)
    assert got.shape == x64.shape
    rng = np.random.default_rng(7)
    draws = rng.standard_normal((samples, *x64.shape))
    span = x64.reshape(3, -1).max(axis=1) - x64.reshape(3, -1).min(axis=1)
    noisy = x64 + draws * (noise * span).reshape(1, 3, 1, 1, 1)
    expected = np.mean([explain.saliency(model, n, target=[2, 0, 1]) for n in noisy], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # repeatable with a seed; noise 0 is the saliency
    np.testing.assert_array_equal(
        got, explain.smoothgrad(model, x64, [2, 0, 1], samples, noise, seed=7)
    )
    np.testing.assert_allclose(explain.smoothgrad(model, x64, samples=2, noise=0.0),
                               explain.saliency(model, x64), rtol=1e-9)  # fmt: skip


def test_each_explanation_is_one_batched_call_and_chunks_agree(x64):
    model = small_cnn()
    batches = []
    original = model.call

    def counting(inputs, training=False):
        batches.append(len(inputs))
        return original(inputs, training=training)

    model.call = counting
    ig = explain.integrated_gradients(model, x64, steps=16)
    assert batches == [3, 48]  # the targets, then every point of every path at once
    batches.clear()
    explain.smoothgrad(model, x64, samples=10, seed=1)
    assert batches == [3, 30]
    batches.clear()
    chunked = explain.integrated_gradients(model, x64, steps=16, batch_size=20)
    assert batches == [3, 20, 20, 8]
    np.testing.assert_allclose(chunked, ig, rtol=1e-9)


def test_the_model_is_left_as_it_was(x64):
    model = small_cnn()
    before = [w.data.copy() for w in model.weights]
    flags = [w.requires_grad for w in model.weights]
    explain.saliency(model, x64)
    explain.grad_cam(model, x64, "last_conv")
    assert all(w.grad is None for w in model.weights)
    assert [w.requires_grad for w in model.weights] == flags
    assert all(np.array_equal(w.data, b) for w, b in zip(model.weights, before))
    assert "call" not in vars(model.get_layer("last_conv"))


def test_float32_models_explain_float32_inputs():
    model = small_cnn(dtype="float32")
    x = np.random.default_rng(0).random((2, 6, 5, 2)).astype(np.float32)
    assert explain.saliency(model, x).dtype == np.float32
    assert explain.integrated_gradients(model, x, steps=4).dtype == np.float32
    assert explain.grad_cam(model, x, "conv").shape == (2, 6, 5)


def test_grad_cam_matches_its_definition(x64):
    model = small_cnn()
    maps = explain.grad_cam(model, x64, "conv", target=1)  # "same" padding: no resizing
    # the definition by finite differences through the rest of the model
    conv = model.get_layer("conv")
    acts = conv(Tensor(x64)).data
    rest = models.Sequential(model.layers[1:])

    def score(a):
        return rest(Tensor(a), training=False).data[:, 1]

    grads = np.zeros_like(acts)
    for index in np.ndindex(acts.shape[1:]):
        plus, minus = acts.copy(), acts.copy()
        plus[(slice(None), *index)] += 1e-6
        minus[(slice(None), *index)] -= 1e-6
        grads[(slice(None), *index)] = (score(plus) - score(minus)) / 2e-6
    cam = np.maximum((grads.mean(axis=(1, 2), keepdims=True) * acts).sum(axis=3), 0)
    peak = cam.reshape(3, -1).max(axis=1).reshape(3, 1, 1)
    expected = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-7)


def planted_task(n, seed):
    """16x16 noise images; class 1 holds a bright 4x4 square at a random place."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 16, 16, 1)).astype(np.float32) * 0.5
    y = rng.integers(0, 2, n)
    where = rng.integers(0, 12, (n, 2))
    masks = np.zeros((n, 16, 16), bool)
    for i in np.flatnonzero(y):
        r, c = where[i]
        masks[i, r : r + 4, c : c + 4] = True
    x[masks] = 1.0
    return x, y, masks


def test_grad_cam_highlights_a_planted_pattern():
    dlcore.set_random_seed(0)
    x, y, _ = planted_task(600, seed=0)
    inputs = layers.Input((16, 16, 1))
    h = layers.Conv2D(8, 3, activation="relu", padding="same")(inputs)
    h = layers.Conv2D(8, 3, activation="relu", padding="same", name="last_conv")(h)
    h = layers.MaxPooling2D(4)(h)
    outputs_ = layers.Dense(2, activation="softmax")(layers.Flatten()(h))
    model = models.Model(inputs, outputs_)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    x_test, y_test, masks = planted_task(60, seed=1)
    accuracy = (outputs(model, x_test).argmax(axis=1) == y_test).mean()
    assert accuracy > 0.9, accuracy
    positive = y_test == 1
    maps = explain.grad_cam(model, x_test[positive], "last_conv", target=1)
    inside = (maps * masks[positive]).sum(axis=(1, 2)) / masks[positive].sum(axis=(1, 2))
    outside = (maps * ~masks[positive]).sum(axis=(1, 2)) / (~masks[positive]).sum(axis=(1, 2))
    assert np.median(inside / np.maximum(outside, 1e-6)) > 3, (inside, outside)
    # the hottest pixel of most maps lies on (or next to) the square
    hottest = maps.reshape(len(maps), -1).argmax(axis=1)
    rows, cols = np.unravel_index(hottest, (16, 16))
    near = [masks[positive][i, max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any()
            for i, (r, c) in enumerate(zip(rows, cols))]  # fmt: skip
    assert np.mean(near) > 0.8, np.mean(near)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m, x: explain.saliency(m, x, target=3), ValueError, r"target must be in \[0, 3\)"),
        (lambda m, x: explain.saliency(m, x, target=[0, 1]), ValueError, "one per sample"),
        (lambda m, x: explain.saliency(m, x[0, 0, 0]), ValueError, "non-empty batch"),
        (lambda m, x: explain.saliency(m, x.astype(str)), TypeError, "numeric"),
        (lambda m, x: explain.saliency(m, x, batch_size=0), ValueError, "batch_size"),
        (lambda m, x: explain.smoothgrad(m, x, samples=0), ValueError, "samples"),
        (lambda m, x: explain.smoothgrad(m, x, noise=-1), ValueError, "noise"),
        (lambda m, x: explain.integrated_gradients(m, x, steps=0), ValueError, "steps"),
        (
            lambda m, x: explain.integrated_gradients(m, x, baseline=np.zeros(3)),
            ValueError,
            "baseline",
        ),
        (lambda m, x: explain.grad_cam(m, x, "nope"), ValueError, "no layer named 'nope'"),
        (lambda m, x: explain.grad_cam(m, x, m.layers[-1]), ValueError, "feature maps"),
        (lambda m, x: explain.grad_cam(m, x, layers.Dense(2)), ValueError, "layer must be"),
    ],
)
def test_bad_arguments(call, error, message, x64):
    with pytest.raises(error, match=message):
        call(small_cnn(), x64)


def test_save_overlay_writes_a_png_grid(tmp_path, x64):
    plt = pytest.importorskip("matplotlib.pyplot")
    model = small_cnn()
    maps = explain.grad_cam(model, x64, "conv")
    path = explain.save_overlay(
        tmp_path / "cam.png", x64[..., :1], maps, titles=["a", "b", "c"], columns=2
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    picture = plt.imread(path)
    assert picture.shape[0] > 100 and picture.shape[1] > 100
    explain.save_overlay(
        tmp_path / "one.png", x64[0, ..., 0], np.abs(explain.saliency(model, x64))[0].sum(-1)
    )
    assert (tmp_path / "one.png").stat().st_size > 0
    with pytest.raises(ValueError, match="must match"):
        explain.save_overlay(tmp_path / "bad.png", x64[..., 0], maps[:, :3])
