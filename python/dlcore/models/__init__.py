"""Models: ``Sequential``, functional ``Model(inputs, outputs)`` and the subclassable
``Model``; ``load_model`` rebuilds one that ``model.save`` wrote."""

from dlcore.layers.base import Layer, registry
from dlcore.saving import load_model

from .functional import Functional
from .model import Model
from .sequential import Sequential

__all__ = [
    "Functional",
    "Model",
    "Sequential",
    "clone_model",
    "load_model",
    "model_from_json",
    "save_model",
]


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """``model.save(filepath, ...)``, as Keras' ``models.save_model``."""
    if not isinstance(model, Model):
        raise TypeError(f"save_model: expected a model, got {type(model).__name__}")
    return model.save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)


def model_from_json(json_string, custom_objects=None):
    """The model (with new weights) whose architecture ``model.to_json()`` wrote."""
    import json

    if custom_objects:
        raise NotImplementedError(
            "model_from_json(custom_objects=...) is not supported; register custom layers "
            "with dlcore.layers.registry instead"
        )
    try:
        config = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model_from_json: not a JSON model description ({e})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "model_from_json: expected the JSON of model.to_json(), an object with "
            "'class_name' and 'config'"
        )
    model = registry.deserialize(config)
    if not isinstance(model, Model):
        raise ValueError(
            f"model_from_json: the JSON describes a {type(model).__name__}, not a model"
        )
    return model


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model of the same architecture with newly initialised weights, as Keras'
    ``clone_model`` (copy the weights with ``set_weights(model.get_weights())``). With a
    Sequential model, ``clone_function(layer)`` may make each new layer (by default
    ``type(layer).from_config(layer.get_config())``)."""
    if not isinstance(model, Model):
        raise TypeError(f"clone_model: expected a model, got {type(model).__name__}")
    if input_tensors is not None:
        raise NotImplementedError("clone_model(input_tensors=...) is not supported")
    if clone_function is not None:
        if not isinstance(model, Sequential):
            raise NotImplementedError(
                "clone_model(clone_function=...) is supported for Sequential models"
            )
        clone = Sequential(name=model.name)
        if model._build_shape is not None:
            from dlcore.layers import Input

            clone.add(Input(batch_shape=model._build_shape))
        for layer in model.layers:
            new = clone_function(layer)
            if not isinstance(new, Layer):
                raise TypeError(
                    f"clone_model: clone_function returned {type(new).__name__}, not a layer"
                )
            clone.add(new)
        return clone
    return type(model).from_config(model.get_config())
