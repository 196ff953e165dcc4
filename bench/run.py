"""Side-by-side benchmark: dlcore against NumPy, PyTorch CPU and, where installed, Keras 3
on JAX and on TensorFlow and ONNX Runtime, on this machine.

Each implementation runs in a process of its own (their OpenMP pools would otherwise
compete for the cores), the implementations alternate over several rounds, and every
figure is a median over all repeats of all rounds. "% peak" is against the fp32 FMA
throughput measured on this machine by the same thread count.

    python bench/run.py                       # everything, 1 and 2 threads
    python bench/run.py --quick               # a reduced set, under two minutes
    python bench/run.py --filter conv --threads 2 --rounds 5
    python bench/run.py --filter gemm,conv,pool,lstm/   # the kernels, no training
    python bench/run.py --filter train/,predict/ --threads 2 --rounds 5   # against the peers
    python bench/run.py --targets --rounds 3 --markdown   # the performance targets' rows

The peers (keras-jax, keras-tf, onnxruntime) are columns when their packages are
installed and are left out with a note otherwise; they run only the training epochs and
predict rows (onnxruntime: predict, on models exported from PyTorch, so it needs torch).

Two dlcore builds side by side: --also NAME=SPEC adds a column NAME that runs dlcore again
in its own process, with SPEC's environment variables and Python interpreter (either may
be left out), and "vs NAME" is NAME's time over the first dlcore's:

    python bench/run.py --impls dlcore --also "old=/path/to/other-venv/bin/python"
    python bench/run.py --impls dlcore --also "baseline=DLCORE_ISA=baseline"

A build that lacks a case (an older one without dlcore.utils.PyDataset, say) fails that
case's worker and so the run: leave such cases out with --exclude "from a dataset".

Besides the figures, a case may report per-process metrics: the training epochs give
each process's peak resident memory during the epochs, above its resident memory before
the model is built ("peak RSS growth") and in all ("peak RSS total"), as rows of their
own whose "vs X" is X's MiB over dlcore's. The overhead rows time dlcore alone: its
framework time per training step (wall time minus kernel time, from dlcore.profile).

Writes bench/results/<date>-<host>.json (machine, versions, every raw repeat), the table
as markdown (.md) and, with matplotlib installed, a bar chart of the speedups beside it.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import all_workloads  # noqa: E402

# The modules each implementation needs (looked up, not imported: TensorFlow's import
# takes seconds). Keras runs on the backend its worker sets in KERAS_BACKEND.
MODULE_OF = {
    "dlcore": ("dlcore",),
    "numpy": ("numpy",),
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime", "onnx", "torch"),
    "keras-jax": ("keras", "jax"),
    "keras-tf": ("keras", "tensorflow"),
}
DEFAULT_IMPLS = "dlcore,numpy,torch,onnxruntime,keras-jax,keras-tf"
# The packages whose versions the results record (distribution names; first found wins).
VERSIONED = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "onnxruntime": ("onnxruntime",),
    "onnx": ("onnx",),
    "keras": ("keras",),
    "jax": ("jax",),
    "jaxlib": ("jaxlib",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
}
# --also: name -> (interpreter, extra environment) of a further dlcore build.
ALSO = {}
# --targets: the rows of the performance targets (the case keys, exactly). The peak RSS
# rows come with the training epochs (a workload's METRICS, see summarise).
TARGETS = (
    "train/cnn epoch",
    "train/mlp epoch",
    "train/lstm epoch",
    "overhead/cnn step",
    "gemm/sgemm 1024",
    "gemm/sgemm 2048",
    "predict/cnn b1 predict",
    "predict/cnn b1000 predict",
    "predict/lstm 64x128x256x50 call",
)
# The extras a markdown table shows in its notes column.
NOTES = ("test_acc", "test_mse", "wall_per_step_s", "kernels_per_step_s")


def parse_also(spec):
    """'NAME=[VAR=VALUE ...] [PYTHON]' -> (NAME, (python, {VAR: VALUE}))."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or name in MODULE_OF:
        sys.exit(
            f"--also {spec!r}: expected NAME=[VAR=VALUE ...] [PYTHON], NAME not {set(MODULE_OF)}"
        )
    python, env = sys.executable, {}
    for token in shlex.split(rest):
        if "=" in token:
            var, _, value = token.partition("=")
            env[var] = value
        else:
            python = token
    return name, (python, env)


def kind(impl):
    """The implementation a worker runs: a --also column runs dlcore."""
    return "dlcore" if impl in ALSO else impl


def python_says(code, env=None, impl=None):
    python, extra = ALSO.get(impl, (sys.executable, {}))
    env = dict(env if env is not None else os.environ, **extra)
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    return out.stdout.strip() if out.returncode == 0 else None


def available(impl):
    if kind(impl) not in MODULE_OF:
        sys.exit(f"--impls: unknown implementation {impl!r}; known: {', '.join(MODULE_OF)}")
    modules = MODULE_OF[kind(impl)]
    code = (
        "import importlib.util, sys; "
        f"sys.exit(any(importlib.util.find_spec(m) is None for m in {modules!r}))"
    )
    return python_says(code, impl=impl) is not None


def package_versions():
    """{package: version} of the packages in VERSIONED that are installed."""
    code = (
        "import json; from importlib import metadata\n"
        "def v(names):\n"
        "    for n in names:\n"
        "        try:\n"
        "            return metadata.version(n)\n"
        "        except metadata.PackageNotFoundError:\n"
        "            pass\n"
        f"print(json.dumps({{k: v(n) for k, n in {VERSIONED!r}.items()}}))"
    )
    out = python_says(code)
    return {k: v for k, v in json.loads(out).items() if v} if out else {}


def machine_info():
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        cpu = re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
        flags = sorted(
            set(re.search(r"flags\s*:\s*(.*)", text).group(1).split())
            & {
                "sse4_2",
                "avx",
                "avx2",
                "fma",
                "f16c",
                "avx512f",
                "avx512bw",
                "avx512_vnni",
                "amx_tile",
            }
        )
    except (OSError, AttributeError):
        pass
    info = {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "isa": flags,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    versions = python_says(
        "import json, dlcore, numpy; print(json.dumps({'dlcore': "
        "dlcore.__version__, 'build': dlcore.build_info, "
        "'numpy': numpy.__version__}))"
    )
    if versions:
        v = json.loads(versions)
        info.update(
            dlcore=v["dlcore"],
            numpy=v["numpy"],
            compiler=v["build"]["compiler"],
            dlcore_build=v["build"],
        )
    info["torch"] = python_says("import torch; print(torch.__version__)")
    info["packages"] = package_versions()
    return info


def measure_peak(threads):
    code = f"from dlcore import ops; print(max(ops.peak_gflops({threads}, 0.3) for _ in range(3)))"
    out = python_says(code, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    return float(out) if out else None


def run_worker(impl, threads, cases, repeats):
    python, extra = ALSO.get(impl, (sys.executable, {}))
    env = dict(os.environ, **extra)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if impl.startswith("keras-"):
        env["KERAS_BACKEND"] = {"keras-jax": "jax", "keras-tf": "tensorflow"}[impl]
    payload = json.dumps([[c.suite, c.name, c.params] for c in cases])
    cmd = [
        python,
        os.path.join(HERE, "worker.py"),
        "--impl",
        kind(impl),
        "--threads",
        str(threads),
        "--repeats",
        str(repeats),
        payload,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{impl} worker failed:\n{out.stderr}")
    return json.loads(out.stdout)


def worker_batches(cases, impl):
    """The cases impl runs, split into one list per worker process: one for all the cases
    of ordinary workloads, one per case of a workload marked ONE_PROCESS_PER_CASE."""
    shared, alone = [], []
    for w, c in cases:
        if impl in (c.impls or w.IMPLS):
            (alone if getattr(w, "ONE_PROCESS_PER_CASE", False) else shared).append(c)
    return ([shared] if shared else []) + [[c] for c in alone]


def fmt_time(s):
    if s >= 1:
        return f"{s:9.3f} s "
    return f"{s * 1e3:9.3f} ms" if s >= 1e-3 else f"{s * 1e6:9.1f} us"


def summarise(cases, impls, threads_list, raw, extra, peaks):
    """One row per case and thread count (median seconds, dlcore's GFLOP/s, the speedups),
    and one more per metric the case's workload names in METRICS (a per-process value
    every implementation reports as an extra, such as a peak resident memory; its
    'speedup' is the same other / dlcore ratio)."""
    rows = []
    for key, (workload, case) in cases.items():
        for threads in threads_list:
            med = {
                i: statistics.median(raw[(i, threads, key)])
                for i in impls
                if (i, threads, key) in raw
            }
            if not med:
                continue
            row = {"case": key, "threads": threads, "median_seconds": med}
            if "dlcore" in med and case.flops:
                row["dlcore_gflops"] = case.flops / med["dlcore"] / 1e9
                if peaks.get(threads):
                    row["percent_of_peak"] = 100 * row["dlcore_gflops"] / peaks[threads]
            row["speedup"] = ratios(med)
            row["extra"] = {
                f"{i} {n}": statistics.median(v)
                for (i, t, k, n), v in sorted(extra.items())
                if t == threads and k == key
            }
            rows.append(row)
            for name, (label, unit) in getattr(workload, "METRICS", {}).items():
                values = {
                    i: statistics.median(extra[(i, threads, key, name)])
                    for i in impls
                    if (i, threads, key, name) in extra
                }
                if values:
                    rows.append(
                        dict(
                            case=f"{key}: {label}",
                            threads=threads,
                            median=values,
                            unit=unit,
                            speedup=ratios(values),
                            extra={},
                        )
                    )
    return rows


def ratios(values):
    """{other: other's value / dlcore's} (> 1: dlcore takes less)."""
    if not values.get("dlcore"):
        return {}
    return {o: v / values["dlcore"] for o, v in values.items() if o != "dlcore"}


def fmt_value(row, impl):
    """The row's figure for impl: a time, or a metric in its unit."""
    if "median_seconds" in row:
        return fmt_time(row["median_seconds"][impl]).strip()
    return f"{row['median'][impl]:.1f} {row['unit']}"


def has(row, impl):
    return impl in row.get("median_seconds", row.get("median", {}))


def print_table(rows, impls):
    others = [i for i in impls if i != "dlcore"]
    head = f"{'case':<34}{'thr':>4}" + "".join(f"{i:>13}" for i in impls)
    head += f"{'GFLOP/s':>9}{'% peak':>8}" + "".join(f"{'vs ' + o:>10}" for o in others)
    print(head)
    print("-" * len(head))
    for r in rows:
        line = f"{r['case']:<34}{r['threads']:>4}"
        line += "".join(f"{fmt_value(r, i) if has(r, i) else '-':>13}" for i in impls)
        gf = r.get("dlcore_gflops")
        line += f"{gf:>9.1f}" if gf else f"{'':>9}"
        pk = r.get("percent_of_peak")
        line += f"{pk:>7.0f}%" if pk else f"{'':>8}"
        line += "".join(
            f"{r['speedup'][o]:>9.2f}x" if o in r["speedup"] else f"{'-':>10}" for o in others
        )
        if r["extra"]:
            line += "   " + ", ".join(f"{k} {v:.4g}" for k, v in r["extra"].items())
        print(line)


def markdown_table(rows, impls):
    """The rows as a markdown table: every implementation's figure, then 'vs X' (X's
    figure / dlcore's: above 1, dlcore is faster or smaller), then the scores."""
    others = [i for i in impls if i != "dlcore"]
    head = ["case", "threads", *impls, *(f"vs {o}" for o in others), "notes"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
    for r in rows:
        cells = [r["case"], str(r["threads"])]
        cells += [fmt_value(r, i) if has(r, i) else "-" for i in impls]
        cells += [f"{r['speedup'][o]:.2f}×" if o in r["speedup"] else "-" for o in others]
        notes = [f"{k} {v:.4g}" for k, v in r["extra"].items() if k.split(" ", 1)[-1] in NOTES]
        cells.append(", ".join(notes))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, impls, path, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart; pip install 'dlcore[bench]')")
        return None
    others = [i for i in impls if i != "dlcore"]
    shown = [r for r in rows if r["speedup"] and "median_seconds" in r]
    if not shown:
        return None
    labels = [f"{r['case'].split('/', 1)[1]} ({r['threads']}t)" for r in shown]
    fig, ax = plt.subplots(figsize=(max(8, 0.42 * len(shown) + 2), 5))
    width = 0.8 / max(len(others), 1)
    for j, o in enumerate(others):
        xs = [i + (j - (len(others) - 1) / 2) * width for i in range(len(shown))]
        ys = [r["speedup"].get(o, 0) for r in shown]
        ax.bar(xs, ys, width, label=f"dlcore vs {o}")
    ax.axhline(1.0, color="black", lw=1)
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("speedup (other time / dlcore time)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--filter",
        default="",
        help="only cases whose 'suite/name' contains this (comma-separated: any of these)",
    )
    p.add_argument(
        "--exclude",
        default="",
        help="leave out cases whose 'suite/name' contains this (comma-separated: any of these)",
    )
    p.add_argument("--threads", default=None, help="comma-separated thread counts (1,2)")
    p.add_argument("--rounds", type=int, default=None, help="rounds over the implementations")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per case per round")
    p.add_argument("--quick", action="store_true", help="a reduced set, under two minutes")
    p.add_argument(
        "--targets",
        action="store_true",
        help="only the rows of the performance targets: the cnn, mlp and lstm training "
        "epochs (with each process's peak RSS), dlcore's framework time per cnn step, sgemm "
        "1024 and 2048, predict of the cnn at batch 1 and 1000, the LSTM forward alone "
        "(2 threads unless --threads; --filter narrows them further)",
    )
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the table as markdown (it is also written beside the JSON)",
    )
    p.add_argument(
        "--impls",
        default=DEFAULT_IMPLS,
        help="comma-separated; those not installed are left out with a note",
    )
    p.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a further dlcore build as column NAME: SPEC is [VAR=VALUE ...] [PYTHON]",
    )
    p.add_argument(
        "--out",
        default=os.path.join(HERE, "results"),
        help="directory for the JSON and the chart ('' for none)",
    )
    args = p.parse_args()

    default_threads = "2" if args.quick or args.targets else "1,2"
    threads_list = [int(t) for t in (args.threads or default_threads).split(",")]
    rounds = args.rounds or (2 if args.quick else 5)
    repeats = 2 if args.quick and args.repeats == 3 else args.repeats
    ALSO.update(parse_also(spec) for spec in args.also)
    wanted = [i for i in args.impls.split(",") if i] + list(ALSO)
    impls = [i for i in wanted if available(i)]
    for missing in sorted(set(wanted) - set(impls)):
        needs = " and ".join(MODULE_OF.get(kind(missing), ()))
        print(f"note: {missing} needs {needs}, not all installed: left out", file=sys.stderr)

    cases = {}
    for w in all_workloads():
        for c in w.cases(args.quick):
            excluded = any(e in c.key for e in args.exclude.split(",") if e)
            if any(f in c.key for f in args.filter.split(",")) and not excluded:
                if c.key in TARGETS or not args.targets:
                    cases[c.key] = (w, c)
    if not cases:
        sys.exit(
            f"no case matches --filter {args.filter!r}"
            + f" outside --exclude {args.exclude!r}" * bool(args.exclude)
            + " among --targets" * args.targets
        )

    machine = machine_info()
    peaks = {t: measure_peak(t) for t in threads_list} if "dlcore" in impls else {}
    raw, extra = {}, {}  # (impl, threads, key) -> [seconds]; (impl, threads, key, name) -> [v]
    for threads in threads_list:
        for r in range(rounds):
            order = impls[r % len(impls) :] + impls[: r % len(impls)]
            for impl in order:
                for batch in worker_batches(cases.values(), kind(impl)):
                    for key, res in run_worker(impl, threads, batch, repeats).items():
                        raw.setdefault((impl, threads, key), []).extend(res["seconds"])
                        for name, value in res.get("extra", {}).items():
                            extra.setdefault((impl, threads, key, name), []).append(value)
            print(f"threads={threads} round {r + 1}/{rounds} done", file=sys.stderr)

    rows = summarise(cases, impls, threads_list, raw, extra, peaks)
    print(
        f"{machine['cpu']}, {machine['cores']} cores; measured peak "
        + ", ".join(
            f"{t} thread{'s' * (t > 1)} {peaks[t]:.0f} GFLOP/s"
            for t in threads_list
            if peaks.get(t)
        )
    )
    table = markdown_table(rows, impls)
    if args.markdown:
        print(table)
    else:
        print_table(rows, impls)
    print(
        f"\nmedians of {rounds} rounds x {repeats} repeats; 'vs X' = X's figure / dlcore's "
        f"(> 1: dlcore faster, or smaller); % peak of the measured FMA throughput at that "
        f"thread count"
    )

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        stem = os.path.join(args.out, f"{datetime.date.today().isoformat()}-{socket.gethostname()}")
        doc = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "machine": machine,
            "peak_gflops": {str(t): v for t, v in peaks.items()},
            "also": {
                name: {
                    "python": python,
                    "env": env,
                    "build": json.loads(
                        python_says(
                            "import json, dlcore; print(json.dumps(dlcore.build_info))", impl=name
                        )
                        or "null"
                    ),
                }
                for name, (python, env) in ALSO.items()
            },
            "rounds": rounds,
            "repeats": repeats,
            "summary": rows,
            "raw": [
                {"impl": i, "threads": t, "case": k, "seconds": v} for (i, t, k), v in raw.items()
            ],
            "extra": [
                {"impl": i, "threads": t, "case": k, "name": n, "values": v}
                for (i, t, k, n), v in extra.items()
            ],
        }
        with open(stem + ".json", "w") as f:
            json.dump(doc, f, indent=1)
        with open(stem + ".md", "w") as f:
            f.write(f"{machine['cpu']}, {machine['cores']} cores; `{doc['command']}`\n\n")
            f.write(table + "\n")
        chart = plot(
            rows,
            impls,
            stem + ".png",
            f"dlcore speedups, {machine['cpu']} ({machine['cores']} cores), {doc['date'][:10]}",
        )
        print(f"wrote {stem}.json, {stem}.md" + (f" and {chart}" if chart else ""))


if __name__ == "__main__":
    main()
