"""Why the tutorial CNN says what it says: saliency, Integrated Gradients and Grad-CAM
for MNIST test digits, saved as a PNG grid (each map over its digit).

Also measured: Integrated Gradients' completeness (the attributions add up to
f(x) - f(black image)) and its faithfulness: blanking the 10% of a digit's ink pixels
with the largest attributions lowers the predicted class's probability far more than
blanking as many ink pixels at random.

    python -m dlcore.examples.explain_mnist --data ../shared/data/mnist [--out explain.png]
"""

from __future__ import annotations

import numpy as np

import dlcore
from dlcore import explain, layers
from dlcore.examples._common import Stopwatch, load_mnist, parser
from dlcore.examples.mnist_cnn import build_model


def blank(x, scores, fraction, rng=None):
    """x with the ``fraction`` of each image's ink pixels (> 0.1) with the highest scores
    (or random ones, with ``rng``) set to 0."""
    out = x.copy()
    for image, score in zip(out, scores):  # a few images: the ranking is per image
        ink = np.flatnonzero(image.ravel() > 0.1)
        k = max(1, int(fraction * len(ink)))
        chosen = (
            rng.choice(ink, k, replace=False) if rng else ink[np.argsort(-score.ravel()[ink])[:k]]
        )
        image.reshape(-1)[chosen] = 0
    return out


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=3, batch_size=32, mnist_data=True)
    p.add_argument("--out", default="explain_mnist.png", help="where to save the PNG grid")
    p.add_argument("--images", type=int, default=8, help="test digits to explain")
    p.add_argument("--steps", type=int, default=64, help="Integrated Gradients' steps")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 1
    dlcore.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_mnist(
        args.data, train=3000 if args.quick else None, test=1000 if args.quick else None
    )
    model = build_model()
    clock = Stopwatch()
    model.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, verbose=0
    )
    train_seconds = clock.seconds
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"trained {args.epochs} epoch(s) in {train_seconds:.1f} s: test accuracy {accuracy:.4f}")

    x = x_test[: args.images]
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    last_conv = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)][-1].name
    seconds = {}
    clock = Stopwatch()
    saliency = explain.saliency(model, x)
    seconds["saliency"] = clock.seconds
    clock = Stopwatch()
    smooth = explain.smoothgrad(model, x, samples=25, seed=args.seed)
    seconds["smoothgrad"] = clock.seconds
    clock = Stopwatch()
    ig = explain.integrated_gradients(model, x, steps=args.steps)
    seconds["integrated_gradients"] = clock.seconds
    clock = Stopwatch()
    cam = explain.grad_cam(model, x, last_conv)
    seconds["grad_cam"] = clock.seconds
    for name, s in seconds.items():
        print(f"{name}: {s:.2f} s for {len(x)} images")

    rows = np.arange(len(x))
    probabilities = model.predict(x, verbose=0)[rows, predicted]
    gap = probabilities - model.predict(np.zeros_like(x), verbose=0)[rows, predicted]
    completeness = np.abs(ig.reshape(len(x), -1).sum(axis=1) - gap).max()
    print(f"Integrated Gradients ({args.steps} steps): |sum - (f(x) - f(0))| <= {completeness:.2e}")
    rng = np.random.default_rng(args.seed)
    drop_top = probabilities - model.predict(blank(x, ig, 0.1), verbose=0)[rows, predicted]
    drop_random = probabilities - model.predict(blank(x, ig, 0.1, rng), verbose=0)[rows, predicted]
    print(f"blanking 10% of the ink: the top-attributed pixels lower p(predicted) by "
          f"{drop_top.mean():.3f} on average, random ones by {drop_random.mean():.3f}")  # fmt: skip

    heat = np.concatenate(
        [np.abs(saliency)[..., 0], np.abs(smooth)[..., 0], np.maximum(ig, 0)[..., 0], cam]
    )
    titles = [f"{t} {d}" for t in ("saliency", "smoothgrad", "IG", "Grad-CAM") for d in predicted]
    try:
        path = explain.save_overlay(
            args.out, np.concatenate([x] * 4), heat, titles=titles, columns=len(x)
        )
        print(f"saved {path}")
    except ImportError as e:
        path = None
        print(f"({e}; no PNG written)")
    return {
        "test_accuracy": accuracy,
        "predicted": predicted,
        "labels": y_test[: args.images],
        "saliency": saliency,
        "integrated_gradients": ig,
        "grad_cam": cam,
        "completeness": completeness,
        "drop_top": drop_top,
        "drop_random": drop_random,
        "seconds": seconds,
        "png": path,
    }


if __name__ == "__main__":
    main()
