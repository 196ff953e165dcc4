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
"""

from __future__ import annotations

from dlcore import activations
from dlcore.layers.base import training_step
from dlcore.tensor import Tensor

__all__ = ["training_chain", "training_key"]


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
