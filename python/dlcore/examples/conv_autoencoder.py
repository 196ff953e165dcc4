"""A convolutional autoencoder on MNIST: a Conv2D encoder (28x28 -> 7x7x32) and a decoder
of Conv2DTranspose (7x7 -> 14x14) then UpSampling2D and Conv2D (-> 28x28), trained to
reproduce its input; prints the reconstruction error and saves originals above
reconstructions.

    python -m dlcore.examples.conv_autoencoder --data ../shared/data/mnist [--out conv_autoencoder.png]
"""

import dlcore
from dlcore import layers, models
from dlcore.examples._common import load_mnist, parser
from dlcore.examples.autoencoder import fit_and_show


def build():
    return models.Sequential(
        [
            layers.Input((28, 28, 1)),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),  # the code
            layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
            layers.UpSampling2D(2),
            layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
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
    model.summary()
    return fit_and_show(model, x, x_test, args)


if __name__ == "__main__":
    main()
