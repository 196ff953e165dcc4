"""Optimizers: SGD (momentum, Nesterov), Adam, RMSprop, with learning-rate schedules and
gradient clipping. Keras' names, defaults and update formulas; usable from
``model.compile`` and, PyTorch-style, from a hand-written loop::

    opt = optimizers.Adam(learning_rate=1e-3, params=model.trainable_weights)
    opt.zero_grad(); loss.backward(); opt.step()

Every hyper-parameter is checked whenever it is set, in the constructor or later
(``opt.learning_rate = 1e-4``): a setting that would reverse or stall training (a
negative rate or clip value, ``beta_1=1``, ``rho=1``) is a ValueError naming it, as is
a rate a schedule yields when it is used, and a parameter listed twice.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from dlcore import constraints, ops
from dlcore.optimizers import schedules
from dlcore.optimizers.hyperparameters import Hyperparameter, checked_rate
from dlcore.registry import Registry
from dlcore.tensor import Tensor

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "deserialize",
    "get",
    "registry",
    "schedules",
    "serialize",
]

registry = Registry("optimizer")


def _accept_keras2_lr(init):
    """Lets an optimizer's ``__init__`` take Keras 2's ``lr=`` for ``learning_rate``,
    with a DeprecationWarning; both at once is an error."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        if "lr" in kwargs:
            if args or "learning_rate" in kwargs:
                raise TypeError(
                    f"{type(self).__name__}: give learning_rate or its Keras 2 name lr, not both"
                )
            warnings.warn(
                f"{type(self).__name__}(lr=...) is Keras 2's spelling; use learning_rate=...",
                DeprecationWarning,
                stacklevel=2,
            )
            kwargs["learning_rate"] = kwargs.pop("lr")
        init(self, *args, **kwargs)

    return wrapper


def _describe(t):
    return repr(t.name) if getattr(t, "name", None) else f"a Tensor of shape {t.shape}"


def _check_unique(tensors, owner, what="params"):
    """Refuses a parameter listed twice: it would be stepped twice per update."""
    first = {}
    for i, t in enumerate(tensors):
        if id(t) in first:
            raise ValueError(
                f"{owner}: {what} lists {_describe(t)} twice (positions {first[id(t)]} and "
                f"{i}); each parameter must appear once, or it is updated twice per step"
            )
        first[id(t)] = i


class Optimizer:
    """Base: owns the step count, the learning rate (a float or a schedule), gradient
    clipping, ``zero_grad`` and ``step``; each subclass adds ``update_step``.

    Args:
        learning_rate: a float or a schedule of the step count.
        params: the Tensors to update (optional: ``compile`` supplies the model's, and
            ``step(params)`` / ``apply_gradients`` accept them per call).
        clipnorm: clip each gradient to this L2 norm. clipvalue: clip each element to
            [-clipvalue, clipvalue]. global_clipnorm: scale all gradients together so
            their joint norm is at most this.
        weight_decay: decoupled weight decay, as Keras 3 applies it before each update:
            ``w -= w * weight_decay * lr`` for every updated weight.
    """

    slot_names = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _accept_keras2_lr(cls.__dict__["__init__"])

    def __init__(
        self,
        learning_rate=0.001,
        *,
        params=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        weight_decay=None,
        name=None,
    ):
        if isinstance(params, Tensor) or isinstance(learning_rate, (list, tuple)):
            raise TypeError(
                f"{type(self).__name__}: pass the parameters as params=[...]; "
                f"the first argument is the learning rate"
            )
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                f"{type(self).__name__}: only one of clipnorm, clipvalue and global_clipnorm "
                f"can be set, got clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}"
            )
        self.learning_rate = learning_rate
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.weight_decay = weight_decay
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.params = params
        self._slots = {}  # id(param) -> (param, {slot name: array})

    clipnorm = Hyperparameter("(0, inf)", optional=True)
    clipvalue = Hyperparameter("(0, inf)", optional=True)
    global_clipnorm = Hyperparameter("(0, inf)", optional=True)
    weight_decay = Hyperparameter("[0, inf)", optional=True)

    @property
    def learning_rate(self):
        """A float > 0, or a schedule (a callable of the step count) whose values are
        checked as they are used."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, dict):
            value = schedules.get(value)
        if not callable(value):
            value = Hyperparameter("(0, inf)").check(value, f"{type(self).__name__}: learning_rate")
        self._learning_rate = value

    @property
    def params(self):
        """The Tensors ``step()`` updates (None until given), each listed once."""
        return self._params_list

    @params.setter
    def params(self, params):
        if params is not None:
            params = list(params)
            for i, p in enumerate(params):
                if not isinstance(p, Tensor):
                    raise TypeError(
                        f"{type(self).__name__}: params must be Tensors, got "
                        f"{type(p).__name__} at position {i}"
                    )
            _check_unique(params, type(self).__name__)
        self._params_list = params

    # ------------------------------------------------------------ PyTorch face
    def zero_grad(self, params=None):
        """Clears ``.grad`` of the parameters (sets it to None)."""
        for p in self._params(params):
            p.grad = None

    def step(self, params=None):
        """Applies one update from the parameters' ``.grad`` (those without one are
        left alone) and advances the step count."""
        params = self._params(params)  # checked: each listed once
        self._apply([(p.grad, p) for p in params if p.grad is not None], checked=True)

    # ------------------------------------------------------------ Keras face
    def apply_gradients(self, grads_and_vars):
        """Keras: ``opt.apply_gradients(zip(grads, model.trainable_weights))``."""
        pairs = [
            (np.asarray(g.data if isinstance(g, Tensor) else g), v)
            for g, v in grads_and_vars
            if g is not None
        ]
        self._apply(pairs)

    def apply(self, grads, trainable_variables):
        self.apply_gradients(zip(grads, trainable_variables))

    @property
    def current_learning_rate(self):
        """The learning rate of the next update (a schedule's value at this step)."""
        lr = self.learning_rate
        if not callable(lr):
            return lr
        name = getattr(lr, "__name__", type(lr).__name__)
        return checked_rate(
            lr(self.iterations),
            f"{type(self).__name__}: the learning-rate schedule {name} at step {self.iterations}",
        )

    # ------------------------------------------------------------ internals
    def _params(self, params):
        if params is None:
            if self.params is None:
                raise ValueError(
                    f"{type(self).__name__}: no parameters; pass them to the "
                    f"constructor, to step(params), or compile a model with it"
                )
            return self.params
        if params is self._params_list:  # checked when it was set
            return params
        params = list(params)
        _check_unique(params, f"{type(self).__name__}.step")
        return params

    def _clip(self, pairs):
        if self.clipvalue is not None:
            return [(np.clip(g, -self.clipvalue, self.clipvalue), p) for g, p in pairs]
        if self.clipnorm is not None:
            out = []
            for g, p in pairs:
                norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
                out.append((g * (self.clipnorm / norm) if norm > self.clipnorm else g, p))
            return out
        if self.global_clipnorm is not None:
            norm = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g, _ in pairs)))
            if norm > self.global_clipnorm:
                return [(g * (self.global_clipnorm / norm), p) for g, p in pairs]
        return pairs

    def _apply(self, pairs, checked=False):
        if not checked:
            _check_unique([p for _, p in pairs], type(self).__name__, "the gradients' variables")
        lr = self.current_learning_rate
        params, grads, slots, tensors = [], [], [], []
        for g, p in self._clip(pairs):
            if g.shape != p.shape:
                raise ValueError(
                    f"{type(self).__name__}: gradient of shape {g.shape} for "
                    f"parameter {p.name or ''} of shape {p.shape}"
                )
            if not (p.data.flags.c_contiguous and p.data.flags.writeable):
                # The fused kernels update in place: give the Tensor its own C-ordered copy.
                p.data = np.array(p.data, order="C", copy=True)
            entry = self._slots.get(id(p))
            if entry is None:
                entry = self._slots[id(p)] = (
                    p,
                    {n: np.zeros(p.shape, p.data.dtype) for n in self.slot_names},
                )
            params.append(p.data)
            grads.append(g)
            slots.append(entry[1])
            tensors.append(p)
        if params:
            if self.weight_decay:
                for param in params:  # Keras 3: w - w * wd * lr, in the weight's dtype
                    dtype = param.dtype.type
                    param -= param * dtype(self.weight_decay) * dtype(lr)
            self.update_steps(params, grads, slots, lr)
            constraints.apply(tensors)  # each weight's constraint, as Keras after its update
        self.iterations += 1

    def update_steps(self, params, grads, slots, lr):
        """Updates every parameter (arrays, in place) from its gradient and state: by
        default one ``update_step`` each; the built-in optimizers override it with one
        call of their fused kernel over all of them."""
        if type(self).update_step is Optimizer.update_step:
            raise NotImplementedError(
                f"{type(self).__name__} must define update_step (or update_steps)"
            )
        for param, grad, state in zip(params, grads, slots):
            self.update_step(param, grad, state, lr)

    def update_step(self, param, grad, slots, lr):
        """Updates the array ``param`` in place from ``grad``; ``slots`` holds this
        parameter's state arrays (``slot_names``). The built-in optimizers run fused C++
        kernels (``dlcore.ops.*_update``): one pass over the parameter and its state."""
        self.update_steps([param], [grad], [slots], lr)

    # ------------------------------------------------------------ saving
    def get_config(self):
        lr = self.learning_rate
        return {
            "learning_rate": schedules.serialize(lr) if callable(lr) else float(lr),
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
            "weight_decay": self.weight_decay,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_state(self, params):
        """The step count and every slot array, in the order of ``params``."""
        arrays = []
        for p in params:
            slots = self._slots.get(id(p), (None, None))[1]
            for n in self.slot_names:
                arrays.append(slots[n] if slots is not None else np.zeros_like(p.data))
        return self.iterations, arrays

    def set_state(self, params, iterations, arrays):
        """Restores what :meth:`get_state` returned; refuses arrays that are not floating
        point or not of their parameter's shape (a scalar is not broadcast)."""
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: iterations must be an int, got {iterations!r}")
        if iterations < 0:
            raise ValueError(f"{type(self).__name__}: iterations must be >= 0, got {iterations}")
        _check_unique(params, type(self).__name__)
        expected = len(params) * len(self.slot_names)
        if len(arrays) != expected:
            raise ValueError(
                f"{type(self).__name__}: optimizer state has {len(arrays)} arrays, "
                f"expected {expected} for {len(params)} parameters"
            )
        it = iter(arrays)
        for p in params:
            slots = {}
            for n in self.slot_names:
                value = np.asarray(next(it))
                if value.dtype.kind != "f":
                    raise TypeError(
                        f"{type(self).__name__}: slot {n!r} of {p.name} has dtype "
                        f"{value.dtype}; expected a floating-point array"
                    )
                value = np.array(value, dtype=p.dtype)
                if value.shape != p.shape:
                    raise ValueError(
                        f"{type(self).__name__}: slot {n!r} of {p.name} has "
                        f"shape {value.shape}, expected {p.shape}"
                    )
                slots[n] = value
            self._slots[id(p)] = (p, slots)
        self.iterations = int(iterations)


@registry.register(aliases=("sgd",))
class SGD(Optimizer):
    """Gradient descent. With momentum: ``v = momentum * v - lr * g; w += v``; Nesterov:
    ``w += momentum * v - lr * g`` with the updated v (Keras' formulas)."""

    slot_names = ("momentum",)
    momentum = Hyperparameter("[0, 1)")

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum, self.nesterov = momentum, bool(nesterov)
        if not self.momentum:
            self.slot_names = ()

    def update_steps(self, params, grads, slots, lr):
        ops.sgd_update(
            params,
            grads,
            lr=lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            velocity=[s["momentum"] for s in slots] if self.momentum else None,
        )

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


@registry.register(aliases=("adam",))
class Adam(Optimizer):
    """Adam (Keras' form): m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)."""

    slot_names = ("m", "v")
    beta_1 = Hyperparameter("[0, 1)")
    beta_2 = Hyperparameter("[0, 1)")
    epsilon = Hyperparameter("(0, inf)")

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs
    ):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.amsgrad = bool(amsgrad)
        if amsgrad:
            self.slot_names = ("m", "v", "vhat")

    def update_steps(self, params, grads, slots, lr):
        ops.adam_update(
            params,
            grads,
            [s["m"] for s in slots],
            [s["v"] for s in slots],
            lr=lr,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            step=self.iterations + 1,
            vhat=[s["vhat"] for s in slots] if self.amsgrad else None,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


@registry.register(aliases=("adamw",))
class AdamW(Adam):
    """Adam with decoupled weight decay (Keras' AdamW: ``weight_decay`` 0.004 by
    default, applied as ``w -= w * weight_decay * lr`` before each Adam update)."""

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs
        )


@registry.register(aliases=("rmsprop",))
class RMSprop(Optimizer):
    """RMSprop (Keras' form): v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + epsilon);
    with momentum the step goes through a velocity as in SGD; ``centered`` also tracks
    the mean gradient and divides by the variance instead."""

    rho = Hyperparameter("[0, 1)")
    momentum = Hyperparameter("[0, 1)")
    epsilon = Hyperparameter("(0, inf)")

    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs
    ):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon = rho, momentum, epsilon
        self.centered = bool(centered)
        self.slot_names = ("v",) + (("mom",) if momentum else ()) + (("mg",) if centered else ())

    def update_steps(self, params, grads, slots, lr):
        ops.rmsprop_update(
            params,
            grads,
            [s["v"] for s in slots],
            lr=lr,
            rho=self.rho,
            momentum=self.momentum,
            epsilon=self.epsilon,
            mg=[s["mg"] for s in slots] if self.centered else None,
            mom=[s["mom"] for s in slots] if self.momentum else None,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


def get(identifier):
    """An optimizer from a Keras name ('adam', 'sgd', 'rmsprop'), a config, an instance or
    an Optimizer class (instantiated with its defaults)."""
    if callable(identifier) and not isinstance(identifier, (Optimizer, type)):
        raise TypeError(f"cannot interpret {identifier!r} as an optimizer")
    return registry.get(identifier, base=Optimizer)


def serialize(opt):
    return registry.serialize(opt)


def deserialize(config, custom_objects=None):
    """The object of a config or name; ``custom_objects`` (name -> class or function)
    are found too, as in Keras."""
    return registry.deserialize(config, custom_objects)
