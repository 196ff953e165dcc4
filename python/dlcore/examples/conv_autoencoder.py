"""A convolutional autoencoder on MNIST: Conv2D encoder (28x28 -> 7x7x32), Conv2DTranspose
decoder (7x7 -> 28x28), trained to reproduce its input; prints the reconstruction error
and saves originals above reconstructions.

    python -m dlcore.examples.conv_autoencoder --data ../shared/data/mnist [--out conv_autoencoder.png]
"""

import numpy as np

import dlcore
from dlcore import layers, models, optimizers
from dlcore.examples._common import Stopwatch, load_mnist, parser, save_image_grid


def build():
    return models.Sequential(
        [
            layers.Input((28, 28, 1)),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),  # the code
            layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid"),
        ],
        name="conv_autoencoder",
    )


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=5, batch_size=128, mnist_data=True)
    p.add_argument("--out", default="conv_autoencoder.png", help="where to save the image grid")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 2
    dlcore.set_random_seed(args.seed)
    (x, _), (x_test, _) = load_mnist(
        args.data, train=3000 if args.quick else None, test=500 if args.quick else None
    )
    model = build()
    model.compile(optimizer=optimizers.Adam(2e-3), loss="binary_crossentropy")
    model.summary()
    clock = Stopwatch()
    baseline = float(np.mean((x_test - x.mean(axis=0)) ** 2))  # predicting the mean image
    history = model.fit(
        x, x, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, verbose=2
    )
    recon = model.predict(x_test, batch_size=256)
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
