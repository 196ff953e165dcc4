"""The random generator behind weight initialisation, dropout and shuffling."""

import random as _py_random

import numpy as np

__all__ = ["set_random_seed", "generator"]

_generator = np.random.default_rng()


def set_random_seed(seed):
    """Seeds dlcore's generator (initialisers, dropout, fit's shuffling), NumPy's global
    one and Python's ``random``, like ``keras.utils.set_random_seed``: after the same
    seed, the same program draws the same numbers."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    np.random.seed(int(seed) % 2**32)
    _py_random.seed(int(seed))


def generator():
    """dlcore's current numpy.random.Generator."""
    return _generator
