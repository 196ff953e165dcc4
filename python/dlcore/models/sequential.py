"""Sequential: a stack of layers, each feeding the next."""

from __future__ import annotations

from dlcore import layers as layers_module
from dlcore.layers.base import InputLayer, Layer, registry
from dlcore.layers.symbolic import KerasTensor

from .model import Model

__all__ = ["Sequential"]


@registry.register()
class Sequential(Model):
    """A stack of layers, each feeding the next.

    ``Sequential([layers.Dense(64, activation='relu', input_shape=(10,)), layers.Dense(1)])``
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._build_shape = None
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

    def call(self, inputs, training=False):
        x = inputs
        for layer in self._layers:
            x = layer(x, training=training)
        return x

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
    def from_config(cls, config):
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
