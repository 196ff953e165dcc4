"""Recurrent layers over whole sequences: LSTM, GRU, SimpleRNN.

Each runs a whole sequence in one fused kernel (``dlcore.functional.rnn``), with Keras'
weights, options and masking: a masked step carries the state through, and with
``return_sequences`` outputs the carried state (or zeros with
``zero_output_for_mask=True``, which Bidirectional sets as Keras does).

Dropout in training, as Keras 3 draws it, one set of masks per call held for every step:
``dropout`` alone drops input features (one mask per sample, the same at every step),
and the sequence still runs in the fused kernel; ``recurrent_dropout`` also drops units
of the previous state, with a mask per gate for the inputs and for the state (Keras'
implementation 1), and runs step by step in Python (as Keras leaves its fast kernel for
that too): slower, for training only.
"""

from __future__ import annotations

import numpy as np

from dlcore import activations
from dlcore import functional as F
from dlcore.functional.regularization import dropout_mask
from dlcore.tensor import Tensor, as_tensor, record

from .base import Layer, positive_int, registry, weight_config, weight_options
from .regularization import _rate, _seeded

__all__ = ["GRU", "LSTM", "SimpleRNN"]


def _activation_name(value):
    """The registered name of an activation given by name, function or None ('linear')."""
    try:
        return activations.registry.name_of(activations.get(value)) or repr(value)
    except (TypeError, ValueError):
        return repr(value)


# The options every recurrent layer passes to _RecurrentBase, as Keras names them.
_SHARED_OPTIONS = (
    "use_bias", "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "return_sequences",
    "return_state", "go_backwards", "stateful", "unroll", "dropout", "recurrent_dropout",
)  # fmt: skip


def _shared(options):
    """The shared options out of a subclass's ``locals()``."""
    return {k: options[k] for k in _SHARED_OPTIONS}


def _time_steps(x):
    """x (N, T, ...) as T Tensors x[:, t], with one backward that writes their gradients
    into one array (T getitems would each fill an array of x's size)."""
    data = x.data
    steps = tuple(np.ascontiguousarray(data[:, t]) for t in range(data.shape[1]))

    def backward(grads):
        g = np.zeros(data.shape, data.dtype)
        for t, gt in enumerate(grads):
            if gt is not None:
                g[:, t] = gt
        return (g,)

    return record(steps, (x,), backward, "time_steps")


def _carry(new, old, keep):
    """new where ``keep`` (N, 1) is 1, old where it is 0: a masked step's state."""
    return new if keep is None else new * keep + old * (1.0 - keep)


class _RecurrentBase(Layer):
    """What Keras' LSTM, GRU and SimpleRNN share: the RNN options, the weights' options,
    the initial state, go_backwards, the mask and the outputs. A subclass sets
    ``_gates`` (gate groups of the kernels), ``_states`` (states it returns) and
    defines ``build`` and ``_run(x, states, mask) -> (y, *final_states)``."""

    _gates = 1
    _states = 1

    def __init__(
        self,
        units,
        *,
        use_bias,
        kernel_initializer,
        recurrent_initializer,
        bias_initializer,
        kernel_regularizer,
        recurrent_regularizer,
        bias_regularizer,
        return_sequences,
        return_state,
        go_backwards,
        stateful,
        unroll,
        dropout,
        recurrent_dropout,
        zero_output_for_mask=False,
        seed=None,
        use_cudnn="auto",  # Keras' choice of a GPU kernel: nothing to choose here
        **kwargs,
    ):
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.units = positive_int(units, "units", cls)
        if stateful:
            raise ValueError(
                f"{cls}: stateful=True is not supported; dlcore runs each batch from a fresh "
                f"state. To carry state across batches, pass return_state=True and feed the "
                f"states back as initial_state=... on the next call"
            )
        # unroll=True (Keras' loop written out) changes nothing here: the sequence runs
        # in one fused kernel, with the same results
        self.unroll = bool(unroll)
        self.dropout = _rate(dropout, "dropout", cls)
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout", cls)
        self.use_bias = bool(use_bias)
        weight_options(self, "kernel", kernel_initializer, kernel_regularizer)
        weight_options(self, "recurrent", recurrent_initializer, recurrent_regularizer)
        weight_options(self, "bias", bias_initializer, bias_regularizer)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.seed, self._rng = _seeded(seed, cls)  # the dropout masks' generator
        self.kernel = self.recurrent_kernel = self.bias = None

    @staticmethod
    def _check_activations(cls, got, allowed):
        """ValueError unless every (argument, value) of ``got`` names an allowed one."""
        names = {arg: _activation_name(value) for arg, value in got.items()}
        if any(names[arg] not in allowed[arg] for arg in got):
            wanted = " and ".join(f"{arg}={' or '.join(map(repr, allowed[arg]))}" for arg in got)
            given = ", ".join(f"{arg}={names[arg]!r}" for arg in got)
            raise ValueError(
                f"{cls}: dlcore's kernel computes {wanted} (Keras' defaults); got {given}"
            )
        return names

    # ------------------------------------------------------------ weights
    def _check_input_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: {type(self).__name__} needs inputs (batch, timesteps, "
                f"features), got shape {input_shape}"
            )

    def _add_weights(self, input_shape, bias_shape):
        """kernel (I, gU), recurrent_kernel (U, gU) and, with use_bias, the bias."""
        self._check_input_shape(input_shape)
        G = self._gates * self.units
        self.kernel = self.add_weight(
            "kernel", (input_shape[-1], G), self.kernel_initializer, self.kernel_regularizer
        )
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel",
            (self.units, G),
            self.recurrent_initializer,
            self.recurrent_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", bias_shape, self.bias_initializer, self.bias_regularizer
            )
        self._zero_bias = np.zeros(bias_shape, self.dtype)

    def _bias(self):
        return self.bias if self.use_bias else self._zero_bias

    # ------------------------------------------------------------ calling
    def _initial_states(self, initial_state, x):
        if initial_state is None:
            return [None] * self._states
        states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self._states:
            raise ValueError(
                f"{self.name}: initial_state needs {self._states} state(s) of shape "
                f"(batch, {self.units}) for a {type(self).__name__}, got {len(states)}"
            )
        expected = (x.shape[0], self.units)
        for s in states:
            if tuple(np.shape(s)) != expected:
                raise ValueError(
                    f"{self.name}: an initial state has shape {tuple(np.shape(s))}; expected "
                    f"(batch, units) = {expected}"
                )
        return [self._cast(s) for s in states]

    def _step_mask(self, mask, x):
        """The (N, T) boolean mask of the steps that run, or None."""
        if mask is None:
            return None
        mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask).astype(bool)
        if mask.shape != tuple(x.shape[:2]):
            raise ValueError(
                f"{self.name}: the mask has shape {mask.shape}; expected (batch, timesteps) "
                f"= {tuple(x.shape[:2])}, one flag per step of the inputs"
            )
        return mask

    def _masks(self, count, shape, rate, dtype):
        return [dropout_mask(shape, dtype, rate, None, self._rng) for _ in range(count)]

    def _step_inputs(self, x, bias, masks):
        """Each gate's input projection (x * its mask) @ kernel_g + bias_g over the whole
        sequence, as T Tensors (N, U) per gate."""
        U = self.units
        out = []
        for g, m in enumerate(masks):
            xg = x if m is None else x * m[:, None, :]
            out.append(_time_steps(xg @ self.kernel[:, g * U : (g + 1) * U]
                                   + bias[g * U : (g + 1) * U]))  # fmt: skip
        return out

    def call(self, inputs, mask=None, initial_state=None, training=False):
        x = inputs
        self._check_input_shape(x.shape)
        if x.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"{self.name}: expected inputs with {self.kernel.shape[0]} features, got "
                f"shape {x.shape}"
            )
        states = self._initial_states(initial_state, x)
        mask = self._step_mask(mask, x)
        if self.go_backwards:  # Keras' outputs come in the order the steps ran
            x = x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        training = bool(training) and x.shape[1] > 0
        if training and self.recurrent_dropout:
            y, *final = self._run_dropped(x, states, mask)
        else:
            if training and self.dropout:  # one mask per sample for every step (Keras')
                (keep,) = self._masks(1, (x.shape[0], x.shape[2]), self.dropout, x.dtype)
                x = x * keep[:, None, :]
            y, *final = self._run(x, states, mask)
        out = y if self.return_sequences else final[0]
        if mask is not None and self.zero_output_for_mask:
            out = out * (mask[..., None] if self.return_sequences else mask[:, -1:]).astype(
                out.dtype
            )
        return [out, *final] if self.return_state else out

    def _run_dropped(self, x, states, mask):
        """The sequence step by step with Keras' dropout masks (training with
        recurrent_dropout): (y (N, T, U), *final states), as ``_run``."""
        N, T, U = x.shape[0], x.shape[1], self.units
        dtype = x.dtype
        gates = self._dropout_gates
        in_masks = (self._masks(gates, (N, x.shape[2]), self.dropout, dtype) if self.dropout
                    else [None] * gates)  # fmt: skip
        rec_masks = self._masks(gates, (N, U), self.recurrent_dropout, dtype)
        states = [Tensor(np.zeros((N, U), dtype)) if s is None else s for s in states]
        keep = None if mask is None else mask.astype(dtype)
        inputs = self._step_inputs(x, as_tensor(self._bias()), in_masks)
        # the recurrent weights cut into gates once: a slice per step would each fill a
        # kernel-sized gradient array in the backward
        weights = self._cell_weights()
        outputs = []
        for t in range(T):
            new = self._cell([steps[t] for steps in inputs], states, rec_masks, weights)
            k = None if keep is None else keep[:, t : t + 1]
            states = [_carry(n, o, k) for n, o in zip(new, states)]
            outputs.append(states[0])
        return (F.stack(outputs, axis=1), *states)

    def compute_mask(self, inputs, mask=None):
        # Keras' RNN.compute_mask: the input's mask goes on with the sequences (as it came,
        # also with go_backwards); the states have none.
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        return [out] + [None] * self._states if self.return_state else out

    def compute_output_shape(self, input_shape):
        seq = (input_shape[0], input_shape[1], self.units)
        last = (input_shape[0], self.units)
        out = seq if self.return_sequences else last
        return [out] + [last] * self._states if self.return_state else out

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            **weight_config(self, "kernel", "recurrent", "bias"),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": False,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }


@registry.register()
class LSTM(_RecurrentBase):
    """Long short-term memory over a whole sequence, with Keras' weights and gate order.

    Input shape: (batch, timesteps, features). Output: (batch, units), or
    (batch, timesteps, units) with ``return_sequences``; with ``return_state`` a list
    ``[output, h_n, c_n]``. Weights: ``kernel`` (features, 4*units),
    ``recurrent_kernel`` (units, 4*units), ``bias`` (4*units,), gates i, f, c, o.
    Call arguments: ``mask`` (batch, timesteps) (a masked step carries h and c through),
    ``initial_state`` ``[h0, c0]``.
    """

    _gates = 4
    _states = 2

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        return_sequences=False,
        return_state=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        self._check_activations(
            "LSTM",
            {"activation": activation, "recurrent_activation": recurrent_activation},
            {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)},
        )
        super().__init__(units, **_shared(locals()), **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def build(self, input_shape):
        U = self.units
        self._add_weights(input_shape, (4 * U,))
        if self.use_bias and self.unit_forget_bias:
            self.bias.data[U : 2 * U] = 1.0

    def _run(self, x, states, mask):
        return F.lstm(x, *states, self.kernel, self.recurrent_kernel, self._bias(), mask=mask)

    _dropout_gates = 4

    def _cell_weights(self):
        U, R = self.units, self.recurrent_kernel
        return [R[:, g * U : (g + 1) * U] for g in range(4)]

    def _cell(self, x, states, rec_masks, weights):
        """One step of Keras' LSTM cell with per-gate masks on h (gates i, f, c, o)."""
        h, c = states
        z = [x[g] + (h * rec_masks[g]) @ weights[g] for g in range(4)]
        c = z[1].sigmoid() * c + z[0].sigmoid() * z[2].tanh()
        return [z[3].sigmoid() * c.tanh(), c]

    def get_config(self):
        return {
            **super().get_config(),
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "unit_forget_bias": self.unit_forget_bias,
        }


@registry.register()
class GRU(_RecurrentBase):
    """Gated recurrent unit over a whole sequence, with Keras' weights and gate order.

    Input shape: (batch, timesteps, features). Output: (batch, units), or
    (batch, timesteps, units) with ``return_sequences``; with ``return_state`` a list
    ``[output, h_n]``. Weights: ``kernel`` (features, 3*units), ``recurrent_kernel``
    (units, 3*units), gates z, r, h, and ``bias``: (2, 3*units), an input and a
    recurrent row, with ``reset_after=True`` (Keras 3's default, torch.nn.GRU's cell:
    the reset gate multiplies the candidate's recurrent product), (3*units,) with
    ``reset_after=False`` (it multiplies the state before that product).
    Call arguments: ``mask`` (batch, timesteps), ``initial_state`` ``[h0]`` or ``h0``.
    """

    _gates = 3

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        reset_after=True,
        **kwargs,
    ):
        self._check_activations(
            "GRU",
            {"activation": activation, "recurrent_activation": recurrent_activation},
            {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)},
        )
        super().__init__(units, **_shared(locals()), **kwargs)
        self.reset_after = bool(reset_after)

    def build(self, input_shape):
        G = 3 * self.units
        self._add_weights(input_shape, (2, G) if self.reset_after else (G,))

    def _run(self, x, states, mask):
        return F.gru(x, *states, self.kernel, self.recurrent_kernel, self._bias(),
                     reset_after=self.reset_after, mask=mask)  # fmt: skip

    _dropout_gates = 3

    def _step_inputs(self, x, bias, masks):
        return super()._step_inputs(x, bias[0] if self.reset_after else bias, masks)

    def _cell_weights(self):
        """The recurrent kernel's three gates, and with reset_after the recurrent
        bias's (else Nones)."""
        U, R = self.units, self.recurrent_kernel
        gates = [R[:, g * U : (g + 1) * U] for g in range(3)]
        if not self.reset_after:
            return gates, [None] * 3
        rb = as_tensor(self._bias())[1]
        return gates, [rb[g * U : (g + 1) * U] for g in range(3)]

    def _cell(self, x, states, rec_masks, weights):
        """One step of Keras' GRU cell with per-gate masks on h (gates z, r, h)."""
        (h,) = states
        (rz, rr, rh), (bz, br, bh) = weights
        hz, hr, hh = (h * m for m in rec_masks)
        rec_z, rec_r = hz @ rz, hr @ rr
        if self.reset_after:
            rec_z, rec_r = rec_z + bz, rec_r + br
        z, r = (x[0] + rec_z).sigmoid(), (x[1] + rec_r).sigmoid()
        if self.reset_after:
            rec_h = r * (hh @ rh + bh)
        else:
            rec_h = (r * hh) @ rh
        candidate = (x[2] + rec_h).tanh()
        return [z * h + (1.0 - z) * candidate]

    def get_config(self):
        return {
            **super().get_config(),
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "reset_after": self.reset_after,
        }


@registry.register()
class SimpleRNN(_RecurrentBase):
    """A fully connected recurrent layer, h_t = activation(x_t kernel + h_{t-1}
    recurrent_kernel + bias), activation ``'tanh'`` (Keras' default) or ``'relu'``.

    Input shape: (batch, timesteps, features). Output: (batch, units), or
    (batch, timesteps, units) with ``return_sequences``; with ``return_state`` a list
    ``[output, h_n]``. Weights: ``kernel`` (features, units), ``recurrent_kernel``
    (units, units), ``bias`` (units,). Call arguments: ``mask`` (batch, timesteps),
    ``initial_state`` ``[h0]`` or ``h0``.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        **kwargs,
    ):
        names = self._check_activations(
            "SimpleRNN", {"activation": activation}, {"activation": ("tanh", "relu")}
        )
        super().__init__(units, **_shared(locals()), **kwargs)
        self.activation = names["activation"]

    def build(self, input_shape):
        self._add_weights(input_shape, (self.units,))

    def _run(self, x, states, mask):
        return F.simple_rnn(x, *states, self.kernel, self.recurrent_kernel, self._bias(),
                            activation=self.activation, mask=mask)  # fmt: skip

    _dropout_gates = 1

    def _cell_weights(self):
        return self.recurrent_kernel

    def _cell(self, x, states, rec_masks, weights):
        """One step of Keras' SimpleRNN cell with its mask on h."""
        (h,) = states
        pre = x[0] + (h * rec_masks[0]) @ weights
        return [pre.tanh() if self.activation == "tanh" else pre.relu()]

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}
