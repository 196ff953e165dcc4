"""A hyper-parameter search for an MNIST MLP: width, depth, dropout and learning rate,
each trial scored by 3-fold cross-validation with early stopping, two trials at a time
in their own processes; the best model rebuilt, trained on all the training digits and
scored on the test digits.

The trials are appended to ``--results`` as they finish: stop the search (Ctrl-C) and
run the same command again, and it carries on where it stopped.

    python -m dlcore.examples.tune_mlp --data ../shared/data/mnist [--trials 8]
"""

from __future__ import annotations

import os

from dlcore import layers, models, optimizers
from dlcore.examples._common import Stopwatch, load_mnist, parser
from dlcore.tuning import Choice, LogRange, RandomSearch, Range

SPACE = {
    "width": Choice([64, 128, 256]),
    "depth": Range(1, 3),
    "dropout": Range(0.0, 0.5),
    "learning_rate": LogRange(1e-4, 1e-2),
}


def build_model(hp):
    """The MLP a trial's hyper-parameters describe (importable: the trials' processes
    are spawned and find it by name)."""
    stack = [layers.Input((784,))]
    for _ in range(hp["depth"]):
        stack += [layers.Dense(hp["width"], activation="relu"), layers.Dropout(hp["dropout"])]
    model = models.Sequential([*stack, layers.Dense(10, activation="softmax")])
    model.compile(
        optimizer=optimizers.Adam(learning_rate=hp["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=10, batch_size=64, mnist_data=True)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--train", type=int, default=3000, help="training digits searched over")
    p.add_argument("--parallel", type=int, default=2, help="trials at a time")
    p.add_argument("--results", default="tune_mlp.jsonl", help="the trials' file (resumes)")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.train, args.epochs = 4, 1500, 3
    (x, y), (x_test, y_test) = load_mnist(
        args.data, flat=True, train=args.train, test=2000 if args.quick else None
    )
    search = RandomSearch(build_model, SPACE, objective="val_accuracy", max_trials=args.trials,
                          cv=3, patience=2, parallel=args.parallel, results_file=args.results,
                          seed=args.seed)  # fmt: skip
    clock = Stopwatch()
    search.search(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=1)
    search_seconds = clock.seconds
    print(search.results_table())
    clock = Stopwatch()
    model = search.best_model()
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"search: {search_seconds:.1f} s for {args.trials} trials x 3 folds on "
          f"{os.cpu_count()} cores; best {search.best_hp}")  # fmt: skip
    print(f"the best model trained on all {len(x)} digits: test accuracy {accuracy:.4f} "
          f"({clock.seconds:.1f} s)")  # fmt: skip
    return {
        "results": search.results,
        "best_hp": search.best_hp,
        "test_accuracy": accuracy,
        "search_seconds": search_seconds,
        "model": model,
    }


if __name__ == "__main__":
    main()
