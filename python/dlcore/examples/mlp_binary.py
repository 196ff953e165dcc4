"""An MLP binary classifier on two interleaved half-moons, with L2 regularization, a
learning-rate schedule, accuracy / precision / recall / F1, and 5-fold cross-validation.

    python -m dlcore.examples.mlp_binary
"""

import numpy as np

import dlcore
from dlcore import layers, metrics, models, optimizers, regularizers
from dlcore.examples._common import Stopwatch, parser
from dlcore.model_selection import cross_val_score


def make_moons(n, noise, seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    y = rng.integers(0, 2, n)
    x = np.where(
        y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)]
    )
    return (x + noise * rng.standard_normal((n, 2))).astype(np.float32), y.astype(np.float32)


def build_model(steps_per_epoch=32, seed=0):
    dlcore.set_random_seed(seed)
    l2 = regularizers.L2(1e-4)
    model = models.Sequential(
        [
            layers.Dense(32, activation="relu", kernel_regularizer=l2, input_shape=(2,)),
            layers.Dense(32, activation="relu", kernel_regularizer=l2),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    schedule = optimizers.schedules.ExponentialDecay(
        0.02, decay_steps=steps_per_epoch * 10, decay_rate=0.5
    )
    model.compile(
        optimizer=optimizers.Adam(schedule),
        loss="binary_crossentropy",
        metrics=["accuracy", "precision", "recall", "f1"],
    )
    return model


def main(argv=None):
    args = parser(__doc__.splitlines()[0], epochs=40, batch_size=32).parse_args(argv)
    if args.quick:
        args.epochs = 15
    x, y = make_moons(1000, 0.15, args.seed)
    x_test, y_test = make_moons(500, 0.15, args.seed + 1)
    clock = Stopwatch()
    model = build_model(len(x) // args.batch_size, args.seed)
    history = model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        validation_split=0.2,
        seed=args.seed,
    )
    p = model.predict(x_test)
    scores = {
        "accuracy": metrics.accuracy(y_test, p),
        "precision": metrics.precision(y_test, p),
        "recall": metrics.recall(y_test, p),
        "f1": metrics.f1_score(y_test, p),
    }
    losses = history.history["loss"]
    print(
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f} over {args.epochs} epochs "
        f"(learning rate {model.optimizer.current_learning_rate:.4f} at the end)"
    )
    print("test: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    folds = cross_val_score(
        lambda: build_model(len(x) // args.batch_size, args.seed),
        x,
        y,
        k=5,
        epochs=max(args.epochs // 2, 5),
        batch_size=args.batch_size,
    )
    print(
        f"5-fold cross-validated accuracy: {folds.mean():.3f} +/- {folds.std():.3f} "
        f"({', '.join(f'{s:.3f}' for s in folds)})"
    )
    print(f"done in {clock.seconds:.1f} s")
    return {**scores, "losses": losses, "folds": folds, "seconds": clock.seconds}


if __name__ == "__main__":
    main()
