"""Data-parallel training across processes and machines over MPI (through mpi4py), the
way Horovod does it.

Every process (a *rank*) holds a whole replica of the model and trains on its own shard
of the data; after each backward pass the ranks average their gradients, so every
replica takes the same step. MPI's launcher starts the ranks::

    mpirun -n 2 python train.py                       # one machine
    mpirun -n 4 -f hosts python train.py              # several (Open MPI: --hostfile hosts)

Keras face: every rank calls ``fit`` with the same, whole data and fit does the rest::

    model.fit(x, y, batch_size=32, epochs=5, distributed=True)
    model.evaluate(x_test, y_test, distributed=True)

``batch_size`` is per rank, as in Horovod: one step of n ranks trains on n * batch_size
samples (scale the learning rate yourself if you want to). fit broadcasts rank 0's
weights and optimizer state, gives each rank a disjoint shard of every epoch's shuffled
order, averages the gradients with one Allreduce per step, reduces the loss and the
metrics so that every rank logs the global figures, shows progress and writes
checkpoints on rank 0 only, and checks after every epoch that the replicas are still
bit-identical.

Custom loops (PyTorch face)::

    world = distributed.init()
    distributed.broadcast_parameters(model.weights, optimizer=opt)
    for xb, yb in batches_of_this_rank:
        opt.zero_grad()
        loss = loss_fn(yb, model(xb, training=True))
        loss.backward()
        mean_loss = distributed.allreduce_gradients(opt.params, loss)
        opt.step()

mpi4py is imported by :func:`init`, never before. Without it (or outside mpirun) the
world is this process alone and every function here is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from dlcore import ops

__all__ = [
    "broadcast_object",
    "check_same_data",
    "shard",
    "World",
    "init",
    "broadcast_parameters",
    "allreduce_gradients",
    "reduce_metrics",
    "check_synchronized",
    "stats",
    "DEFAULT_TIMEOUT",
]

DEFAULT_TIMEOUT = 300.0
_TIMEOUT_VARIABLE = "DLCORE_DISTRIBUTED_TIMEOUT"
# How MPICH's Hydra and Open MPI tell a process how many they started.
_LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


@dataclass(frozen=True)
class World:
    """The processes of the job: this one is ``rank`` of ``size``, and ``local_rank`` of
    the ``local_size`` on its machine. ``comm`` is the mpi4py communicator (None in a
    world of one without mpi4py)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    comm: object = None


class _Session:
    """What :func:`init` sets up: the world, the watchdog over collectives, the reduction
    buffer (kept between steps) and the communication counters."""

    def __init__(self, world, timeout, mpi):
        self.world, self.timeout, self.mpi = world, timeout, mpi
        self.counters = {
            "allreduce_calls": 0,
            "allreduce_bytes": 0,
            "allreduce_seconds": 0.0,
            "total_seconds": 0.0,
        }
        self._buffer = np.empty(0, np.float32)
        self._waiting = None  # (deadline, what) while this rank is inside a collective

    def buffer(self, n, dtype):
        if self._buffer.size != n or self._buffer.dtype != dtype:
            self._buffer = np.empty(n, dtype)
        return self._buffer

    @contextmanager
    def collective(self, what):
        """Marks a collective call for the watchdog."""
        self._waiting = (time.monotonic() + self.timeout, what)
        try:
            yield
        finally:
            self._waiting = None

    def start_watchdog(self):
        threading.Thread(
            target=self._watch, name="dlcore-distributed-watchdog", daemon=True
        ).start()

    def _watch(self):
        while True:
            time.sleep(min(1.0, self.timeout / 10))
            waiting = self._waiting
            if waiting is not None and time.monotonic() > waiting[0]:
                _abort_job(
                    self.world,
                    f"{waiting[1]} has waited {self.timeout:g} s for the "
                    f"other ranks: one of them has died or is stuck (the "
                    f"limit is distributed.init(timeout=...) or "
                    f"${_TIMEOUT_VARIABLE})",
                )


_session = None


def init(timeout=None):
    """Joins the MPI job this process belongs to and returns its :class:`World`; later
    calls return the same World.

    timeout: seconds any of dlcore's collectives may wait for the other ranks before
        the whole job is aborted with a message saying so (default:
        ``$DLCORE_DISTRIBUTED_TIMEOUT``, else 300). A later call may change it.

    With several ranks, the first call also
      - gives each rank its fair share of the cores of its machine as dlcore threads
        (the cores it may run on, divided by the ranks on that machine that may run on
        them too) unless ``OMP_NUM_THREADS`` is set; ``ops.set_num_threads`` afterwards
        overrides it;
      - makes an uncaught exception in any rank abort the whole job (MPI_Abort), where
        the other ranks would otherwise wait for it forever.

    Without mpi4py the world is this process alone (rank 0 of 1), unless an MPI launcher
    started several processes, which raises ImportError.
    """
    global _session
    if timeout is not None and not float(timeout) > 0:
        raise ValueError(f"init: timeout must be > 0 seconds, got {timeout!r}")
    if _session is None:
        _session = _start(float(timeout) if timeout is not None else _default_timeout())
    elif timeout is not None:
        _session.timeout = float(timeout)
    return _session.world


def _default_timeout():
    text = os.environ.get(_TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(f"${_TIMEOUT_VARIABLE} must be a number of seconds > 0, got {text!r}")
    return value


def _start(timeout):
    try:
        from mpi4py import MPI
    except ImportError as e:
        launched = max(int(os.environ.get(v, "1")) for v in _LAUNCHER_SIZE_VARIABLES)
        if launched > 1:
            raise ImportError(
                f"dlcore.distributed: this process is one of {launched} that an "
                f"MPI launcher started, but mpi4py is not installed: "
                f"pip install 'dlcore[mpi]'"
            ) from e
        return _Session(World(), timeout, None)
    comm = MPI.COMM_WORLD
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    world = World(comm.Get_rank(), comm.Get_size(), node.Get_rank(), node.Get_size(), comm)
    if world.local_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        ops.set_num_threads(_fair_share_of_cores(node))
    node.Free()
    session = _Session(world, timeout, MPI)
    if world.size > 1:
        _abort_on_uncaught_exception(world)
        session.start_watchdog()
    return session


def _fair_share_of_cores(node):
    """Cores this rank may run on, divided by the ranks of its machine that may run on
    them too: every core when nothing is bound, the bound set when each rank has its own."""
    mine = frozenset(
        os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    )
    sharing = sum(1 for theirs in node.allgather(mine) if theirs & mine)
    return max(1, len(mine) // sharing)


def _abort_job(world, reason):
    sys.stderr.write(
        f"dlcore.distributed: rank {world.rank} of {world.size}: {reason}; aborting all ranks\n"
    )
    sys.stderr.flush()
    # MPI_Abort tears the job down at once, and the process manager drops whatever of this
    # rank's output it has not forwarded yet: give it a moment to pass the reason on.
    time.sleep(0.5)
    # mpi4py initialises MPI with MPI_THREAD_MULTIPLE (its default), so the watchdog
    # thread may abort while the main thread is blocked inside a collective.
    world.comm.Abort(1)


def _abort_on_uncaught_exception(world):
    previous = sys.excepthook

    def abort(kind, value, tb):
        if previous is sys.__excepthook__:
            # the whole report in one write, so that it reaches the process manager whole
            sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))
        else:
            previous(kind, value, tb)
        _abort_job(
            world,
            f"an uncaught {kind.__name__} stopped this rank, and the others "
            f"would wait for it forever",
        )

    sys.excepthook = abort


def _current():
    if _session is None:
        init()
    return _session


# ---------------------------------------------------------------- collectives


def _flatten(arrays, dtype, out=None):
    out = np.empty(sum(a.size for a in arrays), dtype) if out is None else out
    offset = 0
    for a in arrays:
        out[offset : offset + a.size] = a.reshape(-1)
        offset += a.size
    return out


def broadcast_parameters(params, optimizer=None, root=0):
    """Gives every rank rank ``root``'s values of ``params`` (Tensors, written in place)
    and, with ``optimizer``, its step count and its state (slots) for the parameters it
    trains (``optimizer.params``): the arrays travel in one Bcast of one buffer. Call it
    before training so that every replica starts from the same point."""
    s = _current()
    if s.world.size == 1:
        return
    params = list(params)
    arrays = [p.data for p in params]
    opt_params, iterations = [], 0
    if optimizer is not None:
        opt_params = list(optimizer.params or [])
        iterations, state = optimizer.get_state(opt_params)
        arrays += state
    buf = _flatten(arrays, np.result_type(np.float32, *arrays))
    comm = s.world.comm
    with s.collective("broadcast_parameters"):
        iterations = comm.bcast(iterations, root=root)
        comm.Bcast(buf, root=root)
    if s.world.rank == root:
        return
    offset, received = 0, []
    for a in arrays:
        received.append(buf[offset : offset + a.size].reshape(a.shape))
        offset += a.size
    for p, value in zip(params, received):
        p.data[...] = value
    if optimizer is not None:
        optimizer.set_state(opt_params, iterations, received[len(params) :])


def allreduce_gradients(params, loss=None):
    """Replaces the gradient (``.grad``) of each of ``params`` by its mean over the ranks,
    with one Allreduce over one contiguous buffer (not one call per tensor).

    Every rank passes the same parameters in the same order. A parameter without a
    gradient on some rank counts as a zero gradient there; one without a gradient on
    every rank keeps ``grad`` None (the optimizer skips it).

    loss: this rank's loss (a number or a one-element Tensor); its mean over the ranks
        travels in the same buffer and is returned. Returns None without it.
    """
    s = _current()
    params = list(params)
    if loss is not None:
        loss = float(getattr(loss, "data", loss))
    if s.world.size == 1:
        return loss
    start = time.perf_counter()
    for p in params:
        if p.grad is not None and p.grad.shape != p.shape:
            raise ValueError(
                f"allreduce_gradients: parameter {p.name or ''} of shape {p.shape} "
                f"has a gradient of shape {p.grad.shape}"
            )
    n = sum(p.size for p in params)
    # Layout: every gradient, then one has-a-gradient flag per parameter, then the loss.
    buf = s.buffer(n + len(params) + 1, np.result_type(np.float32, *(p.dtype for p in params)))
    _flatten(
        [p.grad if p.grad is not None else np.zeros(p.shape, buf.dtype) for p in params],
        buf.dtype,
        out=buf[:n],
    )
    buf[n:-1] = [p.grad is not None for p in params]
    buf[-1] = 0.0 if loss is None else loss
    mpi_start = time.perf_counter()
    with s.collective("allreduce_gradients"):
        s.world.comm.Allreduce(s.mpi.IN_PLACE, buf, op=s.mpi.SUM)
    mpi_seconds = time.perf_counter() - mpi_start
    size, offset = s.world.size, 0
    for p, flag in zip(params, buf[n:-1]):
        if flag > 0:
            p.grad = (
                np.divide(buf[offset : offset + p.size], size)
                .reshape(p.shape)
                .astype(p.dtype, copy=False)
            )
        offset += p.size
    c = s.counters
    c["allreduce_calls"] += 1
    c["allreduce_bytes"] += buf.nbytes
    c["allreduce_seconds"] += mpi_seconds
    c["total_seconds"] += time.perf_counter() - start
    return None if loss is None else float(buf[-1]) / size


def reduce_metrics(metrics):
    """Combines streaming metrics across the ranks: afterwards each rank's metrics hold
    the state of every rank's batches together (counts and confusion matrices added,
    not averaged), so ``result()`` is the global figure. One allgather."""
    s = _current()
    metrics = list(metrics)
    if s.world.size == 1:
        return
    with s.collective("reduce_metrics"):
        gathered = s.world.comm.allgather([m.metric_state for m in metrics])
    for i, m in enumerate(metrics):
        m.reset_state()
        m.merge_state([states[i] for states in gathered])


def _digest(arrays):
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.asarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _disagreeing_ranks(s, value, what):
    with s.collective(what):
        values = s.world.comm.allgather(value)
    return [r for r, v in enumerate(values) if v != values[0]]


def check_synchronized(params, optimizer=None):
    """Raises RuntimeError unless every rank holds bit-identical ``params`` (and, with
    ``optimizer``, the same step count and state for its parameters). One allgather of a
    hash per rank."""
    s = _current()
    if s.world.size == 1:
        return
    arrays = [p.data for p in params]
    if optimizer is not None:
        iterations, state = optimizer.get_state(list(optimizer.params or []))
        arrays += [np.int64(iterations), *state]
    differ = _disagreeing_ranks(s, _digest(arrays), "check_synchronized")
    if differ:
        raise RuntimeError(
            f"the replicas have diverged: rank(s) {differ} hold parameters or optimizer state "
            f"that differ from rank 0's ({len(arrays)} arrays compared). Every rank must take "
            f"the same steps: change the model only through fit(distributed=True) or, in a "
            f"custom loop, step after allreduce_gradients on every rank"
        )


def stats():
    """Communication counters of this process: ``allreduce_calls``, ``allreduce_bytes``,
    ``allreduce_seconds`` (inside MPI's Allreduce, waiting for the slowest rank
    included) and ``total_seconds`` (allreduce_gradients as a whole, with packing)."""
    return dict(_current().counters)


# ---------------------------------------------------------------- data and objects


def check_same_data(what, *arrays):
    """Raises ValueError unless every rank passed the same data: ``fit`` and
    ``evaluate`` shard it themselves. A hash of the shapes and of a sample of rows tells
    one rank's shard from another's."""
    s = _current()
    if s.world.size == 1:
        return
    sample = [np.asarray(a)[:: max(1, len(a) // 16)] for a in arrays]
    differ = _disagreeing_ranks(s, (len(arrays[0]), _digest(sample)), f"{what} (data check)")
    if differ:
        raise ValueError(
            f"{what}(distributed=True): every rank must pass the same, whole data "
            f"(each takes its own shard of it), but rank(s) {differ} passed other "
            f"data than rank 0 ({len(arrays[0])} samples here); to train on data "
            f"already split by rank, write a custom loop with "
            f"allreduce_gradients"
        )


def broadcast_object(value, what, root=0):
    """Rank ``root``'s ``value`` (any picklable object) on every rank."""
    s = _current()
    if s.world.size == 1:
        return value
    with s.collective(what):
        return s.world.comm.bcast(value, root=root)


def shard(world, order, n):
    """This rank's sample positions for one epoch: the epoch's ``order`` (None: in order)
    cut to a multiple of the world size, then every size-th from the rank's own. Every
    rank gets ``n // size`` (the up to size - 1 left over are skipped that epoch), and
    step k of all ranks together trains on positions [k * B * size, (k + 1) * B * size)
    of the order: the batch a single process with batch B * size would take."""
    used = n - n % world.size
    if order is None:
        return np.arange(world.rank, used, world.size)
    return order[:used][world.rank :: world.size]
