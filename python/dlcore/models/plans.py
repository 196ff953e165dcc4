"""Training plans: fit's and train_on_batch's steps on arrays, for a model whose layers
form a chain (a Sequential model, or a functional one in which each layer takes the
previous one's output).

Each layer's training step (``Layer._training_fn``, see
:func:`dlcore.layers.base.training_step`) runs its kernels on arrays and returns its
backward: the forward builds no graph, and the backward is the steps' own in reverse,
without a graph's traversal. The last layer's activation alone runs on a Tensor (a leaf
holding its input), so the compiled loss, the metrics and the weight penalties meet the
output they meet on the layer path: a cross-entropy on a softmax still works from its
logits. Values and the optimizer's gradients are the layer path's, bit for bit; only
the optimizer's weights get gradients (the layer path also computes those of layers
frozen after their weights were made, as Keras does not). A model, input or state a
plan cannot serve takes the layer path.

predict's inference plans (Sequential's and Functional's ``_make_plan``) run a
convolution and the pooling after it in blocks of images at large batches
(:func:`pooled_in_blocks`).
"""

from __future__ import annotations

import numpy as np

from dlcore import activations, ops
from dlcore.layers.base import training_step
from dlcore.tensor import Tensor

__all__ = ["conv_pool_step", "pooled_in_blocks", "training_chain", "training_key"]

# The bytes of a convolution's output one block of images makes before the pooling after
# it reads them back: a few MB, so that they are still in the cache.
BLOCK_BYTES = 4 << 20
# The forward algorithms whose values for an image do not depend on the other images in
# the batch (one chain of multiply-adds per output pixel, or per Winograd tile), so a
# block of images gets the bits the whole batch would. A GEMM's rounding may follow its
# number of rows ('pointwise', 'pixel_tiles'): those run the whole batch.
_BATCH_FREE = ("direct", "winograd")


# dlcore's own activations: each works on one value, or on one pixel's channels (softmax
# over the last axis), never across the batch as a user's function may.
_PER_PIXEL = frozenset(
    (
        activations.linear, activations.relu, activations.sigmoid, activations.tanh,
        activations.softmax, activations.leaky_relu, activations.elu, activations.selu,
        activations.gelu, activations.silu, activations.softplus, activations.softsign,
        activations.hard_sigmoid, activations.hard_silu, activations.exponential,
        activations.mish, activations.log_softmax,
    )
)  # fmt: skip


def pooled_in_blocks(layers, steps):
    """``steps``, the inference steps of ``layers`` applied one after the other, with
    each Conv2D's step that a 2-D pooling layer's follows joined to it
    (:func:`conv_pool_step`)."""
    joined, i = [], 0
    while i < len(steps):
        step = None
        if i + 1 < len(steps):
            step = conv_pool_step(layers[i], layers[i + 1], steps[i], steps[i + 1])
        joined.append(steps[i] if step is None else step)
        i += 1 if step is None else 2
    return joined


def conv_pool_step(conv, pool, conv_step, pool_step):
    """One step for ``conv``'s step and then ``pool``'s, which runs a large batch in
    blocks of images, or None when the two layers cannot be joined. The convolution's
    output (86 MB between the seed CNN's first convolution and its pooling for 1,000
    MNIST images) then goes to the pooling through the cache rather than through memory.
    The values are the layers' own, bit for bit: blocks are used only for a Conv2D with
    one of dlcore's own activations before dlcore's own 2-D pooling step (a user's
    activation or pooling step may read the whole batch), and only where the
    convolution's algorithm is the same for a block as for the whole batch, and one
    whose values for an image do not depend on the others."""
    from dlcore import functional as F
    from dlcore.layers.convolutional import Conv2D
    from dlcore.layers.pooling import BasePooling

    if (
        type(conv)._inference_fn is not Conv2D._inference_fn
        or getattr(conv, "activation", None) not in _PER_PIXEL
        or not isinstance(pool, BasePooling)
        or type(pool)._inference_fn is not BasePooling._inference_fn
        or type(pool).pool not in (F.max_pool2d, F.avg_pool2d)
    ):
        return None
    return _conv_pool(conv, conv_step, pool_step)


def _conv_pool(conv, conv_step, pool_step):
    from dlcore.functional.window import layer_padding

    shape = conv.output_shape
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape[1:]):
        return None
    per_image = int(np.prod(shape[1:])) * np.dtype(conv.dtype).itemsize
    block = max(1, BLOCK_BYTES // per_image)
    same_bits = {}  # (batch, image shape): whether blocks give the whole batch's bits

    def batch_free(x):
        key = x.shape
        if key not in same_bits:
            kernel, strides, dilation = conv.kernel.data.shape, conv.strides, conv.dilation_rate
            pad = layer_padding(conv.padding, x.shape[1:3], kernel[:2], strides, dilation)
            rest = x.shape[0] % block or block
            plan = dict(strides=strides, padding=pad, dilation=dilation)
            sizes = (x.shape[0], block, rest)
            algorithms = {
                ops.conv2d_plan((n, *x.shape[1:]), kernel, **plan)["forward"] for n in sizes
            }
            same_bits[key] = len(algorithms) == 1 and algorithms <= set(_BATCH_FREE)
        return same_bits[key]

    def step(x):
        n = x.shape[0]
        if n < 2 * block or x.ndim != 4 or not batch_free(x):
            return pool_step(conv_step(x))
        first = pool_step(conv_step(x[:block]))
        y = np.empty((n, *first.shape[1:]), first.dtype)
        y[:block] = first
        for start in range(block, n, block):
            y[start : start + block] = pool_step(conv_step(x[start : start + block]))
        return y

    return step


def training_key(layers):
    """What a kept training plan was made for besides its layers' identity: each
    layer's activation, which the steps and the head are chosen by."""
    return [getattr(layer, "activation", None) for layer in layers]


def training_chain(layers, shapes, input_dtype=None):
    """``run(x, trained)`` for ``layers`` applied one after the other, layer i to inputs
    of ``shapes[i]`` (the shape it was built for); None when a layer has no training
    step or was built for another shape, the layers' dtypes differ, or a weight appears
    twice. ``input_dtype``: the dtype the model itself casts x to first (a functional
    model's Input), if any.

    ``run(x, trained)`` returns the output Tensor of the model's call in training and a
    function that, once the loss's backward has run, takes the gradients back to the
    weights whose ids are in ``trained``; None when none of them is in these layers."""
    if not layers:
        return None
    dtype, last = layers[0].dtype, len(layers) - 1
    head = getattr(layers[last], "activation", None)
    if not callable(head) or head is activations.linear:
        head = None
    steps, seen = [], set()
    for i, (layer, shape) in enumerate(zip(layers, shapes, strict=True)):
        built = getattr(layer, "input_shape", None)
        if shape is None or built is None or tuple(built) != tuple(shape):
            return None
        if layer.dtype != dtype:
            return None
        # by position: a layer without weights (an Activation) may come twice
        step = training_step(layer, activate=i != last or head is None)
        weights = layer.weights
        if step is None or any(id(w) in seen for w in weights):
            return None
        seen.update(id(w) for w in weights)
        steps.append((step, weights))

    def run(x, trained):
        needs, need = [], False  # whether each step's input needs a gradient
        for _, weights in steps:
            needs.append(need)
            need = need or any(id(w) in trained for w in weights)
        if not need:
            return None  # nothing to train: the layer path says so as it does
        if input_dtype is not None and x.dtype != input_dtype:
            x = x.astype(input_dtype)
        if x.dtype != dtype:
            x = x.astype(dtype)
        backs = []
        for (step, _), need_dx in zip(steps, needs):
            x, back = step(x, need_dx, trained)
            backs.append(back)
        leaf = Tensor._of(x)
        leaf.requires_grad = True
        out = leaf if head is None else head(leaf)

        def backward():
            g = leaf.grad
            for back in reversed(backs):
                if g is None:
                    break
                g = back(g)

        return out, backward

    return run
