"""Wrappers of another layer: Bidirectional (a recurrent layer run both ways) and
TimeDistributed (a layer applied to every step). The wrapped layers are tracked
sub-layers: their weights are the wrapper's, in Keras' order."""

from __future__ import annotations

from dlcore import functional as F

from .base import Layer, registry

__all__ = ["Bidirectional", "TimeDistributed"]

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _layer_arg(layer, owner, argument="layer"):
    if not isinstance(layer, Layer):
        raise ValueError(
            f"{owner}: {argument} must be a dlcore layer instance (such as LSTM(64)), got {layer!r}"
        )
    return layer


def _copy(layer, name, **changes):
    """A new layer from ``layer``'s config, renamed and with ``changes``: a fresh copy
    that shares no weights or state with it."""
    # from the layer's own class, so a custom layer needs no registering or custom objects
    return type(layer).from_config(dict(layer.get_config(), name=name, **changes))


@registry.register()
class Bidirectional(Layer):
    """Runs a recurrent layer over the sequence forwards and a copy of it backwards, and
    merges their outputs, as Keras' Bidirectional.

    Args:
        layer: an LSTM, GRU or SimpleRNN (or any layer with ``go_backwards``,
            ``return_sequences`` and ``return_state``); a fresh copy of it, named
            ``forward_<name>``, runs forwards.
        merge_mode: ``'concat'`` (default), ``'sum'``, ``'mul'``, ``'ave'`` or None (a
            list of both outputs).
        backward_layer: the layer that runs backwards; by default a copy of ``layer``
            with ``go_backwards=True``, named ``backward_<name>``.
        weights: initial weights, the forward layer's then the backward layer's.

    With ``return_sequences`` the backward outputs are flipped back into step order
    before the merge; a mask goes to both layers, whose masked steps output zeros
    (``zero_output_for_mask``, as Keras sets). With ``return_state`` the result is
    ``[output, *forward_states, *backward_states]`` (merge_mode None: both outputs
    first). Weights: the forward layer's, then the backward layer's.
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        layer = _layer_arg(layer, "Bidirectional")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Bidirectional: merge_mode must be one of 'concat', 'sum', 'mul', 'ave' or "
                f"None, got {merge_mode!r}"
            )
        for attr in ("go_backwards", "return_sequences", "return_state"):
            if not hasattr(layer, attr):
                raise ValueError(
                    f"Bidirectional: the layer must be a recurrent layer (with go_backwards, "
                    f"return_sequences and return_state), got {type(layer).__name__}"
                )
        base = layer.name.removeprefix("forward_")
        self.forward_layer = _copy(layer, f"forward_{base}")
        if backward_layer is None:
            base = layer.name.removeprefix("backward_")
            self.backward_layer = _copy(layer, f"backward_{base}", go_backwards=True)
        else:
            self.backward_layer = _layer_arg(backward_layer, "Bidirectional", "backward_layer")
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(
                "Bidirectional: the forward and backward layers must differ in go_backwards; "
                f"both have go_backwards={self.forward_layer.go_backwards}"
            )
        for attr in ("return_sequences", "return_state"):
            f, b = getattr(self.forward_layer, attr), getattr(self.backward_layer, attr)
            if f != b:
                raise ValueError(
                    f"Bidirectional: the forward and backward layers must agree on {attr}; "
                    f"got {f} and {b}"
                )
        for sub in (self.forward_layer, self.backward_layer):  # Keras forces this
            if hasattr(sub, "zero_output_for_mask"):
                sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self._initial_weights = weights

    def build(self, input_shape):
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs, training=None, mask=None, initial_state=None):
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(inputs, training=training, mask=mask, initial_state=forward_state)
        y_rev = self.backward_layer(
            inputs, training=training, mask=mask, initial_state=backward_state
        )
        states = []
        if self.return_state:
            states = [*y[1:], *y_rev[1:]]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        if self.merge_mode == "concat":
            output = F.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            return [y, y_rev, *states]
        return [output, *states] if self.return_state else output

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            out = [(*shape[:-1], shape[-1] * 2)]
        elif self.merge_mode is None:
            out = [tuple(shape), tuple(shape)]
        else:
            out = [tuple(shape)]
        out += states * 2
        return out if len(out) > 1 else out[0]

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        masks = [out, out] if self.merge_mode is None else [out]
        if self.return_state:  # the states have none
            states = len(self.forward_layer.compute_output_shape(tuple(inputs.shape))) - 1
            masks += [None] * (2 * states)
        return masks if len(masks) > 1 else masks[0]

    def get_config(self):
        return {
            **super().get_config(),
            "merge_mode": self.merge_mode,
            "layer": registry.serialize(self.forward_layer),
            "backward_layer": registry.serialize(self.backward_layer),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = registry.deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = registry.deserialize(config["backward_layer"])
        return cls(**config)


@registry.register()
class TimeDistributed(Layer):
    """Applies a layer to every step of a sequence: inputs (batch, steps, ...) are
    folded into (batch * steps, ...) for the wrapped layer, whose outputs are unfolded
    to (batch, steps, ...). One set of weights serves every step.

    As Keras' TimeDistributed for any layer that treats the samples of a batch apart
    (Dense, Conv2D, pooling, ...). A layer whose training pass mixes a batch's samples
    (BatchNormalization's batch statistics) sees all the steps of the batch at once
    here, each step apart in Keras. The input's mask passes through.
    """

    supports_masking = True

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = _layer_arg(layer, "TimeDistributed")

    def _child_shape(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(
                f"{self.name}: TimeDistributed needs inputs with at least 3 axes "
                f"(batch, steps, ...), got shape {tuple(input_shape)}"
            )
        N, T = input_shape[:2]
        return (None if N is None or T is None else N * T, *input_shape[2:])

    def build(self, input_shape):
        self.layer.build(self._child_shape(input_shape))

    def call(self, inputs, training=None):
        N, T = inputs.shape[:2]
        y = self.layer(inputs.reshape((N * T, *inputs.shape[2:])), training=training)
        return y.reshape((N, T, *y.shape[1:]))

    def compute_output_shape(self, input_shape):
        child = self.layer.compute_output_shape((input_shape[0], *input_shape[2:]))
        return (child[0], input_shape[1], *child[1:])

    def get_config(self):
        return {**super().get_config(), "layer": registry.serialize(self.layer)}

    @classmethod
    def from_config(cls, config):
        return cls(**dict(config, layer=registry.deserialize(config["layer"])))
