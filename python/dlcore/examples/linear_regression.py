"""Linear regression by gradient descent, twice: written out with Tensor and backward(),
then as a Dense layer trained with fit. Both recover the weights that made the data.

    python -m dlcore.examples.linear_regression
"""

import numpy as np

import dlcore
from dlcore import Tensor, layers, models, no_grad, optimizers
from dlcore.examples._common import Stopwatch, parser

TRUE_W = np.array([2.0, -3.4])
TRUE_B = 4.2


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    y = (x @ TRUE_W + TRUE_B + 0.01 * rng.standard_normal(n)).astype(np.float32)[:, None]
    return x, y


def by_hand(x, y, epochs, lr, batch_size, seed):
    """Mini-batch gradient descent with the update written out."""
    rng = np.random.default_rng(seed)
    w = Tensor(rng.normal(0, 0.01, (2, 1)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(1, np.float32), requires_grad=True)
    losses = []
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // batch_size)):
            loss = ((Tensor(x[idx]) @ w + b - y[idx]) ** 2).mean()
            loss.backward()
            with no_grad():
                w.data -= lr * w.grad
                b.data -= lr * b.grad
            w.grad = b.grad = None
        with no_grad():
            losses.append(float(((Tensor(x) @ w + b - y) ** 2).mean().data))
    return w.numpy()[:, 0], float(b.numpy()[0]), losses


def with_fit(x, y, epochs, lr, batch_size, seed):
    dlcore.set_random_seed(seed)
    model = models.Sequential([layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=optimizers.SGD(lr), loss="mse")
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, seed=seed)
    kernel, bias = model.get_weights()
    return kernel[:, 0], float(bias[0]), history.history["loss"]


def main(argv=None):
    args = parser(__doc__.splitlines()[0], epochs=5, batch_size=10).parse_args(argv)
    n = 300 if args.quick else 1000
    x, y = make_data(n, args.seed)
    results = {}
    for name, fn in (("by hand", by_hand), ("Dense + fit", with_fit)):
        clock = Stopwatch()
        w, b, losses = fn(x, y, args.epochs, 0.03, args.batch_size, args.seed)
        results[name] = {"w": w, "b": b, "losses": losses, "seconds": clock.seconds}
        print(
            f"{name:>12}: w = {np.round(w, 3)}, b = {b:.3f} (true {TRUE_W}, {TRUE_B}); "
            f"loss {losses[0]:.4f} -> {losses[-1]:.6f} in {clock.seconds:.2f} s"
        )
    return results


if __name__ == "__main__":
    main()
