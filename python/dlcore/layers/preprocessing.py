"""Preprocessing and image augmentation layers, Keras 3's names, arguments and
semantics, channels-last:

- :class:`Rescaling`, :class:`Normalization` (with :meth:`~Normalization.adapt`): the
  same computation in training and inference;
- :class:`RandomFlip`, :class:`RandomRotation`, :class:`RandomTranslation`,
  :class:`RandomZoom`, :class:`RandomContrast`: a random transform per image in
  training (``fit``, or a call with ``training=True``), the identity in inference.

Each random layer draws the parameters of a whole batch in one call
(:meth:`get_random_transformation`) and applies them to the batch at once
(:meth:`transform_images`, through :mod:`dlcore.functional.image`), as Keras' layers
do; the parameters mean what Keras' mean (``"angle"`` in degrees, ``"translations"``
in pixels, ...). A layer given ``seed`` draws from its own generator, so two layers
with the same seed make the same sequence of transforms; without one it draws from
dlcore's generator (seeded by :func:`dlcore.set_random_seed`).

One difference from Keras: a random layer called on its own, outside a model, is in
inference unless given ``training=True`` (Keras' default there is training).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from dlcore import functional as F
from dlcore import random as _random
from dlcore.functional.image import FILL_MODES, INTERPOLATIONS

from .base import Layer, registry

__all__ = [
    "Normalization",
    "RandomContrast",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "Rescaling",
]


def _real(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value, name, owner):
    """A finite number, or an array of them (per channel), as Rescaling takes."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return _real(value, name, owner)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: {name} must be a number or an array of numbers, got {value!r}"
        ) from None
    if not np.isfinite(array).all():
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return array


def _config_value(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


# ---------------------------------------------------------------- deterministic


@registry.register()
class Rescaling(Layer):
    """``inputs * scale + offset``, in training and inference alike: ``scale=1/255``
    maps [0, 255] to [0, 1], ``scale=1/127.5, offset=-1`` to [-1, 1]. Integer inputs
    become floats. ``scale`` and ``offset`` may be arrays broadcast against the inputs
    (one per channel).

    Input shape: any. Output shape: the input's.
    """

    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _numbers(scale, "scale", "Rescaling")
        self.offset = _numbers(offset, "offset", "Rescaling")

    def call(self, inputs):
        scale = np.asarray(self.scale, dtype=self.dtype)
        offset = np.asarray(self.offset, dtype=self.dtype)
        return inputs * scale + offset

    def get_config(self):
        return {
            **super().get_config(),
            "scale": _config_value(self.scale),
            "offset": _config_value(self.offset),
        }


@registry.register()
class Normalization(Layer):
    """``(inputs - mean) / sqrt(variance)`` with a mean and variance per index of
    ``axis`` (the rest reduced), given or learnt from data by :meth:`adapt`;
    ``invert=True`` maps normalised values back. The denominator is at least 1e-7.

    Args:
        axis: the axis or axes (of the input with its batch dimension) that keep their
            own statistics; -1, the features, by default; None: one mean and variance.
        mean, variance: given statistics (both or neither), broadcast to the kept axes.
            Without them the layer has the weights ``mean``, ``variance`` and ``count``
            (not trainable, Keras' weights), set by :meth:`adapt`.
        invert: apply the inverse transform.

    Input shape: any, with the kept axes known. Output shape: the input's.
    """

    supports_masking = True

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axis = (int(axis),)
        elif isinstance(axis, (tuple, list)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis
        ):
            axis = tuple(int(a) for a in axis)
        else:
            raise ValueError(
                f"Normalization: axis must be an int, a tuple of ints or None, got {axis!r}"
            )
        self.axis = axis
        if (mean is None) != (variance is None):
            raise ValueError(
                f"Normalization: give both mean and variance or neither, got mean={mean!r} "
                f"and variance={variance!r}"
            )
        if mean is not None:
            mean_shape, variance_shape = np.shape(mean), np.shape(variance)
            if mean_shape != variance_shape:
                raise ValueError(
                    f"Normalization: mean and variance must have the same shape, got "
                    f"{mean_shape} and {variance_shape}"
                )
            if len(mean_shape) > len(axis):
                raise ValueError(
                    f"Normalization: mean has shape {mean_shape}, more axes than axis={axis}"
                )
            if np.any(np.asarray(variance) < 0):
                raise ValueError("Normalization: variance must be >= 0")
        self.input_mean, self.input_variance = mean, variance
        self.invert = bool(invert)
        self.adapt_mean = self.adapt_variance = self.count = None

    def build(self, input_shape):
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(
                f"{self.name}: axis {self.axis} is out of range for inputs of shape {input_shape} "
                f"(ndim {ndim})"
            )
        keep = tuple(sorted(a % ndim for a in self.axis))
        unknown = [d for d in keep if input_shape[d] is None]
        if unknown:
            raise ValueError(
                f"{self.name}: the kept axes must have known sizes; axis {unknown[0]} of input "
                f"shape {input_shape} is unknown"
            )
        self._keep_axis = keep
        self._reduce_axis = tuple(d for d in range(ndim) if d not in keep)
        self._broadcast_shape = tuple(input_shape[d] if d in keep else 1 for d in range(ndim))
        shape = tuple(input_shape[d] for d in keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight("mean", shape, "zeros", trainable=False)
            self.adapt_variance = self.add_weight("variance", shape, "ones", trainable=False)
            # Keras' count is an int it never updates; dlcore's weights are floats
            self.count = self.add_weight("count", (), "zeros", trainable=False)
            return
        # given statistics: aligned to the kept axes from the right, as Keras
        expanded = [1] * ndim
        mean = np.asarray(self.input_mean, dtype=np.float64)
        for i in range(1, mean.ndim + 1):
            expanded[keep[-i]] = mean.shape[-i]
        try:
            self._given = tuple(
                np.broadcast_to(np.reshape(np.asarray(v, np.float64), expanded),
                                self._broadcast_shape).astype(self.dtype)
                for v in (self.input_mean, self.input_variance)
            )  # fmt: skip
        except ValueError:
            raise ValueError(
                f"{self.name}: mean of shape {mean.shape} does not broadcast to the kept axes "
                f"{keep} of inputs of shape {input_shape}"
            ) from None

    @property
    def mean(self):
        """The mean in the inputs' broadcast shape (Keras' ``layer.mean``)."""
        if self.input_mean is not None:
            return self._given[0]
        return self.adapt_mean.data.reshape(self._broadcast_shape)

    @property
    def variance(self):
        """The variance in the inputs' broadcast shape (Keras' ``layer.variance``)."""
        if self.input_mean is not None:
            return self._given[1]
        return self.adapt_variance.data.reshape(self._broadcast_shape)

    def adapt(self, data):
        """Sets the mean and variance to those of ``data``: an array (or Tensor), or an
        iterable of batches (arrays, or ``(x, y)`` tuples of which x is used) such as a
        generator or a :class:`~dlcore.utils.PyDataset`."""
        if self.input_mean is not None:
            raise ValueError(f"{self.name}: adapt needs a layer built without mean and variance")
        batches = _batches(data, self.name)
        first = next(batches, None)
        if first is None:
            raise ValueError(f"{self.name}: adapt got no data (an empty iterable)")
        if not self.built:
            self.build(first.shape)
        count, mean, var = 0, 0.0, 0.0
        for batch in (first, *batches):
            if batch.ndim != len(self._broadcast_shape) or any(
                batch.shape[d] != self._broadcast_shape[d] for d in self._keep_axis
            ):
                raise ValueError(
                    f"{self.name}: adapt got data of shape {batch.shape}; the layer keeps "
                    f"axes {self._keep_axis} of inputs shaped like {self.input_shape}"
                )
            n = int(np.prod([batch.shape[d] for d in self._reduce_axis]))
            if n == 0:
                continue
            b_mean = batch.mean(axis=self._reduce_axis, dtype=np.float64)
            b_var = batch.var(axis=self._reduce_axis, dtype=np.float64)
            total = count + n  # Chan's pairwise update of the mean and variance
            delta = b_mean - mean
            mean = mean + delta * (n / total)
            var = (var * count + b_var * n + delta**2 * (count * n / total)) / total
            count = total
        if count == 0:
            raise ValueError(f"{self.name}: adapt got no samples")
        self.adapt_mean.data[...] = mean
        self.adapt_variance.data[...] = var

    def call(self, inputs):
        mean = self.mean
        scale = np.maximum(np.sqrt(self.variance), self.dtype.type(1e-7))
        if self.invert:
            return inputs * scale + mean
        return (inputs - mean) / scale

    def get_config(self):
        return {
            **super().get_config(),
            "axis": list(self.axis),
            "invert": self.invert,
            "mean": np.array(self.input_mean).tolist(),
            "variance": np.array(self.input_variance).tolist(),
        }


def _batches(data, owner):
    """An array as one batch, or the x of each batch of an iterable, as float arrays."""
    if isinstance(data, np.ndarray) or hasattr(data, "numpy"):
        yield np.asarray(data)
        return
    if not hasattr(data, "__iter__"):
        raise TypeError(
            f"{owner}: adapt takes an array or an iterable of batches, got {type(data).__name__}"
        )
    for batch in data:
        batch = batch[0] if isinstance(batch, tuple) else batch
        if not hasattr(batch, "shape"):
            raise TypeError(
                f"{owner}: adapt's iterable must yield arrays (or (x, y) tuples), got "
                f"{type(batch).__name__}"
            )
        yield np.asarray(batch)


# ---------------------------------------------------------------- random


def _factor_pair(factor, name, owner, bounds, open_low=False):
    """Keras' ``(lower, upper)`` from a number f (-|f|, |f|) or a pair (sorted), each
    within ``bounds`` (the lower bound excluded with ``open_low``)."""
    low, high = bounds

    def check(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ValueError(
                f"{owner}: {name} must be a number or a pair of numbers, got {factor!r}"
            )
        if v > high or v < low or (open_low and v == low):
            interval = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
            raise ValueError(f"{owner}: {name} must be within {interval}, got {factor!r}")
        return float(v)

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(
                f"{owner}: {name} must be a number or a pair of numbers, got {factor!r}"
            )
        return tuple(sorted(check(v) for v in factor))
    f = abs(check(factor))
    return (-f, f)


class _RandomImageLayer(Layer):
    """A random transform per image in training, the identity otherwise; images
    (batch, height, width, channels) or one image (height, width, channels)."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"{owner}: dlcore is channels-last; data_format={data_format!r} is not supported"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"{owner}: seed must be an int or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def _generator(self):
        return self._rng if self._rng is not None else _random.generator()

    def build(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise ValueError(
                f"{self.name}: {type(self).__name__} takes images (batch, height, width, "
                f"channels) or one image (height, width, channels), got shape {input_shape}"
            )

    def call(self, inputs, training=False):
        if not training:
            return inputs
        single = inputs.ndim == 3
        if inputs.ndim not in (3, 4):
            raise ValueError(
                f"{self.name}: expected images (batch, height, width, channels), got shape "
                f"{inputs.shape}"
            )
        x = F.reshape(inputs, (1, *inputs.shape)) if single else inputs
        y = self.transform_images(x, self.get_random_transformation(x.shape))
        return F.reshape(y, inputs.shape) if single else y

    def get_random_transformation(self, shape):
        """The transform's parameters for a batch of images of ``shape``."""
        raise NotImplementedError

    def transform_images(self, images, transformation):
        """The batch transformed with ``transformation`` (a Tensor, differentiable)."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class _ResamplingLayer(_RandomImageLayer):
    """A random geometric transform, resampled as ``fill_mode`` and ``interpolation``
    say (:func:`dlcore.functional.affine_transform`)."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):  # fmt: skip
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        owner = type(self).__name__
        if fill_mode not in FILL_MODES:
            raise ValueError(f"{owner}: fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"{owner}: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}"
            )
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = _real(fill_value, "fill_value", owner)

    def _resample(self, images, matrices):
        return F.affine_transform(images, matrices, self.interpolation, self.fill_mode,
                                  self.fill_value)  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }


class _HeightWidthLayer(_ResamplingLayer):
    """A resampling layer configured by ``height_factor`` and ``width_factor``."""

    def get_config(self):
        return {
            **super().get_config(),
            "height_factor": _config_value(self.height_factor),
            "width_factor": _config_value(self.width_factor),
        }


_FLIP_AXES = {"horizontal": (2,), "vertical": (1,), "horizontal_and_vertical": (1, 2)}


@registry.register()
class RandomFlip(_RandomImageLayer):
    """Flips each image with probability 1/2 in training: left-right (``mode=
    "horizontal"``), top-bottom (``"vertical"``) or, as Keras does for
    ``"horizontal_and_vertical"``, both at once (a half turn).

    Input shape: (batch, height, width, channels). Output shape: the input's.
    """

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in _FLIP_AXES:
            raise ValueError(f"RandomFlip: mode must be one of {tuple(_FLIP_AXES)}, got {mode!r}")
        self.mode = mode

    def get_random_transformation(self, shape):
        return {"flips": self._generator().uniform(size=(shape[0], 1, 1, 1)) <= 0.5}

    def transform_images(self, images, transformation):
        flips = np.asarray(transformation["flips"], dtype=bool).reshape(-1)
        return F.flip(images, _FLIP_AXES[self.mode], where=flips)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@registry.register()
class RandomRotation(_ResamplingLayer):
    """Rotates each image about its centre by a random angle in training, drawn
    uniformly from ``factor`` turns: ``factor=0.1`` means within ±36°, ``(-0.2, 0.3)``
    within [-72°, 108°]; positive is counter-clockwise.

    Input shape: (batch, height, width, channels). Output shape: the input's.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):  # fmt: skip
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor_pair(factor, "factor", "RandomRotation", (-1.0, 1.0))

    def get_random_transformation(self, shape):
        lower, upper = self.factor
        angle = self._generator().uniform(lower * 360.0, upper * 360.0, size=shape[0])
        return {"angle": angle.astype(np.float32)}

    def transform_images(self, images, transformation):
        dtype = images.dtype
        angle = np.asarray(transformation["angle"], dtype).reshape(-1) * dtype.type(math.pi / 180)
        _, height, width, _ = images.shape
        cx, cy = dtype.type(0.5 * (width - 1)), dtype.type(0.5 * (height - 1))
        cos, sin = np.cos(angle), np.sin(angle)
        zeros = np.zeros_like(angle)
        # the output pixel (x, y) reads the input at the point rotated back about the centre
        matrices = np.stack([cos, -sin, cx - cx * cos + cy * sin,
                             sin, cos, cy - cx * sin - cy * cos, zeros, zeros], axis=1)  # fmt: skip
        return self._resample(images, matrices)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


@registry.register()
class RandomTranslation(_HeightWidthLayer):
    """Shifts each image by a random fraction of its height and width in training:
    ``height_factor=0.2`` within ±20% of the height (positive: down),
    ``width_factor=(-0.1, 0.3)`` between 10% left and 30% right.

    Input shape: (batch, height, width, channels). Output shape: the input's.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, data_format=None, **kwargs):  # fmt: skip
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        owner = "RandomTranslation"
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_lower, self.height_upper = _factor_pair(
            height_factor, "height_factor", owner, (-1.0, 1.0)
        )
        self.width_lower, self.width_upper = _factor_pair(
            width_factor, "width_factor", owner, (-1.0, 1.0)
        )

    def get_random_transformation(self, shape):
        n, height, width = shape[0], shape[1], shape[2]
        rng = self._generator()
        dy = rng.uniform(self.height_lower, self.height_upper, size=(n, 1)) * height
        dx = rng.uniform(self.width_lower, self.width_upper, size=(n, 1)) * width
        return {"translations": np.concatenate([dx, dy], axis=1).astype(np.float32)}

    def transform_images(self, images, transformation):
        t = np.asarray(transformation["translations"], images.dtype).reshape(-1, 2)
        ones, zeros = np.ones(len(t), images.dtype), np.zeros(len(t), images.dtype)
        matrices = np.stack([ones, zeros, -t[:, 0], zeros, ones, -t[:, 1], zeros, zeros], axis=1)
        return self._resample(images, matrices)


@registry.register()
class RandomZoom(_HeightWidthLayer):
    """Zooms each image about its centre by a random amount in training:
    ``height_factor=0.2`` scales the height's view by 1 ± 0.2 (positive: zoom out,
    negative: in); ``width_factor`` likewise, or None to keep the aspect ratio.

    Input shape: (batch, height, width, channels). Output shape: the input's.
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):  # fmt: skip
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        owner = "RandomZoom"
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_lower, self.height_upper = _factor_pair(
            height_factor, "height_factor", owner, (-1.0, 1.0), open_low=True
        )
        if width_factor is not None:
            self.width_lower, self.width_upper = _factor_pair(
                width_factor, "width_factor", owner, (-1.0, 1.0), open_low=True
            )

    def get_random_transformation(self, shape):
        rng = self._generator()
        size = (shape[0], 1)
        height_zoom = rng.uniform(1 + self.height_lower, 1 + self.height_upper, size=size)
        width_zoom = height_zoom
        if self.width_factor is not None:
            width_zoom = rng.uniform(1 + self.width_lower, 1 + self.width_upper, size=size)
        return {
            "height_zoom": height_zoom.astype(np.float32),
            "width_zoom": width_zoom.astype(np.float32),
        }

    def transform_images(self, images, transformation):
        dtype = images.dtype
        zx = np.asarray(transformation["width_zoom"], dtype).reshape(-1)
        zy = np.asarray(transformation["height_zoom"], dtype).reshape(-1)
        _, height, width, _ = images.shape
        zeros = np.zeros_like(zx)
        # a zoom about the centre: x_in = zx * x + (width - 1) / 2 * (1 - zx)
        matrices = np.stack([zx, zeros, dtype.type((width - 1) / 2) * (1 - zx),
                             zeros, zy, dtype.type((height - 1) / 2) * (1 - zy),
                             zeros, zeros], axis=1)  # fmt: skip
        return self._resample(images, matrices)


@registry.register()
class RandomContrast(_RandomImageLayer):
    """Scales each image's deviation from its per-channel mean by a random factor in
    training, ``(x - mean) * factor + mean``, clipped to ``value_range``.

    The factor is drawn from [1 - lower, 1 + upper] for ``factor=(lower, upper)``
    (each in [0, 1]); a single number f means (0, f), as in Keras 3, so
    ``RandomContrast(0.2)`` raises contrast by up to 20% and never lowers it.

    Input shape: (batch, height, width, channels). Output shape: the input's.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        lower, upper = _factor_pair(factor, "factor", "RandomContrast", (0.0, 1.0))
        if not isinstance(factor, (tuple, list)):
            lower = 0.0  # Keras: max(-f, 0)
        self.factor = (lower, upper)
        try:
            low, high = (_real(v, "value_range", "RandomContrast") for v in value_range)
        except TypeError:
            raise ValueError(
                f"RandomContrast: value_range must be a pair (low, high), got {value_range!r}"
            ) from None
        if low > high:
            raise ValueError(
                f"RandomContrast: value_range must have low <= high, got {value_range!r}"
            )
        self.value_range = (low, high)

    def get_random_transformation(self, shape):
        lower, upper = self.factor
        factor = self._generator().uniform(1 - lower, 1 + upper, size=(shape[0], 1, 1, 1))
        return {"contrast_factor": factor.astype(np.float32)}

    def transform_images(self, images, transformation):
        factor = np.asarray(transformation["contrast_factor"], images.dtype).reshape(-1, 1, 1, 1)
        mean = F.mean(F.mean(images, axis=1, keepdims=True), axis=2, keepdims=True)
        return F.clip((images - mean) * factor + mean, *self.value_range)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": list(self.factor),
            "value_range": list(self.value_range),
        }
