"""Sliding-window arguments, shared by convolution and pooling layers and ops.

Window sizes, strides and dilations are an int or a tuple of one int per spatial axis.
Padding is Keras' ``'valid'`` or ``'same'`` (``'causal'`` for 1-D convolutions), or
explicit sizes: an int, one int per axis, or ``((top, bottom), (left, right))``.
'same' pads so that the output has ceil(size / stride) positions, with the odd pixel
at the bottom/right, as Keras and TensorFlow do; 'causal' pads dilation * (kernel - 1)
before the sequence and nothing after, so that output t sees inputs up to t alone.

A transposed convolution's 'valid' and 'same' (:func:`conv_transpose_padding`) become
rows cropped from its full output and rows added after it, as Keras sizes them.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "conv_padding",
    "conv_transpose_padding",
    "explicit_padding_1d",
    "int_tuple",
    "output_length",
    "output_sizes",
    "padding_mode",
    "same_padding",
    "transposed_output_length",
]


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
    spatial ``size`` (((before, after),) for one axis); explicit sizes pass through for
    the kernel to check."""
    if not isinstance(padding, str):
        return padding
    mode = padding.lower()
    if mode == "valid":
        return tuple((0, 0) for _ in size)
    n = len(size)
    windows = int_tuple(kernel_size, n, "kernel_size")
    dilations = int_tuple(dilation, n, "dilation")
    if mode == "causal" and n == 1:
        return ((dilations[0] * (windows[0] - 1), 0),)
    if mode != "same":
        allowed = "'valid', 'same' or 'causal'" if n == 1 else "'valid' or 'same'"
        raise ValueError(f"padding must be {allowed} (or explicit sizes), got {padding!r}")
    steps = int_tuple(strides, n, "strides")
    return tuple(same_padding(*args) for args in zip(size, windows, steps, dilations))


_cached_padding = functools.lru_cache(maxsize=1024)(conv_padding)


def layer_padding(padding, size, kernel_size, strides=1, dilation=1):
    """conv_padding for a layer's inference step, which meets the same few arguments (a
    mode, tuples of ints) on every call: remembered, unless one cannot be (a list)."""
    try:
        return _cached_padding(padding, size, kernel_size, strides, dilation)
    except TypeError:  # unhashable: computed each time
        return conv_padding(padding, size, kernel_size, strides, dilation)


def explicit_padding_1d(padding):
    """A 1-D padding given as sizes, as ((before, after),): an int, (before, after) or
    ((before, after),). Anything else is returned as it is, for the kernel to refuse."""
    if _is_int(padding):
        return ((padding, padding),)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(map(_is_int, padding)):
        return (tuple(padding),)
    return padding


def conv_transpose_padding(padding, kernel_size, strides=1, dilation=1, output_padding=None):
    """Keras' 'valid' or 'same' for a transposed convolution as the kernels take it:
    ``(crops, output_padding)``, the ((top, bottom), (left, right)) rows and columns
    cropped from the full output ((size - 1) * stride + the dilated kernel) and the rows
    and columns added after it. ``output_padding`` None is Keras' default: 'same' gives
    size * stride, 'valid' (size - 1) * stride + max(kernel, stride)."""
    mode = padding_mode(padding)
    n = len(kernel_size) if isinstance(kernel_size, (tuple, list)) else 2
    windows = int_tuple(kernel_size, n, "kernel_size")
    steps = int_tuple(strides, n, "strides")
    dilations = int_tuple(dilation, n, "dilation")
    extras = (None,) * n if output_padding is None else int_tuple(output_padding, n,
                                                                  "output_padding", minimum=0)  # fmt: skip
    crops, added = [], []
    for window, stride, rate, extra in zip(windows, steps, dilations, extras):
        span = (window - 1) * rate + 1
        # Keras pads the stride-dilated input by (before, after) and convolves it with
        # the flipped kernel; the full output is the one padded by span - 1 on each side.
        if mode == "valid":
            extra = max(span, stride) - span if extra is None else extra
            before, after = span - 1, span - 1 + extra
        else:
            total = stride + span - 2 if extra is None else span + span % 2 - 2 + extra
            before = min(total // 2 + total % 2, span - 1)
            after = total - before
        crop_after = span - 1 - after
        crops.append((span - 1 - before, max(crop_after, 0)))
        added.append(max(-crop_after, 0))
    return tuple(crops), tuple(added)


def transposed_output_length(size, window, stride, dilation=1, padding="valid",
                             output_padding=None):  # fmt: skip
    """Output positions along one axis of a transposed convolution: ``padding`` 'valid'
    or 'same' (with Keras' ``output_padding``), or crops (before, after) with
    ``output_padding`` (0 for None). None when the input size is unknown."""
    if size is None:
        return None
    if isinstance(padding, str):
        ((before, after),), (extra,) = conv_transpose_padding(
            padding,
            (window,),
            stride,
            dilation,
            None if output_padding is None else (output_padding,),
        )
    else:
        (before, after), extra = padding, output_padding or 0
    return (size - 1) * stride + (window - 1) * dilation + 1 - before - after + extra


def output_length(size, window, stride, dilation=1, padding="valid", *, owner=None,
                  names=("window", "dilation"), axis=None, shape=None):  # fmt: skip
    """Output positions along one axis: ``padding`` is 'valid', 'same', 'causal' or
    (before, after). None when the input size is unknown; a known input smaller than
    the padded window's span, (window - 1) * dilation + 1, is a ValueError, as in Keras.
    ``owner`` (the layer's name), ``names`` (the window's and dilation's argument names,
    the dilation's None when it has none), ``axis`` (e.g. 'rows') and ``shape`` (the
    whole input's) only word that error."""
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    before, after = (0, 0) if padding == "valid" else (dilation * (window - 1), 0)
    if not isinstance(padding, str):
        before, after = padding
    span = dilation * (window - 1) + 1
    if size + before + after < span:
        raise ValueError(_too_small(size, window, dilation, padding, before + after, span,
                                    owner, names, axis, shape))  # fmt: skip
    return (size + before + after - span) // stride + 1


def _too_small(size, window, dilation, padding, pad, span, owner, names, axis, shape):
    window_name, dilation_name = names
    arg = f"{window_name} {window}" + (f", {dilation_name} {dilation}" if dilation_name else "")
    unit = f" {axis}" if axis else ""
    received = f" (input shape {tuple(shape)})" if shape is not None else ""
    adds = f"adds {pad}" if pad else "adds none"
    less = " less the padding" if pad else ""
    prefix = f"{owner}: " if owner else ""
    return (
        f"{prefix}the window spans {span}{unit} ({arg}) but the input has {size}{unit}"
        f"{received} and padding={padding!r} {adds}; expected an input size >= "
        f"{span - pad} (the effective window{less})"
    )


def output_sizes(shape, windows, strides, dilations, padding, *, owner=None,
                 names=("window", "dilation"), axes=None):  # fmt: skip
    """:func:`output_length` along each window axis of a (batch, *spatial, channels)
    ``shape``; ``axes`` names those axes for the error (e.g. ('rows', 'cols'))."""
    spatial = tuple(shape[1 : 1 + len(windows)])
    axes = axes or (None,) * len(windows)
    return tuple(
        output_length(n, k, s, d, padding, owner=owner, names=names, axis=axis, shape=shape)
        for n, k, s, d, axis in zip(spatial, windows, strides, dilations, axes)
    )
