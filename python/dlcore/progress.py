"""A Keras-like progress bar for training and evaluation loops."""

import sys
import time

__all__ = ["Progbar", "format_logs"]


def format_logs(logs):
    return " - ".join(
        f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in logs.items()
    )


def _format_duration(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


def _format_per_step(seconds):
    if seconds >= 1:
        return f"{seconds:.1f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class Progbar:
    """Step counter, bar, ETA / time per step and the running logs.

    verbose=1 on a terminal redraws one line in place (at most every ``interval``
    seconds); verbose=1 elsewhere (a file, a pipe, a notebook log) and verbose=2 print
    a single line when the target is reached; verbose=0 prints nothing.
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, prefix="", stream=None):
        self.target, self.width, self.verbose, self.interval = target, width, verbose, interval
        self.prefix = prefix
        self.stream = stream or sys.stdout
        self.interactive = verbose == 1 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._drawn_width = 0

    def update(self, current, logs=None, finalize=None):
        logs = logs or {}
        if self.verbose == 0:
            return
        done = (
            finalize
            if finalize is not None
            else (self.target is not None and current >= self.target)
        )
        now = time.perf_counter()
        elapsed = now - self.start
        if self.interactive:
            if not done and now - self._last_draw < self.interval:
                return
            self._last_draw = now
            line = self._bar(current) + " " + self._timing(current, elapsed, done)
            if logs:
                line += " - " + format_logs(logs)
            pad = max(self._drawn_width - len(line), 0)
            self.stream.write("\r" + line + " " * pad + ("\n" if done else ""))
            self._drawn_width = len(line)
            self.stream.flush()
        elif done:
            steps = f"{current}/{self.target}" if self.target else f"{current}"
            line = (
                f"{self.prefix}{steps} - {_format_duration(elapsed)} - "
                f"{_format_per_step(elapsed / max(current, 1))}"
            )
            if logs:
                line += " - " + format_logs(logs)
            self.stream.write(line + "\n")
            self.stream.flush()

    def _bar(self, current):
        if not self.target:
            return f"{self.prefix}{current}"
        digits = len(str(self.target))
        filled = int(self.width * min(current / self.target, 1))
        bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") if filled else ""
        return f"{self.prefix}{current:>{digits}}/{self.target} [{bar:.<{self.width}}]"

    def _timing(self, current, elapsed, done):
        per_step = elapsed / max(current, 1)
        if done or not self.target:
            return f"- {_format_duration(elapsed)} {_format_per_step(per_step)}"
        return f"- ETA: {_format_duration(per_step * (self.target - current))}"
