"""Sliding-window arguments, shared by convolution and pooling layers and ops.

Window sizes, strides and dilations are an int or a tuple of one int per spatial axis.
Padding is Keras' ``'valid'`` or ``'same'`` (``'causal'`` for 1-D convolutions), or
explicit sizes: an int, one int per axis, or ``((top, bottom), (left, right))``.
'same' pads so that the output has ceil(size / stride) positions, with the odd pixel
at the bottom/right, as Keras and TensorFlow do.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv_padding", "int_tuple", "output_length", "padding_mode", "same_padding"]


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def int_tuple(value, n, name, owner=None, minimum=1):
    """``value`` as a tuple of ``n`` ints, each >= ``minimum``: an int is repeated."""
    items = (value,) * n if _is_int(value) else value
    try:
        items = tuple(items)
    except TypeError:
        items = None
    if items is None or len(items) != n or not all(_is_int(v) and v >= minimum for v in items):
        which = "positive" if minimum == 1 else f">= {minimum}"
        form = "an int" if n == 1 else f"an int or a tuple of {n} ints"
        prefix = f"{owner}: " if owner else ""
        raise ValueError(f"{prefix}{name} must be {form}, each {which}; got {value!r}")
    return tuple(int(v) for v in items)


def padding_mode(padding, owner=None, allowed=("valid", "same")):
    """A Keras padding string, lower-cased; anything else is a ValueError."""
    mode = padding.lower() if isinstance(padding, str) else None
    if mode not in allowed:
        choices = " or ".join(repr(a) for a in allowed)
        prefix = f"{owner}: " if owner else ""
        raise ValueError(f"{prefix}padding must be {choices}, got {padding!r}")
    return mode


def same_padding(size, window, stride, dilation=1):
    """(before, after) padding of one axis for 'same'."""
    total = max((-(-size // stride) - 1) * stride + (window - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv_padding(padding, size, kernel_size, strides=1, dilation=1):
    """Turns Keras' padding strings into explicit ((top, bottom), (left, right)) for the
    spatial ``size``; explicit sizes pass through for the kernel to check."""
    if not isinstance(padding, str):
        return padding
    mode = padding.lower()
    if mode == "valid":
        return tuple((0, 0) for _ in size)
    if mode != "same":
        raise ValueError(f"padding must be 'valid' or 'same' (or explicit sizes), got {padding!r}")
    n = len(size)
    windows = int_tuple(kernel_size, n, "kernel_size")
    steps = int_tuple(strides, n, "strides")
    dilations = int_tuple(dilation, n, "dilation")
    return tuple(same_padding(*args) for args in zip(size, windows, steps, dilations))


def output_length(size, window, stride, dilation=1, padding="valid"):
    """Output positions along one axis: ``padding`` is 'valid', 'same', 'causal' or
    (before, after). None when the input size is unknown."""
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    before, after = (0, 0) if padding == "valid" else (dilation * (window - 1), 0)
    if not isinstance(padding, str):
        before, after = padding
    span = dilation * (window - 1) + 1
    return (size + before + after - span) // stride + 1
