"""A generative adversarial network on MNIST with a hand-written training loop: two
models, two optimizers, ``loss.backward()`` and ``opt.step()`` as in PyTorch.

The generator maps 64 noise values to an image; the discriminator tells real images
from generated ones. Prints both losses per epoch and saves a grid of samples.

    python -m dlcore.examples.gan --data ../shared/data/mnist [--out gan.png]
"""

import numpy as np

import dlcore
from dlcore import functional as F
from dlcore import layers, models, optimizers
from dlcore.examples._common import Stopwatch, load_mnist, parser, save_image_grid

NOISE = 64


def build(seed):
    dlcore.set_random_seed(seed)
    generator = models.Sequential(
        [
            layers.Dense(256, input_shape=(NOISE,)),
            layers.LeakyReLU(0.2),
            layers.Dense(512),
            layers.LeakyReLU(0.2),
            layers.Dense(784, activation="tanh"),  # images in [-1, 1]
        ]
    )
    discriminator = models.Sequential(
        [
            layers.Dense(512, input_shape=(784,)),
            layers.LeakyReLU(0.2),
            layers.Dense(256),
            layers.LeakyReLU(0.2),
            layers.Dense(1),  # a logit: real vs generated
        ]
    )
    return generator, discriminator


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=20, batch_size=64, mnist_data=True)
    p.add_argument("--out", default="gan.png", help="where to save the grid of samples")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 4
    (x, _), _ = load_mnist(args.data, flat=True, train=3000 if args.quick else None, test=10)
    x = x * 2 - 1  # the generator's tanh range
    generator, discriminator = build(args.seed)
    g_opt = optimizers.Adam(2e-4, beta_1=0.5, params=generator.trainable_weights)
    d_opt = optimizers.Adam(2e-4, beta_1=0.5, params=discriminator.trainable_weights)
    rng = np.random.default_rng(args.seed)
    clock = Stopwatch()
    history = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": []}
    for epoch in range(args.epochs):
        sums = np.zeros(4)
        order = rng.permutation(len(x))
        steps = len(x) // args.batch_size
        for step in range(steps):
            real = x[order[step * args.batch_size : (step + 1) * args.batch_size]]
            n = len(real)
            noise = rng.standard_normal((n, NOISE)).astype(np.float32)
            # 1. the discriminator: real images are 1, generated ones 0
            fake = generator(noise, training=True).detach()
            d_opt.zero_grad()
            real_logits = discriminator(real, training=True)
            fake_logits = discriminator(fake, training=True)
            d_loss = F.binary_crossentropy(
                np.ones((n, 1)), real_logits, from_logits=True
            ) + F.binary_crossentropy(np.zeros((n, 1)), fake_logits, from_logits=True)
            d_loss.backward()
            d_opt.step()
            # 2. the generator: make the discriminator call its images real
            g_opt.zero_grad()
            d_opt.zero_grad()
            g_logits = discriminator(generator(noise, training=True), training=True)
            g_loss = F.binary_crossentropy(np.ones((n, 1)), g_logits, from_logits=True)
            g_loss.backward()
            g_opt.step()  # only the generator's weights move
            sums += [
                float(d_loss.data),
                float(g_loss.data),
                float((real_logits.data > 0).mean()),
                float((fake_logits.data < 0).mean()),
            ]
        means = sums / steps
        for key, value in zip(history, means):
            history[key].append(float(value))
        print(
            f"epoch {epoch + 1}/{args.epochs}: d_loss {means[0]:.3f}, g_loss {means[1]:.3f}, "
            f"discriminator right on {means[2]:.0%} of real and {means[3]:.0%} of generated "
            f"images ({clock.seconds:.1f} s)"
        )
    samples = generator.predict(rng.standard_normal((40, NOISE)).astype(np.float32))
    png = save_image_grid(args.out, [(s + 1) / 2 for s in samples.reshape(4, 10, 784)])
    if png:
        print(f"saved {png}")
    return {**history, "samples": samples, "png": png, "seconds": clock.seconds}


if __name__ == "__main__":
    main()
