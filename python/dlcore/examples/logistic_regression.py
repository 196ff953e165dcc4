"""Logistic regression: a hand-written gradient-descent loop on sigmoid + binary
cross-entropy, then the same model as Dense(1, sigmoid) with fit; accuracy, precision,
recall and F1 on held-out data.

    python -m dlcore.examples.logistic_regression
"""

import numpy as np

import dlcore
from dlcore import Tensor, layers, metrics, models, no_grad, optimizers
from dlcore import functional as F
from dlcore.examples._common import Stopwatch, parser


def make_data(n, seed):
    """Two overlapping Gaussian clouds in 2-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 2)) + np.where(y[:, None] == 1, [1.5, 1.0], [-1.0, -1.0])
    return x.astype(np.float32), y.astype(np.float32)[:, None]


def report(name, y_true, p, seconds, losses):
    scores = {
        "accuracy": metrics.accuracy(y_true, p),
        "precision": metrics.precision(y_true, p),
        "recall": metrics.recall(y_true, p),
        "f1": metrics.f1_score(y_true, p),
    }
    print(
        f"{name:>12}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        + f"; loss {losses[0]:.3f} -> {losses[-1]:.3f} in {seconds:.2f} s"
    )
    return {**scores, "losses": losses, "seconds": seconds}


def main(argv=None):
    args = parser(__doc__.splitlines()[0], epochs=100, batch_size=32).parse_args(argv)
    if args.quick:
        args.epochs = 30
    x, y = make_data(1000, args.seed)
    x_test, y_test = make_data(500, args.seed + 1)
    results = {}

    clock = Stopwatch()
    w = Tensor(np.zeros((2, 1), np.float32), requires_grad=True)
    b = Tensor(np.zeros(1, np.float32), requires_grad=True)
    losses = []
    for _ in range(args.epochs):  # full-batch gradient descent
        loss = F.binary_crossentropy(y, (Tensor(x) @ w + b).sigmoid())
        loss.backward()
        with no_grad():
            w.data -= 0.5 * w.grad
            b.data -= 0.5 * b.grad
        w.grad = b.grad = None
        losses.append(float(loss.data))
    with no_grad():
        p = (Tensor(x_test) @ w + b).sigmoid().numpy()
    results["by hand"] = report("by hand", y_test, p, clock.seconds, losses)

    clock = Stopwatch()
    dlcore.set_random_seed(args.seed)
    model = models.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(2,))])
    model.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(
        x,
        y,
        epochs=max(args.epochs // 10, 3),
        batch_size=args.batch_size,
        verbose=0,
        seed=args.seed,
    )
    results["Dense + fit"] = report(
        "Dense + fit", y_test, model.predict(x_test), clock.seconds, history.history["loss"]
    )
    return results


if __name__ == "__main__":
    main()
