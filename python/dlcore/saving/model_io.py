"""Saving and loading whole models and their weights in dlcore's checkpoint format
(:mod:`.checkpoint`): architecture (the layer registry's configs), weights, compile
settings and optimizer state.

Loading checks before it allocates. Every array's declared shape and dtype is compared
with the file's weight list and with the model: weights are floating point (a bool or
integer array is refused, not cast) and exactly of their weight's shape (a scalar is
never broadcast); optimizer state names distinct weights of the model. A model rebuilt
from a file's architecture may create no more weight memory than the file's weight
arrays hold (:func:`dlcore.initializers.allocation_limit`), so a few hundred bytes of
header cannot ask for gigabytes.
"""

from __future__ import annotations

from dlcore import initializers
from dlcore import layers as layers_module
from dlcore import losses as losses_module
from dlcore import optimizers as optimizers_module

from .checkpoint import CheckpointError, CheckpointReader, write_checkpoint

__all__ = ["load_model", "load_weights", "save_model", "save_weights"]

# what rebuilding a file's architecture may fail with (its configs are the file's)
_REBUILD_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
    RecursionError,
)


def _weight_key(i):
    return f"weights/{i:04d}"


def _weight_manifest(model):
    return [{"name": w.name, "shape": list(w.shape), "dtype": w.dtype.name} for w in model.weights]


def _weight_arrays(model):
    return {_weight_key(i): w.data for i, w in enumerate(model.weights)}


def save_weights(model, path):
    """Writes the model's weights (atomically) to ``path``."""
    header = {"kind": "weights", "weights": _weight_manifest(model)}
    write_checkpoint(path, header, _weight_arrays(model))


def load_weights(model, path):
    """Loads weights saved by ``save_weights`` or ``save`` into ``model``; refuses a file
    whose weights do not match the model's, naming the first mismatch."""
    with CheckpointReader(path) as ckpt:
        _assign_weights(model, ckpt, _manifest(ckpt))


# ---------------------------------------------------------------- checks


def _is_size(d):
    return isinstance(d, int) and not isinstance(d, bool) and d >= 0


def _manifest(ckpt):
    """The header's weight list, each entry checked against its array's declared shape
    and dtype (floating point); nothing is read yet."""
    saved = ckpt.header.get("weights")
    if not isinstance(saved, list):
        raise ckpt.error(f"is damaged: its header's weight list is {saved!r}")
    for i, meta in enumerate(saved):
        ok = (
            isinstance(meta, dict)
            and isinstance(meta.get("name"), str)
            and isinstance(meta.get("shape"), list)
            and all(_is_size(d) for d in meta["shape"])
        )
        if not ok:
            raise ckpt.error(f"is damaged: weight {i} of its header is {meta!r}")
        info = ckpt.arrays.get(_weight_key(i))
        if info is None:
            raise ckpt.error(f"is damaged: it lists weight {i} ({meta['name']}) but holds no array")
        if info.shape != tuple(meta["shape"]):
            raise ckpt.error(
                f"is damaged: weight {i} ({meta['name']}) is {tuple(meta['shape'])} in its "
                f"header but its array is {info.shape}"
            )
        if info.dtype.kind != "f":
            raise ckpt.error(
                f"holds weight {i} ({meta['name']}) as {info.dtype}; weights are floating "
                f"point (float32 or float64)"
            )
    extra = sorted(k for k in ckpt.arrays if k.startswith("weights/"))[len(saved) :]
    if extra:
        raise ckpt.error(f"is damaged: it holds arrays {extra[:4]} its header does not list")
    return saved


def _assign_weights(model, ckpt, saved):
    own = model.weights
    if not saved and not own:  # an unbuilt model, saved before it saw data
        return
    if not model.built or not own:
        raise CheckpointError(
            f"{model.name}: build the model before loading weights into it (it has no weights yet)"
        )
    if len(saved) != len(own):
        raise ckpt.error(
            f"does not fit model {model.name!r}: the file has {len(saved)} weights, "
            f"the model {len(own)} ({[w['name'] for w in saved]} vs {[w.name for w in own]})"
        )
    for i, (meta, w) in enumerate(zip(saved, own)):
        if tuple(meta["shape"]) != w.shape:
            raise ckpt.error(
                f"does not fit model {model.name!r}: weight {i} is {meta['name']} "
                f"{tuple(meta['shape'])} in the file but {w.name} {w.shape} in the model"
            )
    arrays = [ckpt.read(_weight_key(i)) for i in range(len(own))]  # all, or none assigned
    for w, a in zip(own, arrays):
        w.data[...] = a


# ---------------------------------------------------------------- whole models


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
    with CheckpointReader(path) as ckpt:
        if ckpt.header.get("kind") != "model":
            raise ckpt.error(
                f"holds weights only; build the model and use model.load_weights({ckpt.path!r})"
            )
        saved = _manifest(ckpt)
        model = _rebuild(ckpt, saved)
        _assign_weights(model, ckpt, saved)
        config = ckpt.header.get("compile")
        if compile and isinstance(config, dict) and config.get("loss"):
            _compile(model, ckpt, config)
    return model


def _rebuild(ckpt, saved):
    """The model of the file's architecture, held to the size of its weight arrays
    (twice that: float32 arrays may describe a float64 model) while it is built."""
    spec = ckpt.header.get("model")
    name = spec.get("class_name") if isinstance(spec, dict) else None
    held = sum(ckpt.arrays[_weight_key(i)].nbytes for i in range(len(saved)))
    try:
        with initializers.allocation_limit(2 * held, f"the architecture in {ckpt.path!r}"):
            model = layers_module.deserialize(spec)
            shape = ckpt.header.get("build_input_shape")
            if shape and not model.built:
                model.build(tuple(shape))  # JSON made the tuple a list
    except _REBUILD_ERRORS as e:
        raise ckpt.error(f"holds a {name!r} model dlcore cannot rebuild: {e}") from e
    return model


def _compile(model, ckpt, config):
    try:
        model.compile(
            optimizer=optimizers_module.get(config["optimizer"]),
            loss=_revive_losses(config["loss"]),
            loss_weights=config.get("loss_weights"),
            metrics=_known_metrics(config.get("metrics") or []),
        )
    except _REBUILD_ERRORS as e:
        raise ckpt.error(f"holds compile settings dlcore cannot restore: {e}") from e
    state = ckpt.header.get("optimizer_state")
    if state is not None:
        _restore_optimizer(model, ckpt, state)


def _restore_optimizer(model, ckpt, state):
    """The optimizer's step count and slots, after checking that they name distinct
    weights of the model and that every slot array has its weight's shape."""
    weights = model.weights
    indices = state.get("params") if isinstance(state, dict) else None
    iterations = state.get("iterations") if isinstance(state, dict) else None
    valid = (
        isinstance(indices, list)
        and all(_is_size(i) and i < len(weights) for i in indices)
        and len(set(indices)) == len(indices)
    )
    if not valid:
        raise ckpt.error(
            f"is damaged: its optimizer state names weights {indices!r}; expected distinct "
            f"indices in [0, {len(weights)})"
        )
    if not _is_size(iterations):
        raise ckpt.error(f"is damaged: its optimizer step count is {iterations!r}")
    params = [weights[i] for i in indices]
    slots = model.optimizer.slot_names
    keys = [f"optimizer/{j:04d}" for j in range(len(params) * len(slots))]
    held = sorted(k for k in ckpt.arrays if k.startswith("optimizer/"))
    if held != keys:
        raise ckpt.error(
            f"is damaged: it holds {len(held)} optimizer arrays; its "
            f"{type(model.optimizer).__name__} needs {len(keys)} for {len(params)} weights"
        )
    for j, key in enumerate(keys):
        p, info = params[j // len(slots)], ckpt.arrays[key]
        if info.shape != p.shape or info.dtype.kind != "f":
            raise ckpt.error(
                f"is damaged: optimizer array {key} is {info.shape} {info.dtype}; expected "
                f"a floating-point array of shape {p.shape} for {p.name}"
            )
    model.optimizer.set_state(params, iterations, [ckpt.read(k) for k in keys])
    model.optimizer.params = params


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
