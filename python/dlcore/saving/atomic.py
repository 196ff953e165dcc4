"""Atomic file writes: the new content goes to a temporary file in the target's
directory, is flushed and fsync'ed, then renamed over the target, so a crash leaves the
previous file whole. The new file gets the mode ``open()`` would give it (the replaced
file's, else 0o666 less the umask); through a symbolic link, the link's target is
replaced."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path):
    """``with atomic_write(path) as f: f.write(...)``: ``f`` is a binary file; ``path``
    is replaced when the block ends without an exception, and left alone otherwise."""
    target = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(target)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for open()
            break
        except FileExistsError:
            continue
    try:
        with contextlib.suppress(FileNotFoundError, OSError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Makes the rename durable (where the platform lets a directory be fsync'ed)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
