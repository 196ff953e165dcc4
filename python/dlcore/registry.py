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
"""

from __future__ import annotations

__all__ = ["Registry", "registries"]

registries = {}  # kind -> Registry


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
        return name in self._by_name

    def lookup(self, name):
        """The object registered under ``name`` (canonical or alias)."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; the registered {self.plural} are: "
                f"{', '.join(self.names())}"
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
        registered class; the bare name for a registered function."""
        name = self.name_of(obj)
        if name is None:
            raise TypeError(
                f"{self.kind} {obj!r} cannot be saved: it is not registered (register its "
                f"class with dlcore's {self.kind} registry, or use a built-in {self.kind})"
            )
        if self._by_name[name] is obj:  # a registered function or class itself
            return name
        return {"class_name": name, "config": obj.get_config()}

    def deserialize(self, config):
        """An object from what :meth:`serialize` returned."""
        if isinstance(config, str):
            return self.instantiate(self.lookup(config))
        if not isinstance(config, dict) or "class_name" not in config:
            raise ValueError(
                f"a {self.kind} config must be a name or a dict with 'class_name' and "
                f"'config', got {config!r}"
            )
        options = config.get("config") or {}
        if not isinstance(options, dict):
            raise ValueError(
                f"the 'config' of {self.kind} {config['class_name']!r} must be a dict, "
                f"got {type(options).__name__}"
            )
        return self.lookup(config["class_name"]).from_config(dict(options))

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
