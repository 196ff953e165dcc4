"""The few ``keras.backend`` helpers tutorials call."""

from dlcore.layers import base as _base

__all__ = ["clear_session", "epsilon", "floatx"]


def clear_session():
    """Resets the default layer names (``dense``, ``dense_1``, ...), as Keras does."""
    _base.clear_names()


def floatx():
    return "float32"


def epsilon():
    return 1e-7
