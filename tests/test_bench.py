"""The benchmark's own code paths (bench/run.py, bench/worker.py, bench/workloads/), at a
size that tests the code and not the speed: DLCORE_BENCH_SMALL shrinks the data."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), os.pardir, "bench")
sys.path.insert(0, BENCH)

import run  # noqa: E402
from workloads import Case, all_workloads  # noqa: E402


def test_every_target_is_a_case():
    keys = {c.key for w in all_workloads() for c in w.cases(False)}
    assert set(run.TARGETS) <= keys, set(run.TARGETS) - keys


def test_worker_batches_one_process_per_training_case():
    by_suite = {w.SUITE: w for w in all_workloads()}
    train, gemm = by_suite["train"], by_suite["gemm"]
    cases = [(train, c) for c in train.cases(False)] + [(gemm, c) for c in gemm.cases(True)]
    torch_batches = run.worker_batches(cases, "torch")
    # the gemm cases share one process; every training case has one of its own
    assert [len(b) for b in torch_batches] == [2, 1, 1, 1, 1]
    keras = run.worker_batches(cases, "keras-jax")
    assert all(len(b) == 1 and b[0].suite == "train" for b in keras)
    assert "train/cnn epoch from a dataset" not in {b[0].key for b in keras}  # Case.impls
    assert run.worker_batches(cases, "numpy") == [[c for w, c in cases if w is gemm]]


def test_summarise_metric_rows_and_markdown():
    by_suite = {w.SUITE: w for w in all_workloads()}
    case = Case("train", "cnn epoch", {"model": "cnn"}, 1e9)
    cases = {case.key: (by_suite["train"], case)}
    raw = {("dlcore", 2, case.key): [1.0, 3.0, 2.0], ("torch", 2, case.key): [4.0, 4.0]}
    extra = {
        ("dlcore", 2, case.key, "peak_rss_mib"): [10.0, 30.0, 20.0],
        ("torch", 2, case.key, "peak_rss_mib"): [50.0],
        ("torch", 2, case.key, "test_acc"): [0.5],
    }
    rows = run.summarise(cases, ["dlcore", "torch"], [2], raw, extra, {2: 100.0})
    assert [r["case"] for r in rows] == [case.key, f"{case.key}: peak RSS growth"]
    assert rows[0]["speedup"] == {"torch": 2.0}
    assert rows[0]["dlcore_gflops"] == pytest.approx(0.5)
    assert rows[1]["median"] == {"dlcore": 20.0, "torch": 50.0}
    assert rows[1]["speedup"] == {"torch": 2.5}
    table = run.markdown_table(rows, ["dlcore", "torch"]).splitlines()
    assert table[0] == "| case | threads | dlcore | torch | vs torch | notes |"
    assert len({line.count("|") for line in table}) == 1
    assert table[2].startswith("| train/cnn epoch | 2 | 2.000 s | 4.000 s | 2.00× |")
    assert "torch test_acc 0.5" in table[2]
    assert table[3] == "| train/cnn epoch: peak RSS growth | 2 | 20.0 MiB | 50.0 MiB | 2.50× |  |"


def test_peak_rss_sees_an_allocation():
    import numpy as np

    from workloads.train import PeakRSS

    memory = PeakRSS()
    memory.start()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    memory.stop()
    del block
    assert 60 <= memory.mib <= 200
    assert memory.total_mib >= memory.mib


def installed(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.slow
def test_run_end_to_end(tmp_path):
    """One round of the new rows, each implementation in its own process, as markdown."""
    impls = ["dlcore"] + [
        i
        for i, mods in (("torch", ["torch"]), ("onnxruntime", ["onnxruntime", "onnx", "torch"]))
        if installed(*mods)
    ]
    rows = "train/mlp epoch,overhead/cnn step,predict/cnn b1 predict"
    env = dict(os.environ, DLCORE_BENCH_SMALL="64")
    cmd = [sys.executable, os.path.join(BENCH, "run.py"), "--filter", rows, "--targets"]
    cmd += ["--impls", ",".join(impls), "--threads", "1", "--rounds", "1", "--repeats", "1"]
    cmd += ["--markdown", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    table = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    cases = [line.split(" | ")[0][2:] for line in table[1:]]
    assert cases == [
        "train/mlp epoch",
        "train/mlp epoch: peak RSS growth",
        "train/mlp epoch: peak RSS total",
        "overhead/cnn step",
        "predict/cnn b1 predict",
    ]
    (doc,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    names = {(e["impl"], e["name"]) for e in doc["extra"]}
    assert ("dlcore", "kernels_per_step_s") in names
    for impl in impls:
        if impl != "onnxruntime":
            assert (impl, "peak_rss_mib") in names
        if impl != "dlcore":  # every output was checked against NumPy's before the timing
            assert (impl, "max_abs_err") in names
    assert len(list(tmp_path.glob("*.md"))) == 1


def test_exclude_leaves_cases_out():
    """--exclude drops the cases it names: with every filtered case excluded, none is left."""
    cmd = [sys.executable, os.path.join(BENCH, "run.py"), "--filter", "train/cnn epoch"]
    cmd += ["--exclude", "train/cnn epoch", "--impls", "dlcore", "--out", ""]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "no case matches --filter 'train/cnn epoch' outside --exclude 'train/cnn epoch'" in (
        out.stderr
    )
