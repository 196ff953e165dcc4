"""Embedding -> Conv1D -> GlobalMaxPooling1D -> Dense on a synthetic task that needs
order: every sequence holds tokens 1 and 2 next to each other once, among random
filler tokens; the label says whether 1 comes right before 2 ("1 2") or after it
("2 1"). The bag of tokens is the same for both classes, so a model that ignores order
scores 50%.

    python -m dlcore.examples.sequence_embedding
"""

import numpy as np

import dlcore
from dlcore import layers, models, optimizers
from dlcore.examples._common import Stopwatch, parser

VOCABULARY, LENGTH = 50, 40


def make_sequences(n, seed=0):
    """Token sequences (n, LENGTH) of filler tokens 3..VOCABULARY-1 with one adjacent
    pair of 1 and 2; label 1 when the pair reads "1 2"."""
    rng = np.random.default_rng(seed)
    x = rng.integers(3, VOCABULARY, (n, LENGTH))
    y = rng.integers(0, 2, n)
    at = rng.integers(0, LENGTH - 1, n)
    rows = np.arange(n)
    x[rows, at] = np.where(y == 1, 1, 2)
    x[rows, at + 1] = np.where(y == 1, 2, 1)
    return x.astype(np.int64), y.astype(np.float32)[:, None]


def build():
    return models.Sequential(
        [
            layers.Input((LENGTH,)),
            layers.Embedding(VOCABULARY, 16),
            layers.Conv1D(32, 3, padding="same", activation="relu"),
            layers.GlobalMaxPooling1D(),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="sequence_embedding",
    )


def main(argv=None):
    args = parser(__doc__.splitlines()[0], epochs=8, batch_size=64).parse_args(argv)
    n = 3000 if args.quick else 10000
    if args.quick:
        args.epochs = 6
    x, y = make_sequences(n, seed=args.seed)
    x_test, y_test = make_sequences(1000, seed=args.seed + 1)
    dlcore.set_random_seed(args.seed)
    model = build()
    model.compile(optimizer=optimizers.Adam(3e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    model.summary()
    clock = Stopwatch()
    history = model.fit(
        x, y, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, verbose=2
    )
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(
        f"test accuracy {accuracy:.3f} on whether '1 2' or '2 1' occurs (ignoring order "
        f"scores 0.5); {clock.seconds:.1f} s"
    )
    return {"test_accuracy": accuracy, "losses": history.history["loss"],
            "seconds": clock.seconds}  # fmt: skip


if __name__ == "__main__":
    main()
