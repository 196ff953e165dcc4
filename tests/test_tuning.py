"""dlcore.tuning: the space's draws and grids, scoring by a split and by k folds, early
stopping, the best model rebuilt, parallel spawn trials sharing the cores, and
resuming an interrupted search from its results file."""

import json

import numpy as np
import pytest

from dlcore import layers, models, ops, optimizers
from dlcore.tuning import Choice, GridSearch, LogRange, RandomSearch, Range

CALLS = []


def data(n=240, seed=0):
    """Two Gaussian blobs in 4-D, labelled 0/1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.standard_normal((n, 4)) + 1.5 * y[:, None]).astype(np.float32)
    return x, y


def build_mlp(hp):
    """Importable (the spawn workers unpickle it by name)."""
    CALLS.append(dict(hp))
    model = models.Sequential([layers.Input((4,)), layers.Dense(hp.get("units", 8), activation="relu"),
                               layers.Dense(2, activation="softmax")])  # fmt: skip
    model.compile(optimizer=optimizers.SGD(learning_rate=hp["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    if hp.get("interrupt_at") == len(CALLS):
        raise KeyboardInterrupt
    return model


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def test_domains_draw_within_bounds_and_make_grids():
    rng = np.random.default_rng(0)
    ints = [Range(2, 5).sample(rng) for _ in range(200)]
    assert set(ints) == {2, 3, 4, 5} and all(isinstance(v, int) for v in ints)
    floats = np.array([Range(0.1, 0.5).sample(rng) for _ in range(500)])
    assert floats.min() >= 0.1 and floats.max() <= 0.5 and floats.std() > 0.1
    logs = np.log10([LogRange(1e-4, 1e-1).sample(rng) for _ in range(2000)])
    assert logs.min() >= -4 and logs.max() <= -1
    assert abs(np.mean(logs < -2.5) - 0.5) < 0.05  # uniform in log scale
    assert Range(1, 7, step=2).grid() == [1, 3, 5, 7]
    assert Range(0.0, 1.0, num=5).grid() == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(LogRange(1e-3, 1e-1, num=3).grid(), [1e-3, 1e-2, 1e-1])
    assert Choice(["a", "b"]).grid() == ["a", "b"]


def test_grid_and_random_trials():
    grid = GridSearch(build_mlp, {"units": [4, 8], "learning_rate": LogRange(1e-3, 1e-1, num=3)})
    trials = grid._trials()
    assert grid.max_trials == 6 and len(trials) == 6
    assert {(hp["units"], round(hp["learning_rate"], 6)) for _, hp in trials} == {
        (u, lr) for u in (4, 8) for lr in (0.001, 0.01, 0.1)
    }
    space = {"units": Range(2, 64), "learning_rate": LogRange(1e-4, 1.0), "act": ["relu", "tanh"]}
    first = RandomSearch(build_mlp, space, max_trials=5, seed=3)._trials()
    assert first == RandomSearch(build_mlp, space, max_trials=5, seed=3)._trials()
    assert first != RandomSearch(build_mlp, space, max_trials=5, seed=4)._trials()
    assert all(json.loads(json.dumps(hp)) == hp for _, hp in first)  # plain JSON values


def test_search_finds_the_learning_rate_that_learns_and_rebuilds_it():
    x, y = data()
    search = GridSearch(build_mlp, {"learning_rate": [1e-6, 0.3]}, objective="val_accuracy")
    results = search.search(x, y, epochs=8, validation_split=0.25, batch_size=16)
    assert [r["hp"]["learning_rate"] for r in results] == [0.3, 1e-6]
    assert results[0]["score"] > 0.85 and results[0]["score"] > results[1]["score"] + 0.05, results
    assert search.best_hp == {"learning_rate": 0.3}
    # the score is the best epoch's validation accuracy on the last quarter
    CALLS.clear()
    model = search.best_model()
    assert CALLS == [{"learning_rate": 0.3}]
    accuracy = model.evaluate(x[180:], y[180:], verbose=0, return_dict=True)["accuracy"]
    assert accuracy > 0.8
    table = search.results_table().splitlines()
    assert table[0].split() == ["trial", "learning_rate", "val_accuracy", "epochs", "seconds"]
    assert table[1].split()[:2] == ["1", "0.3"] and len(table) == 3


def test_cross_validation_scores_every_fold():
    x, y = data(120)
    search = RandomSearch(build_mlp, {"learning_rate": LogRange(0.05, 0.2)}, max_trials=2, cv=3)
    results = search.search(x, y, epochs=3, batch_size=20)
    assert len(CALLS) == 6  # 2 trials x 3 folds
    for r in results:
        assert len(r["fold_scores"]) == 3
        np.testing.assert_allclose(r["score"], np.mean(r["fold_scores"]))
    assert results[0]["score"] <= results[1]["score"]  # val_loss: smaller first


def test_early_stopping_ends_a_trial_that_stopped_improving():
    x, y = data(60)
    search = GridSearch(build_mlp, {"learning_rate": [1e-30]}, patience=2)  # a flat val_loss
    (record,) = search.search(x, y, epochs=20, validation_split=0.5, batch_size=30)
    assert record["epochs_run"] == [3] and record["epochs"] == 1
    (record,) = GridSearch(build_mlp, {"learning_rate": [1e-30]}).search(x, y, epochs=4)
    assert record["epochs_run"] == [4]


def test_an_interrupted_search_resumes_from_its_file(tmp_path):
    x, y = data(80)
    path = tmp_path / "trials.jsonl"
    space = {"learning_rate": [0.01, 0.03, 0.1, 0.3], "interrupt_at": [3]}
    with pytest.raises(KeyboardInterrupt):
        GridSearch(build_mlp, space, results_file=path).search(x, y, epochs=2)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["trial"] for line in lines] == [0, 1]  # the finished ones kept
    with open(path, "a") as f:
        f.write('{"trial": 2, "hp": {"learn')  # a record cut off by a crash mid-write
    CALLS.clear()
    resumed = GridSearch(
        build_mlp, {**space, "interrupt_at": [None]}, results_file=tmp_path / "other"
    )
    resumed.search(x, y, epochs=2)  # the reference: every trial in one go
    reference = {r["trial"]: r["score"] for r in resumed.results}
    CALLS.clear()
    search = GridSearch(build_mlp, {**space, "interrupt_at": [99]}, results_file=path)
    with pytest.raises(ValueError, match="another search's file"):
        search.search(x, y, epochs=2)  # interrupt_at differs: not this file's search
    search = GridSearch(build_mlp, space, results_file=path)
    CALLS.extend(["earlier"] * 3)  # so no trial is the third call: no interrupt this time
    results = search.search(x, y, epochs=2)
    assert [c["learning_rate"] for c in CALLS[3:]] == [0.1, 0.3]  # only the missing trials ran
    assert sorted(r["trial"] for r in results) == [0, 1, 2, 3]
    for r in results:
        np.testing.assert_allclose(r["score"], reference[r["trial"]], rtol=1e-5)
    assert len(path.read_text().splitlines()) == 4 and path.read_text().endswith("\n")


def test_parallel_trials_in_spawned_processes_share_the_cores(tmp_path):
    x, y = data(120)
    space = {"learning_rate": [0.05, 0.1, 0.2, 0.4]}
    path = tmp_path / "parallel.jsonl"
    parallel = GridSearch(build_mlp, space, parallel=2, results_file=path)
    results = parallel.search(x, y, epochs=3)
    assert CALLS == []  # every trial ran in a worker process
    cores = len(__import__("os").sched_getaffinity(0))
    assert {r["threads"] for r in results} == {max(1, cores // 2)}
    assert len(path.read_text().splitlines()) == 4
    serial = GridSearch(build_mlp, space).search(x, y, epochs=3)
    assert {r["threads"] for r in serial} == {ops.get_num_threads()}
    by_trial = {r["trial"]: r["score"] for r in serial}
    for r in results:
        np.testing.assert_allclose(r["score"], by_trial[r["trial"]], rtol=1e-4)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RandomSearch(build_mlp, {}), "non-empty dict"),
        (lambda: RandomSearch(build_mlp, {"a": 3}), "Choice, Range, LogRange"),
        (lambda: RandomSearch(build_mlp, {"a": [1]}, max_trials=0), "max_trials"),
        (lambda: RandomSearch(build_mlp, {"a": [1]}, cv=1), "cv must be"),
        (lambda: RandomSearch(build_mlp, {"a": [1]}, parallel=0), "parallel"),
        (lambda: RandomSearch(build_mlp, {"a": [1]}, mode="best"), "mode"),
        (lambda: LogRange(0, 1), "low must be > 0"),
        (lambda: Range(3, 1), "low must be <= high"),
        (lambda: Choice([]), "must not be empty"),
        (lambda: RandomSearch(build_mlp, {"a": [1]}).best_model(), "no finished trials"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_search_calls():
    x, y = data(40)
    search = GridSearch(build_mlp, {"learning_rate": [0.1]}, objective="val_nope")
    with pytest.raises(ValueError, match="'val_nope' is not in the History"):
        search.search(x, y, epochs=1)
    with pytest.raises(ValueError, match="validation_split"):
        search.search(x, y, validation_split=0)
    with pytest.raises(ValueError, match="x has 40 samples but y has 39"):
        search.search(x, y[:-1])
