"""Learning-rate schedules: callables from the optimizer's step count (the number of
updates already applied) to a learning rate, with Keras' names and formulas. Their
arguments are checked when set, so a built-in schedule never yields a negative or
non-finite rate (an optimizer checks what any schedule yields as it uses it)."""

import math

from dlcore.optimizers.hyperparameters import Hyperparameter
from dlcore.registry import Registry

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "CosineDecay",
    "deserialize",
    "get",
    "registry",
    "serialize",
]

registry = Registry("learning-rate schedule")


class LearningRateSchedule:
    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register()
class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps); with ``staircase``
    the exponent is floored, so the rate drops every decay_steps steps."""

    initial_learning_rate = Hyperparameter("(0, inf)")
    decay_steps = Hyperparameter("(0, inf)")
    decay_rate = Hyperparameter("(0, inf)")

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps, self.decay_rate = decay_steps, decay_rate
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
        }


@registry.register()
class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[1] while step <= boundaries[1],
    ..., values[-1] after the last boundary."""

    def __init__(self, boundaries, values):
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"PiecewiseConstantDecay: needs one more value than boundaries, "
                f"got {len(boundaries)} boundaries and {len(values)} values"
            )
        step = Hyperparameter("[0, inf)")
        boundaries = [step.check(b, "PiecewiseConstantDecay: boundaries") for b in boundaries]
        if boundaries != sorted(boundaries):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase, got {boundaries}")
        rate = Hyperparameter("[0, inf)")
        self.boundaries = boundaries
        self.values = [rate.check(v, "PiecewiseConstantDecay: values") for v in values]

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}


@registry.register()
class CosineDecay(LearningRateSchedule):
    """Cosine from initial_learning_rate down to alpha * initial_learning_rate over
    decay_steps, constant after; an optional linear warm-up first (Keras 3)."""

    initial_learning_rate = Hyperparameter("[0, inf)")
    decay_steps = Hyperparameter("(0, inf)")
    alpha = Hyperparameter("[0, 1]")
    warmup_target = Hyperparameter("[0, inf)", optional=True)
    warmup_steps = Hyperparameter("[0, inf)")

    def __init__(
        self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps, self.alpha = decay_steps, alpha
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def __call__(self, step):
        start = self.initial_learning_rate
        if self.warmup_target is not None and step < self.warmup_steps:
            return start + (self.warmup_target - start) * step / self.warmup_steps
        peak = start if self.warmup_target is None else self.warmup_target
        t = min(max(step - self.warmup_steps, 0), self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1 + math.cos(math.pi * t))
        return peak * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


def serialize(schedule):
    return registry.serialize(schedule)


def deserialize(config, custom_objects=None):
    """The object of a config or name; ``custom_objects`` (name -> class or function)
    are found too, as in Keras."""
    return registry.deserialize(config, custom_objects)


get = deserialize
