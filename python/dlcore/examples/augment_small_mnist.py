"""Augmentation for small data: the tutorial CNN trained on 1,000 MNIST digits, with
and without random rotations, shifts and zooms in front of it, scored on the 10,000
test digits.

The augmentation layers are part of the model: they transform every training batch
anew (so the network never sees the same image twice) and are the identity in
``evaluate`` and ``predict``.

    python -m dlcore.examples.augment_small_mnist --data ../shared/data/mnist
"""

from __future__ import annotations

import dlcore
from dlcore import layers, models
from dlcore.examples._common import Stopwatch, load_mnist, parser
from dlcore.examples.mnist_cnn import build_model as tutorial_cnn
from dlcore.examples.mnist_cnn import compiled


def augmentation(seed):
    return [
        layers.RandomRotation(0.04, fill_mode="constant", seed=seed),
        layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed + 1),
        layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 2),
    ]


def build_model(augment, seed=0):
    """The tutorial CNN, with the augmentation layers first when ``augment``."""
    cnn = tutorial_cnn()
    if not augment:
        return cnn
    return compiled(
        models.Sequential([layers.Input((28, 28, 1)), *augmentation(seed), *cnn.layers])
    )


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=30, batch_size=32, mnist_data=True)
    p.add_argument("--train", type=int, default=1000, help="training digits")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.train = 8, 500
    (x_train, y_train), (x_test, y_test) = load_mnist(
        args.data, train=args.train, test=2000 if args.quick else None
    )
    print(f"{len(x_train)} training digits, {len(x_test)} test digits, {args.epochs} epochs")
    results = {}
    for augment in (False, True):
        dlcore.set_random_seed(args.seed)
        model = build_model(augment, args.seed)
        clock = Stopwatch()
        history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                            seed=args.seed, verbose=0)  # fmt: skip
        seconds = clock.seconds
        _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
        name = "augmented" if augment else "plain"
        results[name] = {
            "test_accuracy": accuracy,
            "train_accuracy": history.history["accuracy"][-1],
            "seconds": seconds,
            "model": model,
        }
        print(f"{name:>9}: test accuracy {accuracy:.4f} (last epoch's training accuracy "
              f"{history.history['accuracy'][-1]:.4f}), {seconds:.1f} s")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
