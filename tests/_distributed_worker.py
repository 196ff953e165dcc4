"""One rank of the distributed tests: ``mpiexec -n 2 python _distributed_worker.py CASE OUT``.

Each case writes what the test compares into OUT (one ``rank<r>.npz`` per rank); the test
process (tests/test_distributed.py) rebuilds the same data and models from the helpers
here and computes its references in a single process.
"""

import os
import signal
import sys
import time

import numpy as np

import dlcore
from dlcore import callbacks, distributed, layers, losses, models, optimizers


def blobs(n, seed=0, dtype=np.float32):
    """Three Gaussian blobs in 4-D, the same on every rank."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4)) * 0.8 + np.eye(4)[y] * 2
    return x.astype(dtype), y


def mlp(seed, dtype="float32", optimizer=None, dropout=0.0):
    dlcore.set_random_seed(seed)
    hidden = [layers.Dense(16, activation="relu", input_shape=(4,), dtype=dtype)]
    if dropout:
        hidden.append(layers.Dropout(dropout, dtype=dtype))
    m = models.Sequential([*hidden, layers.Dense(3, activation="softmax", dtype=dtype)])
    m.compile(
        optimizer=optimizer or optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", "f1"],
    )
    return m


def optimizer_arrays(opt, prefix=""):
    iterations, state = opt.get_state(opt.params)
    return {
        f"{prefix}iterations": np.int64(iterations),
        **{f"{prefix}slot{i}": a for i, a in enumerate(state)},
    }


def weight_arrays(model, prefix="w"):
    return {f"{prefix}{i}": w for i, w in enumerate(model.get_weights())}


def case_identical(world, out):
    """fit and a custom loop, from different initial weights and with different dropout
    masks on each rank; checkpoints and progress are left to rank 0."""
    sys.stdout = open(os.path.join(out, f"stdout{world.rank}.txt"), "w")
    x, y = blobs(300)
    model = mlp(seed=world.rank, dropout=0.2)  # a different start on every rank
    initial = weight_arrays(model, "initial")
    checkpoint = callbacks.ModelCheckpoint(os.path.join(out, f"ckpt-rank{world.rank}.dlc"))
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        verbose=2,
        callbacks=[checkpoint],
        validation_split=0.2,
        distributed=True,
    )
    test_x, test_y = blobs(101, seed=1)
    evaluation = model.evaluate(test_x, test_y, distributed=True, verbose=1)

    loop = mlp(seed=10 + world.rank)
    opt = optimizers.SGD(0.05, momentum=0.9, params=loop.trainable_weights)
    distributed.broadcast_parameters(loop.weights, optimizer=opt)
    loss_fn = losses.SparseCategoricalCrossentropy()
    mine = slice(world.rank * 150, (world.rank + 1) * 150)  # data already split by rank
    for step in range(12):
        batch = slice(mine.start + step * 10, mine.start + (step + 1) * 10)
        opt.zero_grad()
        loss_fn(y[batch], loop(x[batch], training=True)).backward()
        distributed.allreduce_gradients(opt.params)
        opt.step()
    sys.stdout.close()
    np.savez(
        os.path.join(out, f"rank{world.rank}.npz"),
        **initial,
        **weight_arrays(model),
        **optimizer_arrays(model.optimizer),
        **weight_arrays(loop, "loop"),
        **optimizer_arrays(opt, "loop_"),
        evaluation=np.array(evaluation),
        threads=np.int64(dlcore.ops.get_num_threads()),
    )


GRADIENT_BATCH = 24


def case_gradient(world, out):
    """float64: the gradient averaged over the ranks' halves of a batch, and a whole
    distributed fit (batch 16 per rank)."""
    x, y = blobs(GRADIENT_BATCH, seed=2, dtype=np.float64)
    model = mlp(seed=0, dtype="float64")
    part = slice(world.rank * GRADIENT_BATCH // 2, (world.rank + 1) * GRADIENT_BATCH // 2)
    loss = model.compute_loss(y=y[part], y_pred=model(x[part], training=True))
    loss.backward()
    mean_loss = distributed.allreduce_gradients(model.trainable_weights, loss)
    grads = {f"grad{i}": p.grad for i, p in enumerate(model.trainable_weights)}

    fx, fy = blobs(200, seed=3, dtype=np.float64)
    trained = mlp(seed=world.rank, dtype="float64", optimizer=optimizers.SGD(0.05, momentum=0.9))
    history = trained.fit(fx, fy, epochs=2, batch_size=16, verbose=0, seed=7, distributed=True)
    np.savez(
        os.path.join(out, f"rank{world.rank}.npz"),
        **grads,
        loss=np.float64(mean_loss),
        **weight_arrays(trained),
        history_loss=np.array(history.history["loss"]),
        history_accuracy=np.array(history.history["accuracy"]),
    )


def case_die(world, out, how):
    """Rank 1 fails at its fourth step in the way ``how`` says; the job must end."""

    class Fail(callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if world.rank == 1 and batch == 3:
                if how == "raise":
                    raise RuntimeError("rank 1 fails on purpose")
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if how == "hang":
                    time.sleep(3600)

    x, y = blobs(2000)
    mlp(seed=0).fit(
        x, y, epochs=1000, batch_size=8, verbose=0, callbacks=[Fail()], distributed=True
    )


def main():
    case, out = sys.argv[1], sys.argv[2]
    world = distributed.init(timeout=float(os.environ.get("WORKER_TIMEOUT", "60")))
    if case.startswith("die-"):
        case_die(world, out, case[4:])
    else:
        {"identical": case_identical, "gradient": case_gradient}[case](world, out)


if __name__ == "__main__":
    main()
