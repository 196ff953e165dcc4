"""A functional model on MNIST: two branches and two outputs, fed by a PyDataset.

    image -> Conv2D(16, 3x3, relu) -> MaxPooling2D -> Conv2D(32, 3x3, relu) -> MaxPooling2D
          -> Flatten ---------------------------------------------------------\\
    image -> Flatten -> Dense(64, relu) ---------------------------------------> Concatenate
    Concatenate -> Dense(128, relu) -> "digit" (10, softmax)
                                    -> "parity" (1, sigmoid: is the digit odd?)

The two losses (sparse categorical and binary cross-entropy) are weighted 1 and 0.2;
the history carries ``loss``, ``digit_loss``, ``parity_loss``, ``digit_accuracy`` and
``parity_accuracy``, as Keras names them. Batches come from a ``utils.PyDataset``
that shuffles itself every epoch; they are loaded in a background thread.

    python -m dlcore.examples.mnist_functional --data ../shared/data/mnist [--epochs 3]
"""

from __future__ import annotations

import time

import numpy as np

import dlcore
from dlcore import layers, optimizers, utils
from dlcore.examples._common import EpochTimer, load_mnist, parser


class MnistBatches(utils.PyDataset):
    """(image, {"digit": label, "parity": label % 2}) batches, reshuffled every epoch."""

    def __init__(self, x, y, batch_size, seed):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        labels = self.y[idx]
        return self.x[idx], {"digit": labels, "parity": (labels % 2).astype(np.float32)[:, None]}

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))


def build_model():
    image = dlcore.Input(shape=(28, 28, 1), name="image")
    conv = layers.Conv2D(16, 3, activation="relu")(image)
    conv = layers.MaxPooling2D()(conv)
    conv = layers.Conv2D(32, 3, activation="relu")(conv)
    conv = layers.Flatten()(layers.MaxPooling2D()(conv))
    dense = layers.Dense(64, activation="relu")(layers.Flatten()(image))
    joined = layers.Dense(128, activation="relu")(layers.Concatenate()([conv, dense]))
    digit = layers.Dense(10, activation="softmax", name="digit")(joined)
    parity = layers.Dense(1, activation="sigmoid", name="parity")(joined)
    model = dlcore.Model(inputs=image, outputs={"digit": digit, "parity": parity})
    model.compile(
        optimizer=optimizers.Adam(learning_rate=1e-3),
        loss={"digit": "sparse_categorical_crossentropy", "parity": "binary_crossentropy"},
        loss_weights={"digit": 1.0, "parity": 0.2},
        metrics={"digit": ["accuracy"], "parity": ["accuracy"]},
    )
    return model


def main(argv=None):
    args = parser(__doc__.splitlines()[0], epochs=3, batch_size=32, mnist_data=True).parse_args(
        argv
    )
    if args.quick:
        args.epochs = 1
    dlcore.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_mnist(
        args.data, train=3000 if args.quick else None, test=1000 if args.quick else None
    )
    model = build_model()
    model.summary()
    timer = EpochTimer()
    start = time.perf_counter()
    history = model.fit(MnistBatches(x_train, y_train, args.batch_size, args.seed),
                        epochs=args.epochs, callbacks=[timer], verbose=1)  # fmt: skip
    train_seconds = time.perf_counter() - start
    logs = model.evaluate(x_test, {"digit": y_test, "parity": (y_test % 2)[:, None]},
                          batch_size=256, verbose=0, return_dict=True)  # fmt: skip
    per_epoch = sum(timer.seconds) / len(timer.seconds)
    print(f"test digit accuracy: {logs['digit_accuracy']:.4f}, parity accuracy: "
          f"{logs['parity_accuracy']:.4f} (loss {logs['loss']:.4f})")  # fmt: skip
    print(f"seconds per epoch: {per_epoch:.2f} (training {train_seconds:.1f} s in all)")
    return {**logs, "seconds_per_epoch": per_epoch, "history": history.history}


if __name__ == "__main__":
    main()
