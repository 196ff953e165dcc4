"""A dense autoencoder on MNIST: 784 -> 128 -> 32 -> 128 -> 784, trained to reproduce
its input; prints the reconstruction error and saves originals above reconstructions.

    python -m dlcore.examples.autoencoder --data ../shared/data/mnist [--out autoencoder.png]
"""

import numpy as np

import dlcore
from dlcore import layers, models, optimizers
from dlcore.examples._common import Stopwatch, load_mnist, parser, save_image_grid


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=10, batch_size=256, mnist_data=True)
    p.add_argument("--out", default="autoencoder.png", help="where to save the image grid")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 10
    dlcore.set_random_seed(args.seed)
    (x, _), (x_test, _) = load_mnist(
        args.data, flat=True, train=4000 if args.quick else None, test=1000 if args.quick else None
    )
    model = models.Sequential(
        [
            layers.Dense(128, activation="relu", input_shape=(784,)),
            layers.Dense(32, activation="relu"),  # the code
            layers.Dense(128, activation="relu"),
            layers.Dense(784, activation="sigmoid"),
        ]
    )
    return fit_and_show(model, x, x_test, args)


def fit_and_show(model, x, x_test, args):
    """Trains ``model`` to reproduce ``x``, prints its test reconstruction error beside
    the mean image's, and saves originals above reconstructions at ``args.out``."""
    model.compile(optimizer=optimizers.Adam(2e-3), loss="binary_crossentropy")
    clock = Stopwatch()
    baseline = float(np.mean((x_test - x.mean(axis=0)) ** 2))  # predicting the mean image
    history = model.fit(
        x,
        x,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(x_test, x_test),
        seed=args.seed,
        verbose=2,
    )
    recon = model.predict(x_test, batch_size=512)
    mse = float(np.mean((recon - x_test) ** 2))
    print(
        f"reconstruction MSE on test images: {mse:.4f} (the mean image scores {baseline:.4f}); "
        f"{clock.seconds:.1f} s"
    )
    png = save_image_grid(
        args.out, [x_test[:10], recon[:10]], titles=["originals", "reconstructions"]
    )
    if png:
        print(f"saved {png}")
    return {
        "mse": mse,
        "baseline_mse": baseline,
        "losses": history.history["loss"],
        "png": png,
        "seconds": clock.seconds,
    }


if __name__ == "__main__":
    main()
