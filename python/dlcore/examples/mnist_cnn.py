"""The tutorials' MNIST convolutional network, trained with Keras-style fit.

Conv2D(32, 3x3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3x3, relu) -> MaxPooling2D(2)
-> Flatten -> Dense(128, relu) -> Dense(10, softmax); Adam, batch 32.

    python -m dlcore.examples.mnist_cnn --data ../shared/data/mnist [--epochs 3]
    mpirun -n 2 python -m dlcore.examples.mnist_cnn --distributed     # data-parallel
"""

from __future__ import annotations

import time

import dlcore
from dlcore import layers, models, optimizers
from dlcore.examples._common import EpochTimer, join_distributed, load_mnist, parser


def build_model():
    model = models.Sequential(
        [
            layers.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    return compiled(model)


def compiled(model):
    """``model`` compiled as the tutorials do: Adam at 1e-3, the sparse categorical
    cross-entropy, accuracy."""
    model.compile(
        optimizer=optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    return train(argv, build_model, __doc__, fit_distributed=True)


def train(argv, build, doc, fit_distributed):
    """Trains ``build()``'s model on MNIST with the example programs' arguments, then
    scores it on the test set; returns what it measured."""
    args = parser(
        doc.splitlines()[0], epochs=3, batch_size=32, mnist_data=True,
        fit_distributed=fit_distributed,
    ).parse_args(argv)  # fmt: skip
    if args.quick:
        args.epochs = 1
    args.distributed = getattr(args, "distributed", False)
    join_distributed(args)
    dlcore.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_mnist(
        args.data, train=3000 if args.quick else None, test=1000 if args.quick else None
    )
    print(
        f"dlcore {dlcore.__version__}, {dlcore.ops.get_num_threads()} threads; "
        f"{len(x_train)} training and {len(x_test)} test images"
    )
    model = build()
    model.summary()
    timer = EpochTimer()
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        callbacks=[timer],
        seed=args.seed,
        verbose=1,
        distributed=args.distributed,
    )
    train_seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(
        x_test, y_test, batch_size=256, verbose=0, distributed=args.distributed
    )
    per_epoch = sum(timer.seconds) / len(timer.seconds)
    print(f"test accuracy: {test_accuracy:.4f} (loss {test_loss:.4f})")
    print(f"seconds per epoch: {per_epoch:.2f} (training {train_seconds:.1f} s in all)")
    return {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "seconds_per_epoch": per_epoch,
        "loss": history.history["loss"],
        "model": model,
    }


if __name__ == "__main__":
    main()
