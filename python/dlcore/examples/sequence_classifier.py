"""Classifying padded, variable-length token sequences with a masked recurrent layer.

The task: sequences of 5 to 30 tokens drawn from 1..12, padded with 0 to 30 steps; the
label is 1 when the sequence's first token is greater than its last one (they always
differ). The label depends on order and on where each sequence ends, so a bag of tokens
cannot learn it, and neither can a recurrent layer that reads the padding as data: the
mask tells the layer to carry its state over the padding steps.

Model: the tokens masked where they are 0 (Embedding(mask_zero=True) when dlcore has
it, else one-hot vectors and Masking()) -> Bidirectional(LSTM(32)) (``--rnn gru``:
GRU(32)) -> Dense(1, sigmoid).

    python -m dlcore.examples.sequence_classifier [--rnn bilstm|gru]
"""

import numpy as np

import dlcore
from dlcore import layers, models, optimizers
from dlcore.examples._common import EpochTimer, Stopwatch, parser

VOCAB, STEPS = 12, 30


def make_sequences(n, seed=0, min_len=5):
    """Tokens (n, STEPS) in 1..VOCAB padded with 0 after each sequence's length, and
    labels (n, 1): first token > last token."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, STEPS + 1, n)
    tokens = rng.integers(1, VOCAB + 1, (n, STEPS))
    last = tokens[np.arange(n), lengths - 1]
    same = tokens[:, 0] == last
    tokens[same, 0] = last[same] % VOCAB + 1  # first and last always differ
    tokens[np.arange(STEPS)[None, :] >= lengths[:, None]] = 0
    labels = (tokens[:, 0] > tokens[np.arange(n), lengths - 1]).astype(np.float32)
    return tokens, labels[:, None]


def _masked_inputs(tokens):
    """The first layers and the input array: Embedding(mask_zero) on the tokens, or
    one-hot vectors (padding all zeros) and Masking()."""
    if hasattr(layers, "Embedding"):
        return [layers.Embedding(VOCAB + 1, 16, mask_zero=True)], tokens
    one_hot = np.eye(VOCAB + 1, dtype=np.float32)[tokens][..., 1:]  # token 0 -> zeros
    return [layers.Masking(0.0)], one_hot


def main(argv=None):
    p = parser(__doc__.splitlines()[0], epochs=6, batch_size=64)
    p.add_argument("--rnn", choices=["bilstm", "gru"], default="bilstm")
    args = p.parse_args(argv)
    n = 2500 if args.quick else 6000
    if args.quick:
        args.epochs = 5
    tokens, y = make_sequences(n, seed=args.seed)
    tokens_test, y_test = make_sequences(2000, seed=args.seed + 1)
    dlcore.set_random_seed(args.seed)
    first, x = _masked_inputs(tokens)
    _, x_test = _masked_inputs(tokens_test)
    rnn = layers.Bidirectional(layers.LSTM(32)) if args.rnn == "bilstm" else layers.GRU(32)
    model = models.Sequential([*first, rnn, layers.Dense(1, activation="sigmoid")])
    model.build((None, *x.shape[1:]))
    model.compile(optimizer=optimizers.Adam(3e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
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
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    print(
        f"test accuracy {accuracy:.4f} (guessing: 0.5); "
        f"{sum(timer.seconds) / len(timer.seconds):.2f} s per epoch, {clock.seconds:.1f} s in all"
    )
    return {
        "test_accuracy": accuracy,
        "losses": history.history["loss"],
        "seconds": clock.seconds,
    }


if __name__ == "__main__":
    main()
