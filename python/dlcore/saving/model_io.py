"""Saving and loading whole models and their weights in dlcore's checkpoint format
(:mod:`.checkpoint`): architecture (the layer registry's configs), weights, compile
settings and optimizer state."""

from __future__ import annotations

from dlcore import layers as layers_module
from dlcore import losses as losses_module
from dlcore import optimizers as optimizers_module

from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint

__all__ = ["load_model", "load_weights", "save_model", "save_weights"]


def _weight_manifest(model):
    return [{"name": w.name, "shape": list(w.shape), "dtype": w.dtype.name} for w in model.weights]


def _weight_arrays(model):
    return {f"weights/{i:04d}": w.data for i, w in enumerate(model.weights)}


def save_weights(model, path):
    """Writes the model's weights (atomically) to ``path``."""
    header = {"kind": "weights", "weights": _weight_manifest(model)}
    write_checkpoint(path, header, _weight_arrays(model))


def load_weights(model, path):
    """Loads weights saved by ``save_weights`` or ``save`` into ``model``; refuses a file
    whose weights do not match the model's, naming the first mismatch."""
    header, arrays = read_checkpoint(path)
    _assign_weights(model, path, header, arrays)


def _assign_weights(model, path, header, arrays):
    saved = header.get("weights", [])
    own = model.weights
    if not model.built or not own:
        raise CheckpointError(
            f"{model.name}: build the model before loading weights into it (it has no weights yet)"
        )
    if len(saved) != len(own):
        raise CheckpointError(
            f"{path!r} does not fit model {model.name!r}: the file has {len(saved)} weights, "
            f"the model {len(own)} ({[w['name'] for w in saved]} vs {[w.name for w in own]})"
        )
    for i, (meta, w) in enumerate(zip(saved, own)):
        if tuple(meta["shape"]) != w.shape:
            raise CheckpointError(
                f"{path!r} does not fit model {model.name!r}: weight {i} is {meta['name']} "
                f"{tuple(meta['shape'])} in the file but {w.name} {w.shape} in the model"
            )
    for i, w in enumerate(own):
        w.data[...] = arrays[f"weights/{i:04d}"]


def save_model(model, path):
    """Writes architecture, weights, compile settings and optimizer state to ``path``,
    atomically; :func:`load_model` restores the model so that training resumes exactly
    where it stopped."""
    header = {
        "kind": "model",
        "model": {"class_name": type(model).__name__, "config": model.get_config()},
        "build_input_shape": list(model.input_shape) if model.input_shape else None,
        "weights": _weight_manifest(model),
        "compile": model.get_compile_config(),
    }
    arrays = _weight_arrays(model)
    if model.optimizer is not None:
        weights = model.weights
        index = {id(w): i for i, w in enumerate(weights)}
        params = model.compiled_trainable_weights()
        iterations, state = model.optimizer.get_state(params)
        header["optimizer_state"] = {
            "iterations": iterations,
            "params": [index[id(p)] for p in params],
        }
        arrays.update({f"optimizer/{i:04d}": a for i, a in enumerate(state)})
    write_checkpoint(path, header, arrays)


def load_model(path, compile=True):
    """Rebuilds a model saved with ``model.save``: architecture, weights and, with
    ``compile``, its optimizer (with its state), loss and metrics."""
    header, arrays = read_checkpoint(path)
    if header.get("kind") != "model":
        raise CheckpointError(
            f"{path!r} holds weights only; build the model and use model.load_weights({path!r})"
        )
    spec = header["model"]
    try:
        model = layers_module.deserialize(spec)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(
            f"{path!r}: cannot rebuild its {spec.get('class_name')!r} model: {e}"
        ) from e
    if header.get("build_input_shape"):
        model.build(header["build_input_shape"])
    _assign_weights(model, path, header, arrays)
    config = header.get("compile")
    if compile and config and config.get("loss"):
        model.compile(
            optimizer=optimizers_module.get(config["optimizer"]),
            loss=_revive_losses(config["loss"]),
            loss_weights=config.get("loss_weights"),
            metrics=_known_metrics(config.get("metrics") or []),
        )
        state = header.get("optimizer_state")
        if state is not None:
            weights = model.weights
            params = [weights[i] for i in state["params"]]
            model.optimizer.params = params
            n = len([k for k in arrays if k.startswith("optimizer/")])
            model.optimizer.set_state(
                params, state["iterations"], [arrays[f"optimizer/{i:04d}"] for i in range(n)]
            )
    return model


def _revive_losses(config):
    if isinstance(config, dict) and "class_name" not in config:
        return {k: _revive_losses(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_revive_losses(v) for v in config]
    return losses_module.get(config)


def _known_metrics(config):
    """The metrics saved by name (others, given as objects, are not restored)."""
    if isinstance(config, dict):
        return {k: _known_metrics(v) for k, v in config.items()}
    if isinstance(config, list):
        return [m for m in (_known_metrics(v) for v in config) if m is not None]
    return config
