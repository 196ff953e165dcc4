"""Weight penalties (Keras' L1, L2, L1L2) that layers add to the training loss."""

from dlcore.registry import Registry

__all__ = [
    "L1",
    "L1L2",
    "L2",
    "Regularizer",
    "deserialize",
    "get",
    "l1",
    "l1_l2",
    "l2",
    "registry",
    "serialize",
]

registry = Registry("regularizer")


class Regularizer:
    def __call__(self, weight):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register(aliases=("l1_l2",))
class L1L2(Regularizer):
    """l1 * sum(|w|) + l2 * sum(w^2)."""

    def __init__(self, l1=0.0, l2=0.0):
        if l1 < 0 or l2 < 0:
            raise ValueError(f"regularization factors must be >= 0, got l1={l1}, l2={l2}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weight):
        penalty = 0.0
        if self.l1:
            penalty = penalty + weight.abs().sum() * self.l1
        if self.l2:
            penalty = penalty + (weight * weight).sum() * self.l2
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@registry.register(aliases=("l1",))
class L1(L1L2):
    """l1 * sum(|w|); Keras' default factor 0.01."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


@registry.register(aliases=("l2",))
class L2(L1L2):
    """l2 * sum(w^2); Keras' default factor 0.01."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


# Keras' lower-case spellings: regularizers.l2(0.001), regularizers.l1_l2(l1=..., l2=...)
l1, l2, l1_l2 = L1, L2, L1L2


def get(identifier):
    """A regularizer from None, a name ('l1', 'l2', 'l1_l2'), a config, an instance or a
    callable(weight) -> penalty."""
    if identifier is None:
        return None
    return registry.get(identifier, base=Regularizer)


def serialize(reg):
    return None if reg is None else registry.serialize(reg)


def deserialize(config, custom_objects=None):
    """The object of a config or name; ``custom_objects`` (name -> class or function)
    are found too, as in Keras."""
    return registry.deserialize(config, custom_objects)
