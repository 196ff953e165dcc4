"""Models: ``Sequential``, functional ``Model(inputs, outputs)`` and the subclassable
``Model``; ``load_model`` rebuilds one that ``model.save`` wrote."""

from dlcore.layers.base import Layer, registry
from dlcore.registry import recording_custom_objects, using_custom_objects
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
    "model_from_config",
    "model_from_json",
    "save_model",
]


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """``model.save(filepath, ...)``, as Keras' ``models.save_model``."""
    if not isinstance(model, Model):
        raise TypeError(f"save_model: expected a model, got {type(model).__name__}")
    return model.save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)


def model_from_config(config, custom_objects=None):
    """The model (or layer) a ``{"class_name", "config"}`` dict describes, with new
    weights, as Keras' ``models.model_from_config``; ``custom_objects`` (name -> class or
    function, the names the config uses) are found while it is rebuilt."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise TypeError(
            f"model_from_config: expected a dict with 'class_name' and 'config' (such as "
            f"layers.serialize(model) returns), got {type(config).__name__} {config!r:.100}"
        )
    with using_custom_objects(custom_objects, "model_from_config"):
        return registry.deserialize(config)


def model_from_json(json_string, custom_objects=None):
    """The model (with new weights) whose architecture ``model.to_json()`` wrote;
    ``custom_objects`` (name -> class or function, the names the JSON uses) are found
    while it is rebuilt, as in Keras."""
    with using_custom_objects(custom_objects, "model_from_json"):
        return _model_from_json(json_string)


def _model_from_json(json_string):
    import json

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
    # the custom objects the config names are the model's own: in scope to rebuild it
    with recording_custom_objects() as found:
        config = model.get_config()
    with using_custom_objects(found, "clone_model"):
        return type(model).from_config(config)
