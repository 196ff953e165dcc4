"""The MNIST multilayer perceptron: Dense(512, relu) -> Dense(10, softmax), Adam.

python -m dlcore.examples.mnist_mlp --data ../shared/data/mnist [--plot curves.png]
mpirun -n 2 python -m dlcore.examples.mnist_mlp --distributed     # data-parallel
"""

import dlcore
from dlcore import layers, models, optimizers
from dlcore.examples._common import EpochTimer, Stopwatch, join_distributed, load_mnist, parser


def main(argv=None):
    p = parser(
        __doc__.splitlines()[0], epochs=5, batch_size=128, mnist_data=True, fit_distributed=True
    )
    p.add_argument("--plot", default=None, help="save the loss/accuracy curves to this PNG")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 5
    rank = join_distributed(args)
    dlcore.set_random_seed(args.seed)
    (x, y), (x_test, y_test) = load_mnist(
        args.data, flat=True, train=5000 if args.quick else None, test=2000 if args.quick else None
    )
    model = models.Sequential(
        [
            layers.Dense(512, activation="relu", input_shape=(784,)),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.summary()
    clock, timer = Stopwatch(), EpochTimer()
    history = model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=0.1,
        callbacks=[timer],
        seed=args.seed,
        verbose=2,
        distributed=args.distributed,
    )
    loss, accuracy = model.evaluate(
        x_test, y_test, batch_size=512, verbose=0, distributed=args.distributed
    )
    print(
        f"test accuracy: {accuracy:.4f} (loss {loss:.4f}); "
        f"{sum(timer.seconds) / len(timer.seconds):.2f} s per epoch, {clock.seconds:.1f} s in all"
    )
    if args.plot and rank == 0:
        print(f"curves saved to {history.plot(args.plot)}")
    return {
        "test_accuracy": accuracy,
        "test_loss": loss,
        "losses": history.history["loss"],
        "seconds": clock.seconds,
    }


if __name__ == "__main__":
    main()
