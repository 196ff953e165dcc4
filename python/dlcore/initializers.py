"""Weight initialisers with Keras' names and defaults.

Every weight a layer creates is made by an initializer, so this is where a limit on a
model's size is enforced: inside ``allocation_limit(nbytes, source)``, initializers
refuse (ValueError) to make more than ``nbytes`` of weights in total before
allocating them. Loading a model holds the architecture a file describes to the size
of the arrays the file holds this way.
"""

import functools
import math
import threading
from contextlib import contextmanager

import numpy as np

from dlcore import random as _random
from dlcore.registry import Registry

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "RandomNormal",
    "RandomUniform",
    "GlorotUniform",
    "GlorotNormal",
    "HeNormal",
    "HeUniform",
    "LecunNormal",
    "Orthogonal",
    "allocation_limit",
    "deserialize",
    "get",
    "registry",
    "serialize",
]


registry = Registry("initializer")


def _fans(shape):
    """Keras' fan-in / fan-out: a conv kernel (KH, KW, C, OC) counts its receptive field."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


_limit = threading.local()


@contextmanager
def allocation_limit(nbytes, source):
    """Inside the block (in this thread), initializers make at most ``nbytes`` of weights
    in total; a weight beyond that is a ValueError naming ``source`` (what asked for
    the model), raised before its memory is allocated."""
    before = getattr(_limit, "state", None)
    _limit.state = [int(nbytes), source]
    try:
        yield
    finally:
        _limit.state = before


def _charge(shape, dtype):
    state = getattr(_limit, "state", None)
    if state is None:
        return
    nbytes = math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize
    if nbytes > state[0]:
        raise ValueError(
            f"{state[1]} asks for a weight of shape {tuple(shape)} {np.dtype(dtype).name} "
            f"({nbytes} bytes), beyond the {state[0]} bytes left of what it holds"
        )
    state[0] -= nbytes


def _limited(call):
    @functools.wraps(call)
    def wrapper(self, shape, *args, **kwargs):
        _charge(shape, args[0] if args else kwargs.get("dtype", np.float32))
        return call(self, shape, *args, **kwargs)

    return wrapper


class Initializer:
    """Base: ``initializer(shape, dtype) -> array``. A subclass's ``__call__`` is wrapped
    so that it honours :func:`allocation_limit`."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__:
            cls.__call__ = _limited(cls.__dict__["__call__"])

    def __call__(self, shape, dtype=np.float32):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register(aliases=("zeros",))
class Zeros(Initializer):
    def __call__(self, shape, dtype=np.float32):
        return np.zeros(shape, dtype)


@registry.register(aliases=("ones",))
class Ones(Initializer):
    def __call__(self, shape, dtype=np.float32):
        return np.ones(shape, dtype)


@registry.register(aliases=("constant",))
class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=np.float32):
        return np.full(shape, self.value, dtype)

    def get_config(self):
        return {"value": self.value}


@registry.register(aliases=("random_normal", "normal"))
class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=np.float32):
        rng = _rng(self.seed)
        return (rng.standard_normal(shape) * self.stddev + self.mean).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@registry.register(aliases=("random_uniform", "uniform"))
class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=np.float32):
        return _rng(self.seed).uniform(self.minval, self.maxval, shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


@registry.register(aliases=("variance_scaling",))
class VarianceScaling(Initializer):
    """Keras' VarianceScaling: scale / fan, drawn truncated-normal, normal or uniform."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype=np.float32):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        rng = _rng(self.seed)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape).astype(dtype)
        if self.distribution == "normal":
            return (rng.standard_normal(shape) * math.sqrt(variance)).astype(dtype)
        # truncated at two standard deviations; 0.8796... is the std of that truncation
        std = math.sqrt(variance) / 0.87962566103423978
        out = rng.standard_normal(shape)
        bad = np.abs(out) > 2
        while bad.any():
            out[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(out) > 2
        return (out * std).astype(dtype)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


@registry.register(aliases=("glorot_uniform",))
class GlorotUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


@registry.register(aliases=("glorot_normal",))
class GlorotNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


@registry.register(aliases=("he_normal",))
class HeNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


@registry.register(aliases=("he_uniform",))
class HeUniform(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(2.0, "fan_in", "uniform", seed)

    def get_config(self):
        return {"seed": self.seed}


@registry.register(aliases=("lecun_normal",))
class LecunNormal(VarianceScaling):
    def __init__(self, seed=None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)

    def get_config(self):
        return {"seed": self.seed}


@registry.register(aliases=("orthogonal",))
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal one, as Keras."""

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, dtype=np.float32):
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        flat = _rng(self.seed).standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))  # makes the decomposition unique (uniform over O(n))
        if rows < cols:
            q = q.T
        return np.ascontiguousarray(self.gain * q.reshape(shape), dtype=dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


def _rng(seed):
    return _random.generator() if seed is None else np.random.default_rng(seed)


def get(identifier):
    """An initializer from a Keras name ('glorot_uniform'), a config dict, an instance
    or a callable (shape, dtype) -> array."""
    if identifier is None:
        return None
    if isinstance(identifier, str):  # Keras' string names are case-insensitive
        identifier = identifier.lower() if identifier.lower() in registry else identifier
    return registry.get(identifier, base=Initializer)


def serialize(init):
    return registry.serialize(init)


def deserialize(config, custom_objects=None):
    """The object of a config or name; ``custom_objects`` (name -> class or function)
    are found too, as in Keras."""
    return registry.deserialize(config, custom_objects)
