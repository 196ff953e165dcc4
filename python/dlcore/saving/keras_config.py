"""The ``config.json`` of a Keras 3 archive, to and from dlcore's configs.

Keras writes every object as ``{"module", "class_name", "config", "registered_name"}``
(layers also with ``build_config``, models with ``compile_config``); dlcore's registries
take ``{"class_name", "config"}``. dlcore's layer configs use Keras' argument names, so
the translation is generic:

- a Keras object becomes the dlcore object of the same class name, looked up in the
  registry its ``module`` names (``keras.layers`` -> layers, ``keras.initializers`` ->
  initializers, ...); anything outside Keras' own modules, a ``Lambda`` layer or a
  serialized Python function is refused, never executed (Keras' ``safe_mode``), unless
  it is one of the custom objects the loader was given (``load_model(...,
  custom_objects=...)``, a custom-object scope): the user's own classes and functions,
  found by the name the file gives them (its ``registered_name``), as in Keras; the
  user's classes (not registered with dlcore) are written as Keras writes them;
- an option dlcore's class does not take is dropped when it holds Keras' default
  (:data:`KERAS_DEFAULTS`: ``kernel_constraint=None``, ``groups=1``, ...) and is an
  error naming the layer, the option and its value otherwise;
- where a class's config does differ from Keras', one entry in :data:`TRANSLATIONS`
  maps it both ways.
"""

from __future__ import annotations

import inspect

from dlcore import constraints, initializers, losses, metrics, optimizers, regularizers
from dlcore import layers as layers_module
from dlcore.layers.base import InputLayer
from dlcore.layers.symbolic import flatten
from dlcore.optimizers import schedules
from dlcore.registry import find_custom_object

__all__ = [
    "KERAS_DEFAULTS",
    "TRANSLATIONS",
    "KerasFormatError",
    "compile_from_keras",
    "compile_to_keras",
    "model_from_keras",
    "model_to_keras",
]


class KerasFormatError(ValueError):
    """A Keras file dlcore cannot read: damaged, of a newer format, or describing a
    layer or option dlcore does not have."""


ANY = object()  # an option whose value does not matter to dlcore (a seed of a dropout it lacks)

# Keras options dlcore's classes do not take, with the value(s) that mean "off" in Keras.
KERAS_DEFAULTS = {
    "activity_regularizer": (None,),
    "kernel_constraint": (None,),
    "bias_constraint": (None,),
    "recurrent_constraint": (None,),
    "quantization_config": (None,),
    "lora_rank": (None,),
    "lora_alpha": (None,),
    "groups": (1,),
    "data_format": ("channels_last", None),
    "go_backwards": (False,),
    "stateful": (False,),
    "unroll": (False,),
    "zero_output_for_mask": (False,),
    "sparse": (False,),
    "ragged": (False,),
    "optional": (False,),
    "autocast": (True,),
    "seed": ANY,
    "name": ANY,  # a learning-rate schedule's, say: names never change what is computed
    "input_axes": (None,),
    "output_axes": (None,),
    "beta_constraint": (None,),
    "gamma_constraint": (None,),
    "embeddings_constraint": (None,),
    "alpha_constraint": (None,),
    "depthwise_constraint": (None,),
    "pointwise_constraint": (None,),
    "renorm": (False,),
    "renorm_clipping": (None,),
    "renorm_momentum": ANY,  # used with renorm only
    "synchronized": (False,),
    "rms_scaling": (False,),
    # optimizers
    "weight_decay": (None, 0, 0.0),
    "use_ema": (False,),
    "ema_momentum": ANY,
    "ema_overwrite_frequency": (None,),
    "loss_scale_factor": (None,),
    "gradient_accumulation_steps": (None,),
    # losses and metrics
    "dtype": (None, "float32"),
    "label_smoothing": (0, 0.0),
    "axis": (-1,),
    "thresholds": (None,),
    "top_k": (None,),
    "class_id": (None,),
}

# class name -> (dlcore config -> Keras config, Keras config -> dlcore config), for the
# few classes whose options differ from Keras' beyond KERAS_DEFAULTS.
TRANSLATIONS = {}

_REDUCTIONS = {"mean": "sum_over_batch_size", "sum": "sum", "none": None}


def _loss_to_keras(config):
    config = dict(config)
    if "reduction" in config:
        config["reduction"] = _REDUCTIONS.get(config["reduction"], config["reduction"])
    return config


def _loss_from_keras(config):
    config = dict(config)
    if "reduction" in config:
        back = {v: k for k, v in _REDUCTIONS.items()}
        config["reduction"] = back.get(config["reduction"], config["reduction"])
    return config


for _name in losses.registry.names():
    TRANSLATIONS[_name] = (_loss_to_keras, _loss_from_keras)


def _wrapped_layers_to_keras(config):
    """A wrapper's layers (Bidirectional's layer and backward_layer, TimeDistributed's
    layer), dlcore specs in its config, as Keras layer objects."""
    config = dict(config)
    for key in ("layer", "backward_layer"):
        spec = config.get(key)
        if isinstance(spec, dict) and "module" in spec:  # the user's own layer
            config[key] = _custom_to_keras({**spec, "config": {
                k: v for k, v in (spec.get("config") or {}).items() if k != "input_shape"}})  # fmt: skip
        elif isinstance(spec, dict):
            config[key] = layer_to_keras(layers_module.deserialize(spec))
    return config


for _name in ("Bidirectional", "TimeDistributed"):
    TRANSLATIONS[_name] = (_wrapped_layers_to_keras, dict)

# Keras module -> the dlcore registry of its objects
_REGISTRIES = {
    "keras.layers": layers_module.base.registry,
    "keras.models": layers_module.base.registry,
    "keras.src.models.functional": layers_module.base.registry,
    "keras.src.models.sequential": layers_module.base.registry,
    "keras.initializers": initializers.registry,
    "keras.regularizers": regularizers.registry,
    "keras.constraints": constraints.registry,
    "keras.optimizers": optimizers.registry,
    "keras.optimizers.schedules": schedules.registry,
    "keras.losses": losses.registry,
    "keras.metrics": metrics.registry,
}
_MODULE_OF = {
    id(initializers.registry): "keras.initializers",
    id(regularizers.registry): "keras.regularizers",
    id(constraints.registry): "keras.constraints",
    id(optimizers.registry): "keras.optimizers",
    id(schedules.registry): "keras.optimizers.schedules",
    id(losses.registry): "keras.losses",
    id(metrics.registry): "keras.metrics",
}
_MODEL_MODULES = {"Sequential": "keras", "Functional": "keras.src.models.functional"}


def _custom_hint(spec):
    key = spec.get("registered_name")
    key = key if isinstance(key, str) and key else spec.get("class_name")
    return (
        f"if it is your own class, give it when loading: load_model(..., "
        f"custom_objects={{{key!r}: {spec.get('class_name')}}}) or in a custom_object_scope"
    )


def _registry_for(module, class_name, where, spec=None):
    if module in (None, "keras"):  # Keras' top-level names, and files without modules
        for registry in dict.fromkeys(_REGISTRIES.values()):
            if class_name in registry:
                return registry
        return layers_module.base.registry
    registry = _REGISTRIES.get(module)
    if registry is not None:
        return registry
    if module.split(".")[0] != "keras":
        raise KerasFormatError(
            f"{where}: {class_name!r} comes from module {module!r}, not from Keras; "
            f"dlcore loads Keras' own classes only and never runs code from a file; "
            f"{_custom_hint(spec or {'class_name': class_name})}"
        )
    raise KerasFormatError(f"{where}: dlcore has no {class_name!r} (Keras module {module!r})")


# ---------------------------------------------------------------- Keras -> dlcore


def _accepted_options(cls):
    """The keyword arguments ``cls`` takes (through ``**kwargs`` to its bases')."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names - {"self"}


def _is_default(option, value):
    allowed = KERAS_DEFAULTS.get(option)
    return allowed is ANY or (allowed is not None and value in allowed)


def _plain_value(value, where):
    """A Keras config value with its special forms resolved: tuples, dtype policies and
    named functions; a lambda is refused; nested objects become dlcore specs."""
    if isinstance(value, list):
        return [_plain_value(v, where) for v in value]
    if not isinstance(value, dict):
        return value
    if "class_name" not in value:
        return {k: _plain_value(v, where) for k, v in value.items()}
    class_name = value["class_name"]
    if class_name == "__tuple__":
        return [_plain_value(v, where) for v in value.get("config", {}).get("value", [])]
    if class_name in ("__lambda__", "__bytes__", "__typespec__"):
        raise KerasFormatError(
            f"{where}: the file holds Python code ({class_name}); dlcore never executes "
            f"code from a file (Keras' safe_mode)"
        )
    if class_name in ("DTypePolicy", "FloatDTypePolicy"):
        return value.get("config", {}).get("name")
    if class_name == "function":
        name = value.get("config")
        if not isinstance(name, str):
            raise KerasFormatError(f"{where}: a function saved as {value!r}")
        return name
    return object_from_keras(value, where)


def object_from_keras(spec, where):
    """A Keras object spec as a dlcore ``{"class_name", "config"}`` spec (recursively)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise KerasFormatError(f"{where}: expected a Keras object, got {spec!r:.200}")
    class_name, module = spec["class_name"], spec.get("module")
    if class_name == "Lambda":
        raise KerasFormatError(
            f"{where}: a Lambda layer holds Python code; dlcore never executes code from a "
            f"file (Keras' safe_mode): rebuild the model in code and load its weights"
        )
    if module is not None and not isinstance(module, str):
        raise KerasFormatError(f"{where}: module {module!r} of {class_name!r}")
    custom = _custom_object(spec, class_name, module)
    if custom is not None:
        return _custom_from_keras(spec, custom, where)
    registry = _registry_for(module, class_name, where, spec)
    if class_name not in registry:
        custom_hint = f"; {_custom_hint(spec)}" if spec.get("registered_name") else ""
        raise KerasFormatError(
            f"{where}: dlcore has no {registry.kind} {class_name!r}; its {registry.plural} "
            f"are: {', '.join(registry.names())}{custom_hint}"
        )
    config = spec.get("config") or {}
    if not isinstance(config, dict):
        raise KerasFormatError(f"{where}: the config of {class_name!r} is {config!r:.200}")
    cls = registry.lookup(class_name)
    inner = f"{where}: {class_name} {config.get('name', '')!s}".rstrip()
    if class_name == "Sequential":
        return {"class_name": class_name, "config": _sequential_from_keras(config, inner)}
    if class_name in ("Functional", "Model"):
        return {"class_name": "Functional", "config": _functional_from_keras(config, inner)}
    options = TRANSLATIONS[class_name][1](config) if class_name in TRANSLATIONS else config
    accepted = _accepted_options(cls) if isinstance(cls, type) else set()
    if isinstance(cls, type) and issubclass(cls, layers_module.Layer):  # any <weight>_constraint
        accepted |= {k for k in options if k.endswith("_constraint")}
    for key, value in options.items():
        if key not in accepted and not _is_default(key, value):
            raise KerasFormatError(
                f"{inner}: dlcore's {class_name} has no option {key}={value!r:.200} "
                f"(it takes: {', '.join(sorted(accepted))})"
            )
    options = {k: _plain_value(v, inner) for k, v in options.items() if k in accepted}
    return {"class_name": class_name, "config": options}


def _custom_object(spec, class_name, module):
    """The key a custom object in scope is found under for a Keras spec: its
    registered_name, else its class name; None for Keras' own classes (a Keras module
    and no registered_name) and for names no custom object has."""
    registered = spec.get("registered_name")
    own = isinstance(module, str) and (module == "keras" or module.startswith("keras."))
    if own and not registered:
        return None
    found = find_custom_object(registered, class_name)
    return None if found is None else found[0]


def _custom_from_keras(spec, key, where):
    """A custom object's Keras spec as a dlcore spec naming it by ``key``: its config
    passed on as the user's class wrote it, with Keras' special forms resolved (tuples,
    dtype policies, nested Keras objects made dlcore specs)."""
    config = spec.get("config")
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise KerasFormatError(f"{where}: the config of {key!r} is {config!r:.200}")
    inner = f"{where}: {key} {config.get('name', '')!s}".rstrip()
    return {"class_name": key, "config": {k: _plain_value(v, inner) for k, v in config.items()}}


def _sequential_from_keras(config, where):
    options = {k: v for k, v in config.items() if k in ("name", "trainable", "build_input_shape")}
    layer_specs = config.get("layers")
    if not isinstance(layer_specs, list):
        raise KerasFormatError(f"{where}: its layers are {layer_specs!r:.200}")
    options["layers"] = []
    for spec in layer_specs:
        converted = object_from_keras(spec, where)
        build = spec.get("build_config") if isinstance(spec, dict) else None
        if converted["class_name"] == "Sequential" and isinstance(build, dict):
            converted["build_input_shape"] = build.get("input_shape")
        options["layers"].append(converted)
    return options


def _tensor_ref_from_keras(leaf, where):
    if isinstance(leaf, dict) and leaf.get("class_name") == "__keras_tensor__":
        history = (leaf.get("config") or {}).get("keras_history")
        if not (isinstance(history, list) and len(history) == 3):
            raise KerasFormatError(f"{where}: a tensor reference {leaf!r:.200}")
        return {"__keras_tensor__": history}
    if isinstance(leaf, list):
        return [_tensor_ref_from_keras(v, where) for v in leaf]
    if isinstance(leaf, dict):
        return {k: _tensor_ref_from_keras(v, where) for k, v in leaf.items()}
    return leaf


def _functional_from_keras(config, where):
    layer_specs = config.get("layers")
    if not isinstance(layer_specs, list):
        raise KerasFormatError(f"{where}: its layers are {layer_specs!r:.200}")
    out = []
    for spec in layer_specs:
        converted = object_from_keras(spec, where)
        nodes = spec.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise KerasFormatError(f"{where}: inbound_nodes {nodes!r:.200}")
        converted["name"] = spec.get("name", converted["config"].get("name"))
        converted["inbound_nodes"] = []
        for node in nodes:
            if not isinstance(node, dict):
                raise KerasFormatError(f"{where}: a node {node!r:.200}")
            kwargs = {
                k: v
                for k, v in (node.get("kwargs") or {}).items()
                if not (k in ("training", "mask") and not isinstance(v, dict))
            }
            converted["inbound_nodes"].append(
                {
                    "args": _tensor_ref_from_keras(node.get("args", []), where),
                    "kwargs": _tensor_ref_from_keras(kwargs, where),
                }
            )
        out.append(converted)
    return {
        "name": config.get("name"),
        "trainable": config.get("trainable", True),
        "layers": out,
        "input_layers": config.get("input_layers"),
        "output_layers": config.get("output_layers"),
    }


def model_from_keras(config, where):
    """The dlcore model a Keras ``config.json`` (a dict) describes, built, without weights."""
    spec = object_from_keras(config, where)
    build = config.get("build_config")
    model = layers_module.deserialize(spec)
    if not model.built and isinstance(build, dict) and build.get("input_shape"):
        model.build(tuple(build["input_shape"]))
    return model


def compile_from_keras(model, config, where):
    """Compiles ``model`` as a Keras ``compile_config`` says."""
    optimizer = object_from_keras(config.get("optimizer"), f"{where}: optimizer")

    def revive(kind, deserialize):
        def one(value):
            if value is None or isinstance(value, str):
                return value
            plain = _plain_value(value, f"{where}: {kind}")
            return plain if isinstance(plain, str) else deserialize(plain)

        return one

    metric = revive("metric", metrics.registry.deserialize)
    model.compile(
        optimizer=optimizers.deserialize(optimizer),
        loss=_per_output(config.get("loss"), revive("loss", losses.deserialize)),
        loss_weights=config.get("loss_weights"),
        metrics=_per_output(config.get("metrics"), metric, drop_none=True),
        weighted_metrics=_per_output(config.get("weighted_metrics"), metric, drop_none=True),
    )


def _per_output(value, fn, drop_none=False):
    """``fn`` applied to each entry of a compile argument given once, as a list (per
    output, or a list of metrics) or as a dict by output name; with ``drop_none``, None
    entries leave lists (a metric saved as an object Keras cannot name)."""
    if isinstance(value, list):
        out = [_per_output(v, fn, drop_none) for v in value]
        return [v for v in out if v is not None] if drop_none else out
    if isinstance(value, dict) and "class_name" not in value:
        return {k: _per_output(v, fn, drop_none) for k, v in value.items()}
    return fn(value)


# ---------------------------------------------------------------- dlcore -> Keras


def _custom_to_keras(spec):
    """A custom object's spec (already Keras' form) with its config's values as Keras
    writes them."""
    config = spec.get("config")
    if isinstance(config, dict):
        config = {k: _value_to_keras(v) for k, v in config.items()}
    return {**spec, "config": config}


def _keras_object(registry, spec):
    if "module" in spec:  # the user's own, already in Keras' form
        return _custom_to_keras(spec)
    class_name, config = spec["class_name"], dict(spec.get("config") or {})
    if class_name in TRANSLATIONS:
        config = TRANSLATIONS[class_name][0](config)
    return {
        "module": _MODULE_OF[id(registry)],
        "class_name": class_name,
        "config": {k: _value_to_keras(v) for k, v in config.items()},
        "registered_name": None,
    }


def _value_to_keras(value):
    """A dlcore config value as Keras writes it: nested registered objects get their
    Keras module."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_value_to_keras(v) for v in value]
    if isinstance(value, dict) and isinstance(value.get("class_name"), str) and "module" in value:
        return _custom_to_keras(value)  # the user's own, already in Keras' form
    if isinstance(value, dict) and isinstance(value.get("class_name"), str) and "config" in value:
        for registry in (initializers.registry, regularizers.registry, schedules.registry,
                         losses.registry, metrics.registry):  # fmt: skip
            if value["class_name"] in registry:
                return _keras_object(registry, value)
    if isinstance(value, dict):
        return {k: _value_to_keras(v) for k, v in value.items()}
    return value


def _shape(shape):
    if isinstance(shape, list):
        return [_shape(s) for s in shape]
    return None if shape is None else list(shape)


def layer_to_keras(layer):
    """The Keras spec of a dlcore layer or model (with its ``build_config``)."""
    class_name = layers_module.base.registry.name_of(layer)
    if class_name is None:  # the user's own layer: as Keras writes it
        spec = layers_module.serialize(layer)
        spec["config"] = dict(spec["config"])
        spec["config"].pop("input_shape", None)
        spec = _custom_to_keras(spec)
        if layer.built and layer.input_shape is not None:
            spec["build_config"] = {"input_shape": _shape(layer.input_shape)}
        return spec
    if class_name == "Sequential":
        config = _sequential_to_keras(layer)
    elif class_name == "Functional":
        config = _functional_to_keras(layer)
    else:
        config = dict(layer.get_config())
        config.pop("input_shape", None)
        if class_name in TRANSLATIONS:
            config = TRANSLATIONS[class_name][0](config)
        config = {k: _value_to_keras(v) for k, v in config.items()}
    spec = {
        "module": _MODEL_MODULES.get(class_name, "keras.layers"),
        "class_name": class_name,
        "config": config,
        "registered_name": None,
    }
    if layer.built and layer.input_shape is not None and not isinstance(layer, InputLayer):
        spec["build_config"] = {"input_shape": _shape(layer.input_shape)}
    return spec


def _sequential_to_keras(model):
    layers = []
    if model.built:
        batch_shape = [None, *model.input_shape[1:]]
        first = model.layers[0] if model.layers else None
        layers.append(layer_to_keras(InputLayer(
            batch_shape=batch_shape, dtype=first.dtype.name if first else "float32",
            name=f"{model.name}_input")))  # fmt: skip
    layers += [layer_to_keras(l) for l in model.layers]
    config = {"name": model.name, "trainable": model.trainable, "layers": layers}
    if model.built:
        config["build_input_shape"] = _shape(model.input_shape)
    return config


def _functional_to_keras(model):
    config = model.get_config()
    by_name = {l.name: l for l in model.layers}

    def tensor(ref):
        name, node_index, tensor_index = ref
        t = flatten(by_name[name]._inbound_nodes[node_index].outputs)[tensor_index]
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": list(t.shape), "dtype": t.dtype.name, "keras_history": ref},
        }

    def refs(value):
        if isinstance(value, dict) and "__keras_tensor__" in value:
            return tensor(value["__keras_tensor__"])
        if isinstance(value, (list, tuple)):
            return [refs(v) for v in value]
        if isinstance(value, dict):
            return {k: refs(v) for k, v in value.items()}
        return value

    out = []
    for spec in config["layers"]:
        keras_spec = layer_to_keras(by_name[spec["name"]])
        keras_spec["name"] = spec["name"]
        keras_spec["inbound_nodes"] = [
            {"args": refs(n["args"]), "kwargs": refs(n["kwargs"])} for n in spec["inbound_nodes"]
        ]
        out.append(keras_spec)
    config["layers"] = out
    return config


def model_to_keras(model):
    """The ``config.json`` dict of a dlcore model (with its compile settings)."""
    spec = layer_to_keras(model)
    compile_config = compile_to_keras(model.get_compile_config())
    if compile_config is not None:
        spec["compile_config"] = compile_config
    return spec


def compile_to_keras(config):
    if not config:
        return None

    def loss(value):
        return _keras_object(losses.registry, value) if isinstance(value, dict) else value

    return {
        "optimizer": _keras_object(optimizers.registry, config["optimizer"]),
        "loss": _per_output(config["loss"], loss),
        "loss_weights": config.get("loss_weights"),
        "metrics": _per_output(config.get("metrics"), lambda m: m, drop_none=True) or None,
        "weighted_metrics": None,
    }
