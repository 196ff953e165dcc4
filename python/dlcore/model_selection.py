"""k-fold cross-validation: a fresh model per fold, scores per fold."""

from __future__ import annotations

import numpy as np

__all__ = ["KFold", "cross_val_score"]


class KFold:
    """Splits n samples into k consecutive folds (shuffled first with ``shuffle``);
    every sample is in exactly one validation fold. The first n % k folds have one
    sample more, as scikit-learn's KFold."""

    def __init__(self, n_splits=5, shuffle=False, random_state=None):
        if not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
            raise ValueError(f"KFold: n_splits must be an int >= 2, got {n_splits!r}")
        self.n_splits, self.shuffle, self.random_state = int(n_splits), shuffle, random_state

    def split(self, x, y=None):
        """Yields (train_indices, validation_indices) for each fold."""
        n = len(x)
        if n < self.n_splits:
            raise ValueError(f"KFold: cannot split {n} samples into {self.n_splits} folds")
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng(self.random_state).permutation(n)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        start = 0
        for size in sizes:
            val = order[start : start + size]
            train = np.concatenate([order[:start], order[start + size :]])
            yield train, val
            start += size

    def get_n_splits(self, x=None, y=None):
        return self.n_splits


def cross_val_score(
    build_fn,
    x,
    y,
    k=5,
    epochs=1,
    batch_size=None,
    scoring=None,
    shuffle=True,
    seed=0,
    verbose=0,
    **fit_kwargs,
):
    """Trains a fresh model from ``build_fn()`` (it must return a compiled model) on
    k - 1 folds and scores it on the held-out fold, for each of the k folds.

    scoring: a key of ``model.evaluate(..., return_dict=True)`` ('accuracy', 'loss',
    ...); by default the first compiled metric, or the loss when there is none.
    Returns the k scores as an array.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"cross_val_score: x has {len(x)} samples but y has {len(y)}")
    scores = []
    for fold, (train, val) in enumerate(KFold(k, shuffle=shuffle, random_state=seed).split(x)):
        model = build_fn()
        if getattr(model, "loss", None) is None:
            raise ValueError("cross_val_score: build_fn must return a compiled model")
        model.fit(
            x[train],
            y[train],
            epochs=epochs,
            batch_size=batch_size,
            verbose=verbose,
            seed=seed,
            **fit_kwargs,
        )
        logs = model.evaluate(x[val], y[val], batch_size=batch_size, verbose=0, return_dict=True)
        key = scoring or next((name for name in logs if name != "loss"), "loss")
        if key not in logs:
            raise ValueError(f"cross_val_score: scoring={key!r} is not one of {sorted(logs)}")
        scores.append(logs[key])
        if verbose:
            print(f"fold {fold + 1}/{k}: {key} = {logs[key]:.4f}")
    return np.array(scores)
