"""Sine-wave forecasting with two stacked LSTM(50) layers: from 50 steps of a noisy
sine wave, predict the next value.

    python -m dlcore.examples.stacked_lstm
"""

import numpy as np

import dlcore
from dlcore import layers, models, optimizers
from dlcore.examples._common import EpochTimer, Stopwatch, parser


def make_waves(n, steps=50, seed=0):
    """Sine waves of random frequency and phase with a little noise; target: next value."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.25, (n, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    t = np.arange(steps + 1)[None, :]
    waves = np.sin(freq * t + phase) + 0.05 * rng.standard_normal((n, steps + 1))
    return waves[:, :steps, None].astype(np.float32), waves[:, steps:].astype(np.float32)


def main(argv=None):
    args = parser(__doc__.splitlines()[0], epochs=5, batch_size=32).parse_args(argv)
    n = 1200 if args.quick else 6000
    if args.quick:
        args.epochs = 3
    x, y = make_waves(n, seed=args.seed)
    x_test, y_test = make_waves(500, seed=args.seed + 1)
    dlcore.set_random_seed(args.seed)
    model = models.Sequential(
        [
            layers.LSTM(50, return_sequences=True, input_shape=(50, 1)),
            layers.LSTM(50),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer=optimizers.Adam(1e-3), loss="mse")
    model.summary()
    clock, timer = Stopwatch(), EpochTimer()
    history = model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        callbacks=[timer],
        seed=args.seed,
        verbose=2,
    )
    mse = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    naive = float(np.mean((x_test[:, -1] - y_test) ** 2))  # "tomorrow is like today"
    print(
        f"test MSE {mse:.5f} (repeating the last value scores {naive:.5f}); "
        f"{sum(timer.seconds) / len(timer.seconds):.2f} s per epoch, {clock.seconds:.1f} s in all"
    )
    return {
        "test_mse": mse,
        "naive_mse": naive,
        "losses": history.history["loss"],
        "seconds": clock.seconds,
    }


if __name__ == "__main__":
    main()
