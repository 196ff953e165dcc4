"""Checked hyper-parameters, shared by the optimizers and the learning-rate schedules."""

from __future__ import annotations

import math
import numbers

__all__ = ["Hyperparameter", "checked_rate"]


def _real(value, what):
    """``value`` as a float, or a TypeError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {value!r}")
    return float(value)


class Hyperparameter:
    """An attribute checked when it is set: a finite number in ``interval`` (``"[0, 1)"``,
    ``"(0, inf)"``, ...), or None where ``optional``."""

    def __init__(self, interval, optional=False):
        self.interval, self.optional = interval, optional
        low, high = interval[1:-1].split(",")
        self.low, self.high = float(low), float(high)
        self.low_open, self.high_open = interval[0] == "(", interval[-1] == ")"

    def __set_name__(self, owner, name):
        self.name = name

    # No __get__: the checked value lives in the instance's __dict__ under the same name,
    # so reading it is a plain attribute lookup (the optimizers read them every step).

    def __set__(self, obj, value):
        obj.__dict__[self.name] = self.check(value, f"{type(obj).__name__}: {self.name}")

    def check(self, value, what):
        if value is None and self.optional:
            return None
        x = _real(value, what)
        inside = (
            math.isfinite(x)
            and (x > self.low if self.low_open else x >= self.low)
            and (x < self.high if self.high_open else x <= self.high)
        )
        if not inside:
            raise ValueError(f"{what} must be a finite number in {self.interval}, got {value!r}")
        return x


def checked_rate(value, what):
    """A learning rate a schedule yielded: a finite number >= 0 (a schedule may decay to
    0), else a ValueError naming ``what``."""
    try:
        x = _real(value, what)
    except TypeError:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}") from None
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return x
