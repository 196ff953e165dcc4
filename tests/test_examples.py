"""Every tutorial program runs with --quick and learns what it sets out to."""

import numpy as np
import pytest


def run(name, *argv):
    from importlib import import_module

    return import_module(f"dlcore.examples.{name}").main(list(argv))


def test_tensor_ops_gradients_match_finite_differences(capsys):
    r = run("tensor_ops")
    a, b, w = r["a"].astype(np.float64), r["b"].astype(np.float64), r["w"].astype(np.float64)

    def loss(a, b, w):
        return np.maximum((a * b + a / 2) @ w, 0).sum() + (a.T**2).mean()

    assert r["loss"] == pytest.approx(loss(a, b, w), rel=1e-6)
    for name, x in (("grad_a", a), ("grad_b", b), ("grad_w", w)):
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            up, down = x.copy(), x.copy()
            up[i] += 1e-6
            down[i] -= 1e-6
            args = {"grad_a": (up, b, w), "grad_b": (a, up, w), "grad_w": (a, b, up)}[name]
            args_d = {"grad_a": (down, b, w), "grad_b": (a, down, w), "grad_w": (a, b, down)}[name]
            numeric[i] = (loss(*args) - loss(*args_d)) / 2e-6
        np.testing.assert_allclose(r[name], numeric, rtol=1e-4, atol=1e-4, err_msg=name)
    assert "d loss / d b" in capsys.readouterr().out


def test_linear_regression_recovers_the_true_weights():
    from dlcore.examples.linear_regression import TRUE_B, TRUE_W

    for fit in run("linear_regression", "--quick").values():
        np.testing.assert_allclose(fit["w"], TRUE_W, atol=0.05)
        assert fit["b"] == pytest.approx(TRUE_B, abs=0.05)
        assert fit["losses"][-1] < fit["losses"][0] / 100


def test_logistic_regression_classifies():
    for fit in run("logistic_regression", "--quick").values():
        assert fit["accuracy"] > 0.9 and fit["f1"] > 0.9
        assert fit["losses"][-1] < fit["losses"][0] / 2


def test_mlp_binary_learns_the_moons_and_cross_validates():
    r = run("mlp_binary", "--quick")
    assert r["accuracy"] > 0.95 and r["precision"] > 0.9 and r["recall"] > 0.9
    assert r["losses"][-1] < r["losses"][0] / 4
    assert len(r["folds"]) == 5 and r["folds"].mean() > 0.93


def test_mnist_mlp(mnist_dir, tmp_path):
    r = run("mnist_mlp", "--quick", "--data", mnist_dir, "--plot", str(tmp_path / "c.png"))
    assert r["test_accuracy"] > 0.9
    assert r["losses"][-1] < r["losses"][0] / 2
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_autoencoder_reconstructs(mnist_dir, tmp_path):
    r = run("autoencoder", "--quick", "--data", mnist_dir, "--out", str(tmp_path / "ae.png"))
    assert r["mse"] < 0.6 * r["baseline_mse"]
    assert r["losses"][-1] < r["losses"][0] * 0.7
    assert (tmp_path / "ae.png").stat().st_size > 1000


def test_gan_trains_both_players(mnist_dir, tmp_path):
    r = run("gan", "--quick", "--data", mnist_dir, "--out", str(tmp_path / "gan.png"))
    assert np.isfinite(r["d_loss"]).all() and np.isfinite(r["g_loss"]).all()
    samples = r["samples"]
    assert samples.shape == (40, 784) and samples.min() >= -1 and samples.max() <= 1
    # MNIST is mostly background: the real mean pixel is about -0.74 in [-1, 1]. An
    # untrained generator's tanh sits near 0; after the quick run it has moved well
    # towards the data (about -0.4) without collapsing to one image.
    from dlcore.examples.gan import build

    untrained, _ = build(0)
    assert abs(untrained.predict(np.random.default_rng(1).standard_normal((40, 64))).mean()) < 0.1
    assert samples.mean() < -0.3
    assert samples.std(axis=0).mean() > 0.05
    assert (tmp_path / "gan.png").stat().st_size > 1000


def test_mnist_cnn(mnist_dir):
    r = run("mnist_cnn", "--quick", "--data", mnist_dir)
    assert r["test_accuracy"] > 0.9
    assert r["seconds_per_epoch"] > 0


def test_mnist_cnn_one_full_epoch_reaches_97_percent(mnist_dir):
    # the main job's model, one epoch on the whole 20k training subset, scored on the
    # official 10k test set
    r = run("mnist_cnn", "--epochs", "1", "--data", mnist_dir)
    assert r["test_accuracy"] >= 0.97


def test_mnist_cnn_bn_learns_and_predicts_with_its_moving_statistics(mnist_dir):
    r = run("mnist_cnn_bn", "--quick", "--data", mnist_dir)
    assert r["test_accuracy"] > 0.9
    model = r["model"]
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(norms) == 2
    for norm in norms:  # training moved the statistics away from their initial 0 and 1
        assert np.abs(norm.moving_mean.numpy()).max() > 0.01
        assert np.abs(norm.moving_variance.numpy() - 1).max() > 0.01
    # inference normalises with the moving statistics: an image's prediction does not
    # depend on the batch it comes in, as it would with the batch's statistics
    from dlcore.examples._common import load_mnist

    _, (x, _) = load_mnist(mnist_dir, test=64)
    together = model.predict(x, batch_size=64, verbose=0)
    one_by_one = np.concatenate([model.predict(x[i : i + 1], verbose=0) for i in range(8)])
    np.testing.assert_allclose(one_by_one, together[:8], rtol=1e-4, atol=1e-5)
    assert r["seconds_per_epoch"] > 0


def test_stacked_lstm_forecasts_better_than_repeating():
    r = run("stacked_lstm", "--quick")
    assert r["test_mse"] < 0.5 * r["naive_mse"]
    assert r["losses"][-1] < r["losses"][0] / 3


def test_mnist_functional_learns_both_outputs(mnist_dir):
    r = run("mnist_functional", "--quick", "--data", mnist_dir)
    assert r["digit_accuracy"] > 0.85 and r["parity_accuracy"] > 0.8
    history = r["history"]
    assert {"loss", "digit_loss", "parity_loss", "digit_accuracy", "parity_accuracy"} <= set(
        history
    )
