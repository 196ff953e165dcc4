"""dlcore.distributed: data-parallel training over MPI.

The tests marked ``mpi`` launch ``mpiexec -n 2 python tests/_distributed_worker.py CASE``
(or an example) in a subprocess with a timeout and compare what the ranks wrote with a
single-process reference computed here. They skip, saying why, only when mpi4py or an
MPI launcher is not installed (``pip install 'dlcore[mpi]'``); CI installs both.
"""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import dlcore
from _distributed_worker import GRADIENT_BATCH, blobs, mlp
from dlcore import distributed, optimizers

WORKER = os.path.join(os.path.dirname(__file__), "_distributed_worker.py")
RANKS = 2


def _mpiexec():
    beside_python = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside_python if os.path.exists(beside_python) else shutil.which("mpiexec")


def mpirun(*args, timeout=120, env=None):
    """Runs ``mpiexec -n 2 python ARGS``; returns (CompletedProcess, seconds). Fails the
    test, after killing the launcher and its ranks, when it takes over ``timeout`` s."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed: pip install 'dlcore[mpi]'")
    launcher = _mpiexec()
    if launcher is None:
        pytest.skip("no MPI launcher (mpiexec) found: pip install 'dlcore[mpi]' or a system MPI")
    # Hydra (MPICH) starts local ranks itself; fork says so even where ssh is missing.
    env = {**os.environ, "HYDRA_LAUNCHER": "fork", **(env or {})}
    cmd = [launcher, "-n", str(RANKS), sys.executable, *args]
    start = time.monotonic()
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"{' '.join(cmd)} still ran after {timeout} s:\n{stdout}\n{stderr}")
    return (
        subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr),
        time.monotonic() - start,
    )


def fair_share():
    """The threads each of the ranks gets on this machine (nothing binds them here)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores // RANKS)


def run_worker(case, out, **kwargs):
    proc, _ = mpirun(WORKER, case, str(out), **kwargs)
    assert proc.returncode == 0, f"worker {case} failed:\n{proc.stdout}\n{proc.stderr}"
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(RANKS)]


# ---------------------------------------------------------------- a world of one


@pytest.fixture
def fresh_world(monkeypatch):
    """A distributed module that has not been initialised yet (restored afterwards)."""
    monkeypatch.setattr(distributed, "_session", None)


def test_without_mpi4py_the_world_is_this_process(fresh_world, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `import mpi4py` fail
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    world = distributed.init()
    assert (world.rank, world.size, world.local_size, world.comm) == (0, 1, 1, None)
    assert distributed.init() is world
    w = dlcore.Tensor(np.ones(3, np.float32), requires_grad=True)
    w.grad = np.arange(3, dtype=np.float32)
    assert distributed.allreduce_gradients([w], loss=2.5) == 2.5
    np.testing.assert_array_equal(w.grad, [0, 1, 2])  # left alone
    distributed.broadcast_parameters([w])
    distributed.check_synchronized([w])
    assert distributed.stats()["allreduce_calls"] == 0


def test_a_launcher_without_mpi4py_is_an_error(fresh_world, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("PMI_SIZE", "4")
    with pytest.raises(
        ImportError,
        match=r"one of 4 .* mpi4py is not installed: "
        r"pip install 'dlcore\[mpi\]'",
    ):
        distributed.init()


def test_timeout_must_be_positive(fresh_world, monkeypatch):
    with pytest.raises(ValueError, match="timeout must be > 0 seconds, got -1"):
        distributed.init(timeout=-1)
    monkeypatch.setenv("DLCORE_DISTRIBUTED_TIMEOUT", "soon")
    with pytest.raises(
        ValueError,
        match=r"DLCORE_DISTRIBUTED_TIMEOUT must be a number of "
        r"seconds > 0, got 'soon'",
    ):
        distributed.init()


def test_importing_dlcore_does_not_import_mpi4py():
    code = "import sys, dlcore, dlcore.models; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_shards_are_disjoint_equal_and_make_the_global_batches():
    order = np.random.default_rng(0).permutation(11)
    shards = [distributed.shard(distributed.World(rank=r, size=3), order, 11) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # 11 // 3; two left over this epoch
    assert sorted(np.concatenate(shards)) == sorted(order[:9])
    # step k of all ranks (batch 2 each) is the slice [6k, 6k + 6) of the order
    assert sorted(np.concatenate([s[0:2] for s in shards])) == sorted(order[0:6])
    np.testing.assert_array_equal(
        distributed.shard(distributed.World(rank=1, size=3), None, 11), [1, 4, 7]
    )


def test_one_rank_distributed_fit_matches_a_plain_fit():
    x, y = blobs(120)
    plain, dist = mlp(seed=1), mlp(seed=1)
    h1 = plain.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=3, validation_split=0.25)
    h2 = dist.fit(
        x, y, epochs=2, batch_size=16, verbose=0, seed=3, validation_split=0.25, distributed=True
    )
    assert h1.history == h2.history
    for a, b in zip(plain.get_weights(), dist.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert plain.evaluate(x, y, verbose=0) == dist.evaluate(x, y, verbose=0, distributed=True)


# ---------------------------------------------------------------- two ranks under mpiexec


def test_replicas_are_bit_identical_and_rank_0_alone_writes(tmp_path):
    ranks = run_worker("identical", tmp_path)
    assert any((ranks[0][f"initial{i}"] != ranks[1][f"initial{i}"]).any() for i in range(4))
    for key, value in ranks[0].items():
        if not key.startswith("initial"):
            assert np.array_equal(value, ranks[1][key]), f"{key} differs between the ranks"
    assert ranks[0]["iterations"] == 2 * 8  # 2 epochs of ceil(120 / 16) steps
    assert not np.array_equal(ranks[0]["w0"], ranks[0]["initial0"])  # it did train
    assert int(ranks[0]["threads"]) == fair_share()
    # checkpoints and progress from rank 0 only
    assert (tmp_path / "ckpt-rank0.dlc").exists() and not (tmp_path / "ckpt-rank1.dlc").exists()
    progress = (tmp_path / "stdout0.txt").read_text().splitlines()
    assert len(progress) == 3 and progress[1].startswith("Epoch 2/2 - 8/8")
    assert (tmp_path / "stdout1.txt").read_text() == ""
    # evaluate(distributed=True): the figure over the whole test set, not a rank's part
    model = mlp(seed=0)
    model.set_weights([ranks[0][f"w{i}"] for i in range(4)])
    expected = model.evaluate(*blobs(101, seed=1), verbose=0)
    np.testing.assert_allclose(ranks[0]["evaluation"], expected, rtol=1e-6)
    assert f"{expected[1]:.4f}" in progress[2]


def test_averaged_gradient_equals_the_union_batch_gradient(tmp_path):
    ranks = run_worker("gradient", tmp_path)
    x, y = blobs(GRADIENT_BATCH, seed=2, dtype=np.float64)
    model = mlp(seed=0, dtype="float64")
    loss = model.compute_loss(y=y, y_pred=model(x, training=True))
    loss.backward()
    for i, p in enumerate(model.trainable_weights):
        for rank in ranks:
            np.testing.assert_allclose(rank[f"grad{i}"], p.grad, rtol=1e-12, atol=1e-15)
    assert float(ranks[0]["loss"]) == pytest.approx(float(loss.data), rel=1e-13)
    # A 2-rank fit with batch 16 per rank takes the steps of one process with batch 32.
    fx, fy = blobs(200, seed=3, dtype=np.float64)
    single = mlp(seed=0, dtype="float64", optimizer=optimizers.SGD(0.05, momentum=0.9))
    history = single.fit(fx, fy, epochs=2, batch_size=32, verbose=0, seed=7)
    for i, w in enumerate(single.get_weights()):
        np.testing.assert_allclose(ranks[0][f"w{i}"], w, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(ranks[1]["history_loss"], history.history["loss"], rtol=1e-10)
    np.testing.assert_array_equal(ranks[1]["history_accuracy"], history.history["accuracy"])


def test_two_ranks_learn_mnist_as_well_as_one(mnist_dir):
    from dlcore.examples import mnist_mlp

    one = mnist_mlp.main(["--quick", "--data", mnist_dir])
    # batch 64 on each of 2 ranks: the global batch of the single process (128)
    proc, _ = mpirun(
        "-m",
        "dlcore.examples.mnist_mlp",
        "--quick",
        "--data",
        mnist_dir,
        "--distributed",
        "--batch-size",
        "64",
    )
    assert proc.returncode == 0, proc.stderr
    found = re.findall(r"test accuracy: (\d\.\d+)", proc.stdout)
    assert len(found) == 1, f"expected one report, from rank 0:\n{proc.stdout}"
    assert float(found[0]) > 0.9 and abs(float(found[0]) - one["test_accuracy"]) < 0.01
    assert proc.stdout.count("Epoch 5/5") == 1
    # the README's command, on the quick slice (and the quick run's global batch, 32)
    proc, _ = mpirun(
        "-m",
        "dlcore.examples.mnist_cnn",
        "--quick",
        "--data",
        mnist_dir,
        "--distributed",
        "--batch-size",
        "16",
    )
    assert proc.returncode == 0, proc.stderr
    found = re.findall(r"test accuracy: (\d\.\d+)", proc.stdout)
    assert len(found) == 1 and float(found[0]) > 0.9, proc.stdout
    assert f", {fair_share()} threads; 3000 training" in proc.stdout


@pytest.mark.parametrize(
    "how, says",
    [
        ("raise", r"rank 1 of 2: an uncaught RuntimeError stopped this rank"),
        ("kill", r"Killed \(signal 9\)|exited on signal 9"),  # MPI's own report (MPICH, Open MPI)
        (
            "hang",
            r"rank 0 of 2: allreduce_gradients has waited 3 s for the other ranks: one of "
            r"them has died or is stuck",
        ),
    ],
)
def test_a_dying_rank_ends_the_job_with_a_clear_error(tmp_path, how, says):
    proc, seconds = mpirun(
        WORKER, f"die-{how}", str(tmp_path), timeout=60, env={"WORKER_TIMEOUT": "3"}
    )
    assert proc.returncode != 0
    assert re.search(says, proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert seconds < 30


def test_omp_num_threads_wins_over_the_fair_share(tmp_path):
    ranks = run_worker("identical", tmp_path, env={"OMP_NUM_THREADS": "3"})
    assert [int(r["threads"]) for r in ranks] == [3, 3]
