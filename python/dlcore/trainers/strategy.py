"""Distribution strategies: how the trainer shares data and gradients among replicas.

The trainer calls one interface and never asks which strategy it has:
:class:`LocalStrategy` (one process: every call is a no-op) or :class:`MPIStrategy`
(data-parallel over the ranks of an MPI job, through :mod:`dlcore.distributed`, which
is the transport). ``fit(..., distributed=True)`` picks the MPI one.
"""

from __future__ import annotations

from dlcore import distributed
from dlcore import random as _random
from dlcore.tensor import no_grad

__all__ = ["LocalStrategy", "MPIStrategy", "get_strategy"]


class LocalStrategy:
    """One process, one replica."""

    replicas = 1
    is_chief = True

    def start_fit(self, model, data, seed):
        """Prepares a fit over ``data`` (an ArrayDataAdapter); returns the seed of the
        epochs' shuffling."""
        return seed

    def shard(self, order, n):
        """This replica's sample positions of an epoch (``order`` None: in order)."""
        return order

    def samples(self, n):
        """How many of n samples this replica trains on per epoch."""
        return n

    def reduce_gradients(self, params, loss):
        """Makes every replica's gradients their mean; returns the mean loss."""
        return loss

    def end_epoch(self, model):
        """Makes the metrics global and checks the replicas agree."""

    def own_range(self, n):
        """The samples [lo, hi) of n this replica evaluates."""
        return 0, n

    def check_same_data(self, what, data):
        """Raises unless every replica passed the same data."""

    def reduce_metrics(self, metrics):
        """Combines the metrics' state over the replicas."""


class MPIStrategy(LocalStrategy):
    """Data-parallel training over the ranks of an MPI job (see :mod:`dlcore.distributed`
    for the launch and the guarantees)."""

    def __init__(self):
        self.world = distributed.init()

    @property
    def replicas(self):
        return self.world.size

    @property
    def is_chief(self):
        return self.world.rank == 0

    def start_fit(self, model, data, seed):
        world = self.world
        if data.num_samples < world.size:
            raise ValueError(
                f"fit(distributed=True): {data.num_samples} training samples cannot be "
                f"shared among {world.size} ranks; each needs at least one"
            )
        if not model.weights:  # not built yet: weights are created on first use
            with no_grad():
                model(data.take(slice(0, 1))[0], training=False)
        if world.size == 1:
            return seed
        self.check_same_data("fit", data)
        distributed.broadcast_parameters(model.weights, optimizer=model.optimizer)
        if seed is None:  # one shuffled order for all: rank 0 draws its seed
            seed = int(_random.generator().integers(2**62)) if self.is_chief else None
            seed = distributed.broadcast_object(seed, "fit (seed)")
        return seed

    def shard(self, order, n):
        return distributed.shard(self.world, order, n)

    def samples(self, n):
        return n // self.world.size

    def reduce_gradients(self, params, loss):
        return distributed.allreduce_gradients(params, loss)

    def end_epoch(self, model):
        distributed.reduce_metrics(model.metrics)
        distributed.check_synchronized(model.weights, model.optimizer)

    def own_range(self, n):
        """A contiguous part of the n samples (sizes differ by at most one)."""
        size, rank = self.world.size, self.world.rank
        return rank * n // size, (rank + 1) * n // size

    def check_same_data(self, what, data):
        distributed.check_same_data(what, *data.leaves())

    def reduce_metrics(self, metrics):
        distributed.reduce_metrics(metrics)


def get_strategy(distributed_fit):
    return MPIStrategy() if distributed_fit else LocalStrategy()
