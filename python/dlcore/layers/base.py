"""The Layer base class and the InputLayer.

A layer creates its weights lazily in ``build(input_shape)`` on its first call (or when
``build`` is called directly), under a lock, so concurrent first calls build it once.
It is a plain callable on Tensors, so it works inside a model and in a hand-written
training loop alike. Layers assigned to a layer's attributes — directly or inside
lists, tuples and dicts — are tracked: their weights are the outer layer's too.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
import weakref
from collections import Counter

import numpy as np

from dlcore import activations, constraints, initializers, ops, regularizers
from dlcore.registry import Registry
from dlcore.tensor import Tensor, _accumulate_leaf, as_tensor, no_grad

from .symbolic import KerasTensor, Node, flatten, is_symbolic, pack_like

__all__ = ["InputLayer", "Layer", "get_mask", "registry", "set_mask"]

registry = Registry("layer")

_name_counts = Counter()
_name_lock = threading.Lock()
_context = threading.local()  # the training flag of the outermost layer call in progress


def to_snake_case(name):
    """Keras' default-name rule: ``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` ->
    ``max_pooling2d``, ``LeakyReLU`` -> ``leaky_re_lu``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix):
    """``prefix``, then ``prefix_1``, ``prefix_2``, ... process-wide, as Keras names."""
    with _name_lock:
        n = _name_counts[prefix]
        _name_counts[prefix] += 1
    return prefix if n == 0 else f"{prefix}_{n}"


_masks = {}  # id(Tensor) -> (weak reference to it, its boolean mask)


def set_mask(tensor, mask):
    """Attaches a mask (True: a real step, False: padding) to a Tensor, as Keras' layers
    pass masks along; None removes it. Each Tensor keeps its own: any op on it gives a
    Tensor without one, and the entry goes when the Tensor does."""
    key = id(tensor)
    if mask is None:
        _masks.pop(key, None)
        return
    _masks[key] = (weakref.ref(tensor, lambda _, key=key: _masks.pop(key, None)),
                   np.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool))  # fmt: skip


def get_mask(tensor):
    """The mask a layer attached to ``tensor`` (None when it has none)."""
    entry = _masks.get(id(tensor))
    return entry[1] if entry is not None and entry[0]() is tensor else None


def _masks_of(inputs):
    if isinstance(inputs, (list, tuple)):
        masks = [get_mask(t) for t in inputs]
        return None if all(m is None for m in masks) else masks
    return get_mask(inputs)


def activate_data(activation, y):
    """An activation function (on Tensors) applied to an array: its values, on a
    constant (nothing is recorded)."""
    if activation is activations.linear:
        return y
    if y.dtype in (np.float32, np.float64):  # what these run on such a Tensor
        if activation is activations.relu:
            return ops.relu(y)
        if activation is activations.softmax and y.ndim:  # over the last axis
            return ops.softmax_forward(y)
    out = activation(Tensor._of(y))
    return out.data if isinstance(out, Tensor) else np.asarray(out)


def inference_step(layer):
    """``layer._inference_fn()`` when the plan may stand in for the layer's call: the
    layer is built, and neither ``call`` nor ``__call__`` is overridden below the class
    that defined the function (a subclass's own call must run). Floating inputs of
    another dtype are cast as ``__call__`` casts them. None otherwise."""
    cls = type(layer)
    owner = next(c for c in cls.__mro__ if "_inference_fn" in c.__dict__)
    if owner is Layer or not layer.built or cls.call is not owner.call:
        return None
    if cls.__call__ is not owner.__call__:
        return None
    fn = layer._inference_fn()
    if fn is None or not layer.casts_inputs:
        return fn
    dtype = layer.dtype

    def step(x):
        return fn(x if x.dtype == dtype else x.astype(dtype))

    return step


def training_step(layer, activate=True):
    """``layer._training_fn(activate)`` when a training plan may stand in for
    ``layer(x, training=True)``: the layer is built, has a float32 or float64 dtype, and
    neither ``call`` nor ``__call__`` is overridden below the class that defined the
    function. None otherwise.

    A training step is ``step(x, need_dx, trained) -> (y, back)`` on arrays of the
    layer's dtype and built input shape: y is the call's output (before the activation
    when ``activate`` is False), and ``back(dy)`` adds the gradients of the weights whose
    ids are in ``trained`` (the optimizer's) to their ``grad`` as ``Tensor.backward``
    adds them, and returns dx, or None when ``need_dx`` was False. The values are the
    layer call's own, bit for bit: the steps call the kernels the graph's nodes call,
    with the same arguments."""
    cls = type(layer)
    owner = next(c for c in cls.__mro__ if "_training_fn" in c.__dict__)
    if owner is Layer or not layer.built or cls.call is not owner.call:
        return None
    # a subclass outside dlcore may change what the step reads (a kernel made by a
    # property, a build of other weights) without overriding call
    below = cls.__mro__[: cls.__mro__.index(owner)]
    if any(not c.__module__.startswith("dlcore.") for c in below):
        return None
    if cls.__call__ is not owner.__call__ or layer.dtype not in (np.float32, np.float64):
        return None
    return layer._training_fn(activate)


def kernel_bias_back(kernel, bias, trained, need_dx, grads):
    """The ``back`` of a training step whose layer has a kernel and a bias (or None):
    ``grads(g, need_dkernel, need_dbias) -> (dx, dkernel, dbias)`` runs the kernels, the
    weights' parts are added to their ``grad`` as Tensor.backward adds a fresh array,
    and dx is returned. Nothing runs when nothing is needed."""

    def back(g):
        need_dk = id(kernel) in trained
        need_db = bias is not None and id(bias) in trained
        if not (need_dx or need_dk or need_db):
            return None
        dx, dk, db = grads(g, need_dk, need_db)
        if need_dk:
            _accumulate_leaf(kernel, dk, True)
        if need_db:
            _accumulate_leaf(bias, db, True)
        return dx

    return back


def _attach_masks(outputs, masks):
    if isinstance(outputs, (list, tuple)):
        for t, m in zip(
            outputs, masks if isinstance(masks, (list, tuple)) else [masks] * len(outputs)
        ):
            if isinstance(t, Tensor):
                set_mask(t, m)
    elif isinstance(outputs, Tensor):
        set_mask(outputs, masks)


def clear_names():
    """Starts the default names over (``dense``, then ``dense_1``, ...)."""
    with _name_lock:
        _name_counts.clear()


def _layers_in(value, depth=0):
    """The layers inside an attribute value: itself, or those in a list/tuple/dict."""
    if isinstance(value, Layer):
        yield value
    elif depth < 4 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _layers_in(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _layers_in(item, depth + 1)


def losses_added():
    """Whether a layer added a loss (``add_loss``, an activity regularizer) in the
    outermost call last made."""
    call = getattr(_context, "call", None)
    return call is not None and getattr(_context, "losses_call", None) == call


def trains(layer):
    """Whether ``layer`` trains in the step in progress: as the model running a training
    step was compiled (its layers' trainable flags then; see Trainer.compile), else as
    the layer is now. BatchNormalization runs in inference mode where this is False."""
    flags = getattr(_context, "trainable_flags", None)
    return layer.trainable if flags is None else flags.get(id(layer), layer.trainable)


def _own_layer(layer):
    """Whether the layer's class is one of dlcore's (which say their output shapes)."""
    return type(layer).__module__.startswith("dlcore.")


def _batchless(shape):
    """An input shape with its batch dimension made None (lists of shapes too)."""
    if isinstance(shape, list) and not all(d is None or isinstance(d, int) for d in shape):
        return [_batchless(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _batchless(s) for k, s in shape.items()}
    shape = tuple(shape)
    return (None, *shape[1:]) if shape else shape


def _wrap_build(build):
    """Makes a subclass's ``build`` idempotent and thread-safe, and records the shapes,
    however it is reached: a first call, a model's build or the user."""

    @functools.wraps(build)
    def wrapper(self, input_shape=None, *args, **kwargs):
        with self._build_lock:
            if self.built:
                return None
            out = build(self, input_shape, *args, **kwargs)
            self._finish_build(input_shape)
            return out

    wrapper._dlcore_wrapped = True
    return wrapper


class Layer:
    """Base layer.

    Args:
        name: unique by default, from the class name as Keras makes it (``dense``,
            ``dense_1``, ``conv2d``, ``max_pooling2d``, ...).
        trainable: whether the optimizer updates its weights.
        dtype: of the weights and the computation, float32 by default.
        input_shape: the shape of one sample, without the batch size; lets a
            Sequential model build itself (and ``summary()``) before seeing data.

    Subclasses create weights in ``build(input_shape)`` with :meth:`add_weight` and
    compute in ``call(inputs)`` (with ``training`` and ``mask`` arguments if they use
    them).
    """

    _untracked = frozenset()  # attribute names whose layers are not this layer's own
    casts_inputs = True  # a Model turns it off: its layers cast for themselves
    _call_args = frozenset({"training"})
    supports_masking = False  # passes an incoming mask on to its output (compute_mask)
    _uses_masks = False  # its call takes a mask, or it computes its output's own

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_dlcore_wrapped", False):
            cls.build = _wrap_build(build)
        call = cls.__dict__.get("call")
        if call is not None:
            params = inspect.signature(call).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                cls._call_args = frozenset({"training", "mask"})
            else:
                cls._call_args = frozenset(params) & {"training", "mask"}
        cls._uses_masks = "mask" in cls._call_args or cls.compute_mask is not Layer.compute_mask

    def __init__(
        self,
        name=None,
        trainable=True,
        dtype=None,
        input_shape=None,
        input_dim=None,
        batch_size=None,
        activity_regularizer=None,
        **kwargs,
    ):
        constraint_options = {k: kwargs.pop(k) for k in list(kwargs) if k.endswith("_constraint")}
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword arguments {sorted(kwargs)}")
        self._constraints = {}  # Keras' <weight>_constraint options that are set
        for option, value in constraint_options.items():
            constraint = constraints.get(value)
            setattr(self, option, constraint)
            if constraint is not None:
                self._constraints[option] = constraint
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._activity = (0, [])  # (the outermost call it came from, penalties of outputs)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        try:
            self.dtype = np.dtype(dtype or "float32")
        except TypeError as e:
            raise TypeError(f"{self.name}: dtype {dtype!r} is not a NumPy dtype") from e
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"{self.name}: dtype must be float32 or float64 (the kernels' types), "
                f"got {self.dtype}"
            )
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if input_shape is not None:
            input_shape = _sample_shape(input_shape, self.name)
        self._batch_input_shape = None if input_shape is None else (batch_size, *input_shape)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []
        self._non_trainable = set()
        self._penalties = []  # (regularizer, weight)
        self._build_lock = threading.RLock()
        self._inbound_nodes = []  # one Node per call on symbolic tensors

    def __getattr__(self, name):
        # Reached only for a missing attribute: say so plainly when the reason is a
        # subclass whose __init__ never ran Layer's.
        if not name.startswith("__") and "_build_lock" not in self.__dict__:
            raise TypeError(
                f"{type(self).__name__} has no attribute {name!r}: its __init__ must call "
                f"super().__init__() before using the layer, as in Keras"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def trainable(self):
        """Whether the optimizer updates the layer's weights. Setting it sets every
        layer inside this one (a frozen model's BatchNormalization then runs in
        inference mode), as in Keras."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in self._tracked_layers():
            layer.trainable = value

    # ------------------------------------------------------------ sub-layers
    def _tracked_layers(self):
        """The layers held in this layer's attributes, in assignment order."""
        found, seen = [], {id(self)}
        for attr, value in vars(self).items():
            if attr in self._untracked:
                continue
            for layer in _layers_in(value):
                if id(layer) not in seen:
                    seen.add(id(layer))
                    found.append(layer)
        return found

    # ------------------------------------------------------------ weights
    def add_weight(
        self,
        name=None,
        shape=None,
        initializer=None,
        regularizer=None,
        trainable=True,
        dtype=None,
        constraint=None,
        **kwargs,
    ):
        """Creates, tracks and returns a weight Tensor; its name is ``<layer>/<name>``.

        Keras 3's order ``add_weight(shape, initializer, ...)`` works too (a first
        argument that is not a string is the shape), and ``name`` may be left out:
        ``variable``, ``variable_1``, ... The initializer defaults to glorot_uniform.
        """
        if name is not None and not isinstance(name, str):  # Keras 3: shape first
            if initializer is not None:
                raise TypeError(
                    f"{self.name}: add_weight got a shape {name!r} first and both shape= "
                    f"{shape!r} and initializer= {initializer!r}; give them by keyword"
                )
            name, shape, initializer = None, name, shape
        unknown = sorted(set(kwargs) - {"autocast", "aggregation", "overwrite_with_gradient"})
        if unknown:
            raise TypeError(f"{self.name}: add_weight got unexpected keyword arguments {unknown}")
        if constraint is not None:
            constraint = constraints.get(constraint)
        if shape is None:
            raise TypeError(f"{self.name}: add_weight needs a shape, e.g. shape=(3, 4)")
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if name is None:
            taken = {w.name.rsplit("/", 1)[-1] for w in self._weights}
            name, k = "variable", 0
            while name in taken:
                k += 1
                name = f"variable_{k}"
        wanted = self.dtype if dtype is None else np.dtype(dtype)
        if wanted not in (np.float32, np.float64):
            raise TypeError(
                f"{self.name}: add_weight dtype must be float32 or float64, got {wanted}"
            )
        init = initializers.get("glorot_uniform" if initializer is None else initializer)
        w = Tensor(
            # reshaped: ascontiguousarray makes a scalar's shape (1,)
            np.ascontiguousarray(init(shape, wanted), dtype=wanted).reshape(shape),
            requires_grad=bool(trainable),
        )
        w.name = f"{self.name}/{name}"
        self._weights.append(w)
        if not trainable:
            self._non_trainable.add(id(w))
        reg = regularizers.get(regularizer)
        if reg is not None:
            self._penalties.append((reg, w))
        if constraint is None:  # the layer's Keras option for this weight, if set
            option = name[: -len("_kernel")] if name.endswith("_kernel") else name
            constraint = self._constraints.get(f"{option}_constraint")
        if constraint is not None:
            constraints.attach(w, constraint)
        return w

    def _own_weights(self, trainable):
        return [w for w in self._weights if (id(w) not in self._non_trainable) == trainable]

    @staticmethod
    def _unique(tensors):
        seen, out = set(), []
        for t in tensors:
            if id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    @property
    def weights(self):
        """Every weight: this layer's trainable ones, its non-trainable ones, then those
        of its sub-layers (Keras' order)."""
        own = self._own_weights(True) + self._own_weights(False)
        return self._unique(own + [w for l in self._tracked_layers() for w in l.weights])

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        sub = [w for l in self._tracked_layers() for w in l.trainable_weights]
        return self._unique(self._own_weights(True) + sub)

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    @property
    def losses(self):
        """The regularization penalties of this layer's weights and of its outputs in
        the last outermost call (``activity_regularizer``), and its sub-layers', as
        scalar Tensors."""
        return self._weight_penalties() + self._activity_losses()

    def _weight_penalties(self):
        own = [reg(w) for reg, w in self._penalties]
        return own + [p for l in self._tracked_layers() for p in l._weight_penalties()]

    def _activity_losses(self):
        """The activity penalties recorded in the last outermost call, this layer's and
        its sub-layers'."""
        call, own = self._activity
        own = list(own) if call == getattr(_context, "call", 0) else []
        return own + [p for l in self._tracked_layers() for p in l._activity_losses()]

    def add_loss(self, loss):
        """Adds a scalar loss Tensor (made from this call's inputs, say) to the training
        loss, as Keras' ``Layer.add_loss`` inside ``call``: it counts for the outermost
        call in progress, in ``losses`` and in ``fit`` / ``evaluate``."""
        call = getattr(_context, "call", 0)
        penalties = self._activity[1] if self._activity[0] == call else []
        penalties.append(as_tensor(loss))
        self._activity = (call, penalties)
        _context.losses_call = call

    def _record_activity(self, outputs):
        """Keras' activity regularization: the penalty of each output, divided by its
        batch size, added as a loss of the outermost call in progress."""
        for out in flatten(outputs):
            if isinstance(out, Tensor):
                penalty = self.activity_regularizer(out)
                self.add_loss(penalty / out.shape[0] if out.ndim and out.shape[0] else penalty)

    def get_weights(self):
        return [w.data.copy() for w in self.weights]

    def set_weights(self, weights):
        weights, own = list(weights), self.weights
        if len(weights) != len(own):
            raise ValueError(
                f"{self.name}: set_weights got {len(weights)} arrays, but it has "
                f"{len(own)} weights ({[w.name for w in own]})"
            )
        for w, value in zip(own, weights):
            value = np.asarray(value)
            if value.shape != w.shape:
                raise ValueError(
                    f"{self.name}: weight {w.name} has shape {w.shape}, "
                    f"got an array of shape {value.shape}"
                )
        for w, value in zip(own, weights):
            w.data[...] = value

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    # ------------------------------------------------------------ building
    def build(self, input_shape):
        """Creates the weights for inputs of ``input_shape`` (batch dimension included)."""

    def _record_shapes(self, input_shape):
        if input_shape is None:
            return
        self.input_shape = _batchless(input_shape)
        if type(self).compute_output_shape is Layer.compute_output_shape and not _own_layer(self):
            # a user's layer that does not say its output shape: run it, as Keras does
            self.output_shape = self._traced_output_shape(self.input_shape)
        else:
            self.output_shape = self.compute_output_shape(self.input_shape)

    def _traced_output_shape(self, input_shape):
        """The output shape of ``call`` on zeros of ``input_shape`` (a user's layer that
        does not define compute_output_shape); the input shape when the call cannot run
        on zeros (a layer that takes integer indices, say), as before tracing."""
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        if not all(isinstance(s, tuple) for s in shapes):
            return input_shape
        leaves = [KerasTensor(s, self.dtype) for s in shapes]
        inputs = leaves if isinstance(input_shape, list) else leaves[0]
        try:
            specs = self._traced_specs(inputs, (), {})
        except Exception:
            return input_shape
        out = [tuple(spec.shape) for spec in flatten(specs)]
        return out if isinstance(specs, (list, tuple)) else out[0]

    def _ensure_built(self, input_shape):
        if not self.built:
            self.build(input_shape)
            if not self.built:  # a build defined on Layer itself is not wrapped
                with self._build_lock:
                    self._finish_build(input_shape)

    def _finish_build(self, input_shape):
        """Marks the layer built and records its shapes; built first, since a traced
        output shape calls the layer, and not built if recording fails."""
        self.built = True
        try:
            self._record_shapes(input_shape)
        except BaseException:
            self.built = False
            raise

    def compute_output_shape(self, input_shape):
        return input_shape

    # ------------------------------------------------------------ calling
    def call(self, inputs, training=False):
        raise NotImplementedError(f"{type(self).__name__} must define call(inputs)")

    def _cast(self, x):
        """Keras casts a layer's floating inputs to its dtype; integers stay as they are
        only for layers that take indices (they set ``casts_inputs = False``)."""
        if type(x) is not Tensor:
            x = as_tensor(x)
        dtype = x.data.dtype
        if (
            self.casts_inputs
            and dtype is not self.dtype
            and dtype != self.dtype
            and (dtype.kind != "f" or not x.requires_grad)
        ):
            x = Tensor(x.data.astype(self.dtype))
        return x

    def __call__(self, inputs, *args, training=None, mask=None, **kwargs):
        kind = type(inputs)
        if kind is KerasTensor or (
            (args or kwargs or kind in (list, tuple, dict)) and is_symbolic(inputs, args, kwargs)
        ):
            if mask is not None:
                kwargs["mask"] = mask
            return self._symbolic_call(inputs, args, kwargs)
        masking = self.supports_masking or self._uses_masks
        if masking and mask is None and _masks:
            mask = _masks_of(inputs)
        if kind is list or kind is tuple:
            x = [self._cast(t) for t in inputs]
            shape = [t.shape for t in x]
        elif kind is dict:
            x = {k: self._cast(t) for k, t in inputs.items()}
            shape = {k: t.shape for k, t in x.items()}
        else:
            x = self._cast(inputs)
            shape = x.data.shape
        if not self.built:
            self._ensure_built(shape)
        outer = getattr(_context, "training", None)
        if outer is None:  # an outermost call: the activity penalties start afresh
            _context.call = getattr(_context, "call", 0) + 1
        if training is None:
            training = bool(outer)  # inherited from the enclosing layer's call, as Keras
        call_args = self._call_args
        if "training" in call_args:
            kwargs["training"] = training
        if mask is not None and "mask" in call_args:
            kwargs["mask"] = mask
        _context.training = training
        try:
            out = self.call(x, *args, **kwargs)
        finally:
            _context.training = outer
        if self.activity_regularizer is not None:
            self._record_activity(out)
        if masking and (mask is not None or self._uses_masks):
            _attach_masks(out, self.compute_mask(x, mask))
        return out

    def compute_mask(self, inputs, mask=None):
        """The mask of this layer's output: the input's when the layer supports masking
        (a layer that changes the time axis overrides this), else none."""
        return mask if self.supports_masking else None

    # ------------------------------------------------------------ inference plans
    def _inference_fn(self):
        """A function array -> array with the values of ``call(x, training=False)`` on
        inputs of the layer's dtype and of the shape it was built for, running the
        kernels without a graph, casts or masks: a step of a model's inference plan
        (see :func:`inference_step`). None when the layer has none in its present state;
        the model then calls its layers one by one."""
        return None

    def _training_fn(self, activate=True):
        """A step of a model's training plan (see :func:`training_step`): the values and
        gradients of ``call(x, training=True)`` from arrays, without a graph. None when
        the layer has none (the model then calls its layers one by one)."""
        return None

    # ------------------------------------------------------------ functional API
    def _symbolic_call(self, inputs, args, kwargs):
        """Builds the layer for the symbolic inputs' shapes and records the call as a
        Node; returns KerasTensors of the output shapes."""
        shapes = pack_like(inputs, [t.shape for t in flatten(inputs)])
        if isinstance(shapes, tuple) and shapes and not isinstance(shapes[0], (int, type(None))):
            shapes = list(shapes)
        self._ensure_built(shapes)
        specs = self._output_specs(inputs, args, kwargs, shapes)
        node_index = len(self._inbound_nodes)
        leaves = [
            KerasTensor(spec.shape, spec.dtype, name=self.name if i == 0 else f"{self.name}_{i}",
                        history=(self, node_index, i))
            for i, spec in enumerate(flatten(specs))
        ]  # fmt: skip
        outputs = pack_like(specs, leaves)
        self._inbound_nodes.append(Node(self, (inputs, *args), kwargs, outputs))
        return outputs

    def _output_specs(self, inputs, args, kwargs, shapes):
        """The shape and dtype of each output (as unconnected KerasTensors), in the
        outputs' structure: from
        compute_output_shape where the layer defines it, else from a run on zeros."""
        if type(self).compute_output_shape is not Layer.compute_output_shape and not is_symbolic(
            args, kwargs
        ):
            out = self.compute_output_shape(shapes)
            if isinstance(out, list):
                return [KerasTensor(o, self.dtype) for o in out]
            return KerasTensor(out, self.dtype)
        return self._traced_specs(inputs, args, kwargs)

    def _traced_specs(self, inputs, args, kwargs):
        """Runs the layer on zeros (unknown sizes 1, then 2, to tell which output sizes
        follow them); the batch dimension of every output is None."""

        def run(size):
            def zeros(leaf):
                if not isinstance(leaf, KerasTensor):
                    return leaf
                return Tensor(np.zeros([size if d is None else d for d in leaf.shape], leaf.dtype))

            real = pack_like((inputs, args, kwargs), map(zeros, flatten((inputs, args, kwargs))))
            with no_grad():
                out = self(real[0], *real[1], training=False, **real[2])
            return out, [np.shape(o) for o in flatten(out)]

        out, first = run(1)
        unknown = any(d is None for t in flatten((inputs, args, kwargs))
                      if isinstance(t, KerasTensor) for d in t.shape[1:])  # fmt: skip
        second = run(2)[1] if unknown else first
        specs = [
            KerasTensor((None, *(None if a != b else a for a, b in zip(s1[1:], s2[1:]))),
                        np.asarray(o).dtype)
            for o, s1, s2 in zip(flatten(out), first, second)
        ]  # fmt: skip
        return pack_like(out, specs)

    def _first_node(self, what):
        if not self._inbound_nodes:  # a built Sequential model's layer: its graph
            owner = self.__dict__.get("_sequential_owner")
            model = owner() if owner is not None else None
            if model is not None and self in model._layers:
                model._symbolic_graph()
        if not self._inbound_nodes:
            raise ValueError(
                f"{self.name}: {what} is defined for a layer called on symbolic inputs (a "
                f"functional model's, or a built Sequential model's); it never was"
            )
        return self._inbound_nodes[0]

    @property
    def output(self):
        """The symbolic output of this layer's first call on symbolic inputs (as Keras)."""
        return self._first_node("output").outputs

    @property
    def input(self):
        """The symbolic input of this layer's first call on symbolic inputs."""
        return self._first_node("input").args[0]

    # ------------------------------------------------------------ config
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self._batch_input_shape is not None:
            config["input_shape"] = list(self._batch_input_shape[1:])
        if self.activity_regularizer is not None:  # as Keras: only when there is one
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        for option, constraint in self._constraints.items():
            config[option] = constraints.serialize(constraint)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _sample_shape(shape, owner):
    """A per-sample shape (no batch dimension) as a tuple of positive ints or None."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(
            f"{owner}: input_shape must be a tuple of dimensions such as (28, 28, 1), got {shape!r}"
        ) from None
    for d in dims:
        ok = d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0)
        if not ok:
            raise ValueError(
                f"{owner}: input_shape must hold positive ints (or None), got {shape!r}"
            )
    return tuple(None if d is None else int(d) for d in dims)


@registry.register()
class InputLayer(Layer):
    """The entry of a model: declares the shape and dtype of one sample. Its
    ``output`` is the symbolic tensor :func:`Input` returns."""

    def __init__(
        self,
        shape=None,
        batch_size=None,
        dtype=None,
        name=None,
        batch_shape=None,
        input_shape=None,
        **kwargs,
    ):
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("InputLayer: give shape or batch_shape, not both")
            batch_shape = tuple(batch_shape)
            if not batch_shape:
                raise ValueError("InputLayer: batch_shape needs a batch dimension")
            batch_size, shape = batch_shape[0], batch_shape[1:]
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("InputLayer: give the shape of one sample, e.g. shape=(784,)")
        super().__init__(name=name, input_shape=shape, batch_size=batch_size, **kwargs)
        try:
            self.dtype = np.dtype(dtype or "float32")
        except TypeError as e:
            raise TypeError(f"{self.name}: dtype {dtype!r} is not a NumPy dtype") from e
        if self.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: inputs must be numbers, got dtype {self.dtype}")
        self.built = True
        self.input_shape = self.output_shape = (None, *self._batch_input_shape[1:])
        spec = KerasTensor(
            self._batch_input_shape, self.dtype, name=self.name, history=(self, 0, 0)
        )
        self._inbound_nodes.append(Node(self, (), {}, spec))

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {
            "batch_shape": list(self._batch_input_shape),
            "dtype": self.dtype.name,
            "name": self.name,
        }


def weight_options(layer, name, initializer, regularizer):
    """Sets a weight's options under Keras' names: ``<name>_initializer`` and
    ``<name>_regularizer`` (name "kernel", "bias", "depthwise", ...)."""
    setattr(layer, f"{name}_initializer", initializers.get(initializer))
    setattr(layer, f"{name}_regularizer", regularizers.get(regularizer))


def weight_config(layer, *names):
    """The config entries of the weights' options that :func:`weight_options` set."""
    config = {}
    for name in names:
        config[f"{name}_initializer"] = initializers.serialize(
            getattr(layer, f"{name}_initializer")
        )
        config[f"{name}_regularizer"] = regularizers.serialize(
            getattr(layer, f"{name}_regularizer")
        )
    return config


def kernel_bias_options(
    layer, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer,
):  # fmt: skip
    """Sets the options every layer with a kernel and a bias takes."""
    layer.activation = activations.get(activation)
    layer.use_bias = bool(use_bias)
    weight_options(layer, "kernel", kernel_initializer, kernel_regularizer)
    weight_options(layer, "bias", bias_initializer, bias_regularizer)
    layer.kernel = layer.bias = None


def kernel_bias_config(layer):
    return {
        "activation": activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
        **weight_config(layer, "kernel", "bias"),
    }


def positive_int(value, name, owner):
    """``value`` as an int >= 1, or a ValueError naming the argument."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)
