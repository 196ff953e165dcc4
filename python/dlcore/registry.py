"""One name registry for everything dlcore resolves by name: layers, activations,
initializers, regularizers, losses, metrics, optimizers and schedules.

Each kind has a :class:`Registry`; an object joins it with the ``register`` decorator,
under a canonical name (Keras' class name, or the function's name) and any aliases
(Keras' string shortcuts such as ``"glorot_uniform"`` or ``"mse"``)::

    @initializers.registry.register(aliases=("glorot_uniform",))
    class GlorotUniform(VarianceScaling): ...

``get`` turns an identifier (a name, a ``{"class_name", "config"}`` dict, an instance or
a callable) into an object; ``serialize`` and ``deserialize`` turn registered objects
into JSON-ready configs and back. Every unknown name is a ValueError that lists the
registered names.

Objects of the user's own (a Layer subclass, a loss function) need no registering to be
saved: they are written as Keras writes them (``{"module", "class_name", "config",
"registered_name"}``, a function by its name) and found again, when a file is read, in
the custom objects the reader is given, as in Keras: ``load_model(path,
custom_objects={"MyLayer": MyLayer})``, a :class:`CustomObjectScope`, or the global
:func:`get_custom_objects` dict that :func:`register_keras_serializable` fills. A
custom object's key is the name in the file (its ``registered_name``: the class's or
function's name, or ``"package>name"`` when registered); a custom object is found
before a built-in of the same name, as in Keras.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Mapping
from contextlib import nullcontext

__all__ = [
    "CustomObjectScope",
    "Registry",
    "custom_object_scope",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "registries",
    "register_keras_serializable",
]

registries = {}  # kind -> Registry

# ---------------------------------------------------------------- custom objects

_GLOBAL_CUSTOM_OBJECTS = {}  # name -> class or function (get_custom_objects())
_GLOBAL_CUSTOM_NAMES = {}  # class or function -> "package>name" (register_keras_serializable)
_local = threading.local()  # .scoped: this thread's scopes' objects; .found: clone_model's


def check_custom_objects(custom_objects, owner):
    """``custom_objects`` (None or a dict of name -> class or function) as a new dict,
    refusing anything else with the argument named."""
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, Mapping):
        raise TypeError(
            f"{owner}: custom_objects must be a dict of name -> class or function, such as "
            f"{{'MyLayer': MyLayer}}, got {type(custom_objects).__name__} {custom_objects!r:.100}"
        )
    for key, value in custom_objects.items():
        if not isinstance(key, str):
            raise TypeError(
                f"{owner}: custom_objects' keys are the names the file uses (strings, such as "
                f"'MyLayer'), got {key!r} of type {type(key).__name__}"
            )
        if not callable(value):
            raise TypeError(
                f"{owner}: custom_objects[{key!r}] must be a class or a function, got "
                f"{value!r:.100} of type {type(value).__name__}"
            )
    return dict(custom_objects)


class CustomObjectScope:
    """Context manager: inside ``with CustomObjectScope({"MyLayer": MyLayer}):`` every
    name dlcore resolves (``load_model``, ``model_from_json``, ``Model.from_config``,
    ``layers.deserialize``, ``activations.get``, ...) may be one of these custom objects,
    as in Keras (``keras.saving.custom_object_scope``). Scopes nest, an inner one adding
    to (and overriding) the outer; a scope holds in the thread that enters it."""

    def __init__(self, custom_objects=None):
        self.custom_objects = check_custom_objects(custom_objects, "custom_object_scope")
        self._before = {}  # thread -> the scopes' objects to restore, a stack

    def __enter__(self):
        outer = getattr(_local, "scoped", None)
        self._before.setdefault(threading.get_ident(), []).append(outer)
        _local.scoped = {**(outer or {}), **self.custom_objects}
        return self

    def __exit__(self, *exc):
        thread = threading.get_ident()
        stack = self._before[thread]
        _local.scoped = stack.pop()
        if not stack:
            del self._before[thread]
        return False


custom_object_scope = CustomObjectScope  # Keras' lower-case name


def using_custom_objects(custom_objects, owner):
    """A context in which ``custom_objects`` (an argument of ``owner``, checked) are in
    scope; nothing when there are none."""
    objects = check_custom_objects(custom_objects, owner)
    return CustomObjectScope(objects) if objects else nullcontext()


def scoped_custom_objects():
    """A copy of the custom objects the scopes of this thread hold now."""
    return dict(getattr(_local, "scoped", None) or {})


def get_custom_objects():
    """The global dict of custom objects (name -> class or function), live: what is
    added to it is found by every load, as Keras' ``get_custom_objects()``."""
    return _GLOBAL_CUSTOM_OBJECTS


def register_keras_serializable(package="Custom", name=None):
    """Decorator: registers a class (with ``get_config``) or a function as
    ``"package>name"`` (name: its ``__name__`` by default) in the global custom objects,
    so that files naming it load without ``custom_objects``, as Keras' decorator of this
    name."""
    if not isinstance(package, str):
        raise TypeError(
            f"register_keras_serializable: package must be a string, got {package!r:.100}; "
            f"use it with parentheses: @register_keras_serializable() or "
            f"@register_keras_serializable('my_package')"
        )
    if name is not None and not isinstance(name, str):
        raise TypeError(f"register_keras_serializable: name must be a string, got {name!r}")

    def decorate(obj):
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError(
                f"register_keras_serializable: class {obj.__name__} has no get_config() "
                f"method; a registered class must describe itself to be saved"
            )
        registered = f"{package}>{name if name is not None else obj.__name__}"
        _GLOBAL_CUSTOM_OBJECTS[registered] = obj
        _GLOBAL_CUSTOM_NAMES[obj] = registered
        return obj

    return decorate


def get_registered_name(obj):
    """The name ``obj`` (a class or function) is saved under: ``"package>name"`` when
    :func:`register_keras_serializable` registered it, else its ``__name__``."""
    try:
        registered = _GLOBAL_CUSTOM_NAMES.get(obj)
    except TypeError:  # unhashable
        registered = None
    return registered if registered is not None else obj.__name__


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class or function saved as ``name``: from the scopes, the global custom
    objects, then ``custom_objects`` and ``module_objects``; None when none has it."""
    for objects in (getattr(_local, "scoped", None), _GLOBAL_CUSTOM_OBJECTS, custom_objects,
                    module_objects):  # fmt: skip
        if objects and name in objects:
            return objects[name]
    return None


def find_custom_object(*names):
    """``(name, object)`` of the first of ``names`` (strings; others are skipped) that is
    a custom object in scope or in the global dict; None."""
    scoped = getattr(_local, "scoped", None)
    for name in names:
        if not isinstance(name, str) or not name:
            continue
        for objects in (scoped, _GLOBAL_CUSTOM_OBJECTS):
            if objects and name in objects:
                return name, objects[name]
    return None


class recording_custom_objects:
    """Context manager: the custom objects serialized inside it are collected in the
    dict it returns (``clone_model`` rebuilds a model with them in scope)."""

    def __enter__(self):
        self._before = getattr(_local, "found", None)
        _local.found = {} if self._before is None else self._before
        return _local.found

    def __exit__(self, *exc):
        _local.found = self._before
        return False


def custom_config(obj):
    """How Keras saves a custom object no registry knows: a named function as
    ``{"module", "class_name": "function", "config": name, "registered_name": name}``, an
    instance with ``get_config()`` as ``{"module", "class_name", "config",
    "registered_name"}``; None for what cannot be named (a lambda, a class, an object
    without ``get_config``)."""
    if isinstance(obj, type):
        return None
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
        name = get_registered_name(obj)
        if not name or name == "<lambda>":
            return None
        spec = {"module": obj.__module__, "class_name": "function", "config": name,
                "registered_name": name}  # fmt: skip
        found, key = obj, name
    else:
        get_config = getattr(type(obj), "get_config", None)
        if get_config is None:
            return None
        config = obj.get_config()
        if not isinstance(config, dict):
            raise TypeError(
                f"{type(obj).__name__}.get_config() must return a dict, got {type(config).__name__}"
            )
        cls = type(obj)
        key = get_registered_name(cls)
        spec = {"module": cls.__module__, "class_name": cls.__name__, "config": config,
                "registered_name": key}  # fmt: skip
        found = cls
    recorded = getattr(_local, "found", None)
    if recorded is not None:
        recorded[key] = found
    return spec


def _custom_hint(name):
    return (
        f"if it is a custom class or function, give it when loading: "
        f"custom_objects={{{name!r}: ...}} (or in a custom_object_scope)"
    )


class Registry:
    """Names of one kind of object (``kind`` is how messages call it: "layer", "loss")."""

    def __init__(self, kind, plural=None):
        if kind in registries:
            raise ValueError(f"a registry of {kind} objects exists already")
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._by_name = {}
        self._name_of = {}  # registered object -> its canonical name
        registries[kind] = self

    # ------------------------------------------------------------ registering
    def register(self, name=None, aliases=()):
        """Decorator: registers a class or function under ``name`` (default: its
        ``__name__``) and ``aliases``."""

        def decorate(obj):
            canonical = name or obj.__name__
            for key in (canonical, *aliases):
                known = self._by_name.get(key)
                if known is not None and known is not obj:
                    raise ValueError(
                        f"{self.kind} name {key!r} is taken by {known!r}; pick another name"
                    )
                self._by_name[key] = obj
            self._name_of.setdefault(obj, canonical)
            return obj

        return decorate

    # ------------------------------------------------------------ looking up
    def names(self):
        """The canonical names, sorted."""
        return sorted(self._name_of.values())

    def __contains__(self, name):
        """Whether ``name`` is registered (custom objects in scope aside)."""
        return name in self._by_name

    def lookup(self, name, registered_name=None):
        """The object called ``name`` (canonical or alias): a custom object in scope of
        that name (or of ``registered_name``, the key a saved custom object names)
        first, as Keras, then the registered one."""
        found = find_custom_object(registered_name, name)
        if found is not None:
            return found[1]
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            shown = registered_name if isinstance(registered_name, str) else name
            raise ValueError(
                f"unknown {self.kind} {shown!r}; the registered {self.plural} are: "
                f"{', '.join(self.names())}; {_custom_hint(shown)}"
            ) from None

    def name_of(self, obj):
        """The canonical name of a registered class or function (or of the class of a
        registered class's instance); None when it is not registered."""
        try:
            name = self._name_of.get(obj)
        except TypeError:  # unhashable
            name = None
        if name is None and not isinstance(obj, type):
            name = self._name_of.get(type(obj))
        return name

    # ------------------------------------------------------------ configs
    def serialize(self, obj):
        """``{"class_name": name, "config": obj.get_config()}`` for an instance of a
        registered class; the bare name for a registered function; a custom object (one
        of the user's, not registered) as Keras saves it (:func:`custom_config`)."""
        name = self.name_of(obj)
        if name is None:
            spec = custom_config(obj)
            if spec is None:
                raise TypeError(
                    f"{self.kind} {obj!r} cannot be saved: it is not registered, and is "
                    f"neither a named function nor an object with get_config() (use a "
                    f"built-in {self.kind}, a def function, or give the class a get_config)"
                )
            return spec
        if self._by_name[name] is obj:  # a registered function or class itself
            return name
        return {"class_name": name, "config": obj.get_config()}

    def deserialize(self, config, custom_objects=None):
        """An object from what :meth:`serialize` returned (or Keras' config of a custom
        object); ``custom_objects`` (name -> class or function) are in scope meanwhile."""
        if custom_objects is not None:
            with using_custom_objects(custom_objects, f"{self.plural}.deserialize"):
                return self.deserialize(config)
        if isinstance(config, str):
            return self.instantiate(self.lookup(config))
        if not isinstance(config, dict) or "class_name" not in config:
            raise ValueError(
                f"a {self.kind} config must be a name or a dict with 'class_name' and "
                f"'config', got {config!r}"
            )
        class_name = config["class_name"]
        if class_name == "function":  # Keras' form of a function: its name is the config
            name = config.get("config")
            if not isinstance(name, str):
                raise ValueError(f"a {self.kind} function saved as {config!r}: expected its name")
            return self.instantiate(self.lookup(name))
        options = config.get("config") or {}
        if not isinstance(options, dict):
            raise ValueError(
                f"the 'config' of {self.kind} {class_name!r} must be a dict, "
                f"got {type(options).__name__}"
            )
        found = self.lookup(class_name, config.get("registered_name"))
        if isinstance(found, types.FunctionType):  # a custom function under a class's name
            return found
        if not hasattr(found, "from_config"):
            raise TypeError(
                f"{self.kind} {class_name!r} is {found!r}, which has no from_config(); "
                f"expected a class such as a {self.kind} subclass"
            )
        return found.from_config(dict(options))

    @staticmethod
    def instantiate(obj):
        """A class is instantiated with its defaults; a function is returned as is."""
        return obj() if isinstance(obj, type) else obj

    def get(self, identifier, base=None):
        """An object from a name, a config dict, an instance of ``base`` (or a subclass of
        it, instantiated with its defaults) or a callable."""
        if base is not None and isinstance(identifier, base):
            return identifier
        if base is not None and isinstance(identifier, type):
            if issubclass(identifier, base):  # a class is used with its defaults, as Keras
                return identifier()
            raise TypeError(
                f"cannot interpret the class {identifier.__name__} as a {self.kind}; "
                f"expected a {base.__name__}, a name such as {self.names()[0]!r} or a config"
            )
        if isinstance(identifier, (str, dict)):
            return self.deserialize(identifier)
        if callable(identifier):
            return identifier
        raise TypeError(
            f"cannot interpret {identifier!r} (of type {type(identifier).__name__}) as a "
            f"{self.kind}; expected a name such as {self.names()[0]!r}, a config dict, or "
            f"an object"
        )
