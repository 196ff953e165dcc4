"""Sequential: a stack of layers, each feeding the next."""

from __future__ import annotations

import weakref

import numpy as np

from dlcore import layers as layers_module
from dlcore.layers.base import InputLayer, Layer, inference_step, registry
from dlcore.layers.symbolic import KerasTensor
from dlcore.registry import using_custom_objects
from dlcore.tensor import is_grad_enabled

from .model import Model
from .plans import pooled_in_blocks, training_chain, training_key

__all__ = ["Sequential"]


@registry.register()
class Sequential(Model):
    """A stack of layers, each feeding the next.

    ``Sequential([layers.Dense(64, activation='relu', input_shape=(10,)), layers.Dense(1)])``
    """

    # the inference and training plans, and the symbolic graph, hold the layers again
    _untracked = Model._untracked | {"_plan", "_train_plan", "_graph"}

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._build_shape = None
        self._input_dtype = None  # an Input's declared dtype (its ids int32, say)
        self._layers = []
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(
                f"Sequential: layers must be a list of layers, e.g. Sequential([Dense(3)]), "
                f"got {type(layers).__name__}"
            )
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, KerasTensor) and isinstance(layer.history[0], InputLayer):
            layer = layer.history[0]  # Sequential([Input(shape), ...]) as in Keras
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("Sequential: an Input must come first")
            self._build_shape = layer._batch_input_shape
            self._input_dtype = layer.dtype
            return
        if any(l is layer or l.name == layer.name for l in self._layers):
            raise ValueError(
                f"Sequential.add: layer names must be unique in a model; {layer.name!r} "
                f"is already in {self.name} (to apply one layer twice, write a "
                f"subclassed Model)"
            )
        if not self._layers and layer._batch_input_shape is not None:
            self._build_shape = layer._batch_input_shape
        self._layers.append(layer)
        self.built = False
        if self._build_shape is not None:
            self.build(self._build_shape)

    def pop(self):
        if not self._layers:
            raise ValueError(f"{self.name}: pop from a model without layers")
        layer = self._layers.pop()
        self.built = False
        return layer

    @property
    def layers(self):
        return list(self._layers)

    def build(self, input_shape=None):
        shape = tuple(input_shape if input_shape is not None else self._build_shape or ())
        if not shape:
            raise ValueError(f"{self.name}: build needs an input shape")
        self._build_shape = shape
        self.input_shape = (None, *shape[1:])
        for layer in self._layers:
            layer._ensure_built(shape)
            layer.__dict__["_sequential_owner"] = weakref.ref(self)  # for layer.output
            shape = layer.output_shape
            if isinstance(shape, list):
                raise ValueError(
                    f"{self.name}: layer {layer.name} returns several tensors "
                    f"(return_state=True); a Sequential model needs one"
                )
        self.output_shape = shape

    def _ensure_built(self, input_shape):
        if not self.built:
            self.build((None, *tuple(input_shape)[1:]))

    # ------------------------------------------------------------ symbolic graph
    # As Keras, a built Sequential model has symbolic inputs and outputs, and each of its
    # layers an output, so that Model(inputs=seq.inputs, outputs=[l.output for l in
    # seq.layers]) makes a feature extractor. The graph is made when first asked for (a
    # layer's output included), once for the present layers: each layer's call on it is
    # one node, its first unless the layer was called symbolically before.

    def _symbolic_graph(self):
        """(input KerasTensor, output KerasTensor) of the present layers."""
        if not self.built or self.input_shape is None or isinstance(self.input_shape, list):
            raise ValueError(
                f"{self.name}: a Sequential model has symbolic inputs and outputs once it is "
                f"built with a known input shape (start it with an Input)"
            )
        layers = list(self._layers)
        key = [id(layer) for layer in layers]
        graph = self.__dict__.get("_graph")
        if graph is not None and graph[0] == key:
            return graph[1], graph[2]
        if graph is not None:  # the layers changed: this model's old nodes go if they can
            for layer, node in graph[3]:
                if layer._inbound_nodes and layer._inbound_nodes[-1] is node:
                    layer._inbound_nodes.pop()
        from dlcore.layers import Input

        inputs = x = Input(batch_shape=self.input_shape, dtype=self._input_dtype or self.dtype,
                           name=f"{self.name}_input")  # fmt: skip
        made = []
        for layer in layers:
            x = layer(x)
            made.append((layer, layer._inbound_nodes[-1]))
        self._graph = (key, inputs, x, made)
        return inputs, x

    @property
    def inputs(self):
        return [self._symbolic_graph()[0]]

    @property
    def outputs(self):
        return [self._symbolic_graph()[1]]

    @property
    def input(self):
        return self._symbolic_graph()[0]

    @property
    def output(self):
        return self._symbolic_graph()[1]

    def call(self, inputs, training=False):
        x = inputs
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    # ------------------------------------------------------------ inference plan
    # predict runs the layers' kernels one after the other on arrays, each layer's step
    # made once (Layer._inference_fn): none of the per-call work of Layer.__call__
    # (casts, masks, the training flag, recording) that a graph needs. The values are
    # the layer calls' own, bit for bit. A model with a layer that has no step, or an
    # input of another shape than the built one, takes the usual path.

    def _inference_plan_for(self, x):
        expected = self.input_shape
        if type(x) is not np.ndarray or expected is None or isinstance(expected, list):
            return None
        if x.shape[1:] != tuple(expected[1:]) or x.ndim != len(expected) or not x.shape[0]:
            return None
        cls = type(self)  # a subclass's own call must run
        if cls.call is not Sequential.call or cls.__call__ is not Sequential.__call__:
            return None
        return self._inference_plan()

    def _plan_key(self, layers=None):
        """Every layer the plan runs, nested Sequential models' too, in order."""
        key = []
        for layer in self._layers if layers is None else layers:
            key.append(layer)
            # a nested model's layers may change; asked of the class, as a layer's own
            # __getattr__ would make a miss cost microseconds per layer and predict
            if getattr(type(layer), "_plan_key", None) is not None:
                key.extend(layer._plan_key())
        return key

    def _inference_plan(self):
        """The plan (a function array -> array) for the present layers, or None."""
        if not self.built:
            return None  # no plan is kept for layers that have no weights yet
        layers = list(self._layers)  # one reading: add() in another thread meanwhile
        key = self._plan_key(layers)  # cannot pair this key with a plan of other layers
        cached = self.__dict__.get("_plan")
        if cached is not None and cached[0] == key:  # the same layers (identity)
            return cached[1]
        plan = self._make_plan(layers)
        self._plan = (key, plan)
        return plan

    def _make_plan(self, layers=None):
        steps, shape = [], tuple(self.input_shape)
        layers = list(self._layers) if layers is None else layers
        for layer in layers:
            # each layer was built for the shape that reaches it here (a layer built
            # apart, or a nested model with an Input of its own, may not have been:
            # its call then says so)
            if tuple(getattr(layer, "input_shape", None) or ()) != shape:
                return None
            step = inference_step(layer)
            if step is None:
                return None
            steps.append(step)
            shape = layer.output_shape
            shape = tuple(shape) if isinstance(shape, (tuple, list)) else None
        steps = pooled_in_blocks(layers, steps)

        def run(x):
            for step in steps:
                x = step(x)
            return x

        return run if steps else None

    def _inference_fn(self):
        return self._make_plan()

    # ------------------------------------------------------------ training plan
    # fit's and train_on_batch's steps on arrays (see models/plans.py), for the present
    # layers, kept as the inference plan is.

    def _training_plan_for(self, x):
        if type(x) is not np.ndarray or not is_grad_enabled() or not self.built:
            return None
        expected = self.input_shape
        if expected is None or isinstance(expected, list) or x.ndim != len(expected):
            return None
        if x.shape[1:] != tuple(expected[1:]) or not x.shape[0]:
            return None
        cls = type(self)
        if cls.call is not Sequential.call or cls.__call__ is not Sequential.__call__:
            return None
        layers = list(self._layers)
        key = self._plan_key(layers) + training_key(layers)
        cached = self.__dict__.get("_train_plan")
        if cached is not None and cached[0] == key:
            return cached[1]
        shapes, shape = [], tuple(expected)
        for layer in layers:  # the shape that reaches each layer
            shapes.append(shape)
            out = getattr(layer, "output_shape", None)
            shape = tuple(out) if isinstance(out, (tuple, list)) else None
        plan = training_chain(layers, shapes)
        self._train_plan = (key, plan)
        return plan

    def compute_output_shape(self, input_shape):
        return self.output_shape

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [layers_module.serialize(l) for l in self._layers],
        }
        if self.built:
            config["build_input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The model of ``get_config()``'s output; ``custom_objects`` (name -> class or
        function, the names the config uses) are found while it is rebuilt."""
        if custom_objects is not None:
            with using_custom_objects(custom_objects, f"{cls.__name__}.from_config"):
                return cls.from_config(config)
        model = cls(name=config.get("name"))
        model.trainable = config.get("trainable", True)
        for spec in config["layers"]:
            layer = layers_module.deserialize(spec)
            # files from before nested models kept their build shape beside the config
            if isinstance(layer, Sequential) and spec.get("build_input_shape"):
                layer.build(spec["build_input_shape"])
            model.add(layer)
        if config.get("build_input_shape") and not model.built:
            model.build(config["build_input_shape"])
        return model
