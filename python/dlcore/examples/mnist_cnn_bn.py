"""The tutorials' MNIST convolutional network with batch normalisation after each
convolution.

Conv2D(32, 3x3) -> BatchNormalization -> ReLU -> MaxPooling2D(2) -> Conv2D(64, 3x3) ->
BatchNormalization -> ReLU -> MaxPooling2D(2) -> Flatten -> Dense(128, relu) ->
Dense(10, softmax); Adam, batch 32. The convolutions have no bias: the normalisation's
beta takes its place (the batch mean would cancel it). Training moves the layers'
statistics; evaluation normalises with them. Their momentum is 0.9 rather than Keras'
0.99, so that they have caught up with the weights after a short run: after 100 steps at
0.99 they would still hold a third of their starting values.

    python -m dlcore.examples.mnist_cnn_bn --data ../shared/data/mnist [--epochs 3]
"""

from __future__ import annotations

from dlcore import layers, models
from dlcore.examples.mnist_cnn import compiled, train


def build_model():
    model = models.Sequential(
        [
            layers.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, (3, 3), use_bias=False),
            layers.BatchNormalization(momentum=0.9),
            layers.ReLU(),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), use_bias=False),
            layers.BatchNormalization(momentum=0.9),
            layers.ReLU(),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    return compiled(model)


def main(argv=None):
    # one process: each rank's batch statistics would move its moving statistics apart
    return train(argv, build_model, __doc__, fit_distributed=False)


if __name__ == "__main__":
    main()
