"""Side-by-side benchmark: dlcore against NumPy and PyTorch CPU on this machine.

Each implementation runs in a process of its own (their OpenMP pools would otherwise
compete for the cores), the implementations alternate over several rounds, and every
figure is a median over all repeats of all rounds. "% peak" is against the fp32 FMA
throughput measured on this machine by the same thread count.

    python bench/run.py                       # everything, 1 and 2 threads
    python bench/run.py --quick               # a reduced set, under two minutes
    python bench/run.py --filter conv --threads 2 --rounds 5
    python bench/run.py --filter gemm,conv,pool,lstm/   # the kernels, no training

Two dlcore builds side by side: an implementation named ``dlcore@<python>`` is dlcore as
that interpreter imports it (another checkout's venv), timed in the same alternating
rounds; its "vs" column is its time over this interpreter's dlcore.

    python bench/run.py --impls dlcore,dlcore@../base/.venv/bin/python --filter lstm/

Writes bench/results/<date>-<host>.json (machine, versions, every raw repeat) and, with
matplotlib installed, a bar chart of the speedups beside it.
"""

import argparse
import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import all_workloads  # noqa: E402

MODULE_OF = {"dlcore": "dlcore", "numpy": "numpy", "torch": "torch"}


def split_impl(impl):
    """'dlcore@/other/venv/bin/python' -> ('dlcore', that interpreter); else (impl, ours)."""
    name, _, python = impl.partition("@")
    return name, python or sys.executable


def python_says(code, env=None, python=None):
    out = subprocess.run(
        [python or sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    return out.stdout.strip() if out.returncode == 0 else None


def available(impl):
    name, python = split_impl(impl)
    return name in MODULE_OF and python_says(f"import {MODULE_OF[name]}", python=python) is not None


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
    return info


def measure_peak(threads):
    code = f"from dlcore import ops; print(max(ops.peak_gflops({threads}, 0.3) for _ in range(3)))"
    out = python_says(code, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    return float(out) if out else None


def run_worker(impl, threads, cases, repeats):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    payload = json.dumps([[c.suite, c.name, c.params] for c in cases])
    name, python = split_impl(impl)
    cmd = [
        python,
        os.path.join(HERE, "worker.py"),
        "--impl",
        name,
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


def fmt_time(s):
    if s >= 1:
        return f"{s:9.3f} s "
    return f"{s * 1e3:9.3f} ms" if s >= 1e-3 else f"{s * 1e6:9.1f} us"


def summarise(cases, impls, threads_list, raw, extra, peaks):
    rows = []
    for key, (_, case) in cases.items():
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
            row["speedup"] = {
                o: med[o] / med["dlcore"] for o in med if o != "dlcore" and "dlcore" in med
            }
            row["extra"] = {
                f"{i} {n}": statistics.median(v)
                for (i, t, k, n), v in sorted(extra.items())
                if t == threads and k == key
            }
            rows.append(row)
    return rows


def print_table(rows, impls):
    others = [i for i in impls if i != "dlcore"]
    wide = {i: max(13, len(i) + 2) for i in impls}
    vs = {o: max(10, len(o) + 5) for o in others}
    head = f"{'case':<34}{'thr':>4}" + "".join(f"{i:>{wide[i]}}" for i in impls)
    head += f"{'GFLOP/s':>9}{'% peak':>8}" + "".join(f"{'vs ' + o:>{vs[o]}}" for o in others)
    print(head)
    print("-" * len(head))
    for r in rows:
        med = r["median_seconds"]
        line = f"{r['case']:<34}{r['threads']:>4}"
        line += "".join(f"{fmt_time(med[i]) if i in med else '-':>{wide[i]}}" for i in impls)
        gf = r.get("dlcore_gflops")
        line += f"{gf:>9.1f}" if gf else f"{'':>9}"
        pk = r.get("percent_of_peak")
        line += f"{pk:>7.0f}%" if pk else f"{'':>8}"
        line += "".join(
            f"{r['speedup'][o]:>{vs[o] - 1}.2f}x" if o in r["speedup"] else f"{'-':>{vs[o]}}"
            for o in others
        )
        if r["extra"]:
            line += "   " + ", ".join(f"{k} {v:.4g}" for k, v in r["extra"].items())
        print(line)


def plot(rows, impls, path, title):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart; pip install 'dlcore[bench]')")
        return None
    others = [i for i in impls if i != "dlcore"]
    shown = [r for r in rows if r["speedup"]]
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
    p.add_argument("--threads", default=None, help="comma-separated thread counts (1,2)")
    p.add_argument("--rounds", type=int, default=None, help="rounds over the implementations")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per case per round")
    p.add_argument("--quick", action="store_true", help="a reduced set, under two minutes")
    p.add_argument("--impls", default="dlcore,numpy,torch")
    p.add_argument(
        "--out",
        default=os.path.join(HERE, "results"),
        help="directory for the JSON and the chart ('' for none)",
    )
    args = p.parse_args()

    threads_list = [int(t) for t in (args.threads or ("2" if args.quick else "1,2")).split(",")]
    rounds = args.rounds or (2 if args.quick else 5)
    repeats = 2 if args.quick and args.repeats == 3 else args.repeats
    wanted = [i for i in args.impls.split(",") if i]
    impls = [i for i in wanted if available(i)]
    for missing in sorted(set(wanted) - set(impls)):
        print(f"note: {missing} is not installed; its column is left out", file=sys.stderr)

    cases = {}
    for w in all_workloads():
        for c in w.cases(args.quick):
            if any(f in c.key for f in args.filter.split(",")):
                cases[c.key] = (w, c)
    if not cases:
        sys.exit(f"no case matches --filter {args.filter!r}")

    machine = machine_info()
    peaks = {t: measure_peak(t) for t in threads_list} if "dlcore" in impls else {}
    raw, extra = {}, {}  # (impl, threads, key) -> [seconds]; (impl, threads, key, name) -> [v]
    for threads in threads_list:
        for r in range(rounds):
            order = impls[r % len(impls) :] + impls[: r % len(impls)]
            for impl in order:
                mine = [c for w, c in cases.values() if split_impl(impl)[0] in w.IMPLS]
                if not mine:
                    continue
                for key, res in run_worker(impl, threads, mine, repeats).items():
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
    print_table(rows, impls)
    print(
        f"\nmedians of {rounds} rounds x {repeats} repeats; 'vs X' = X time / dlcore time "
        f"(> 1: dlcore faster); % peak of the measured FMA throughput at that thread count"
    )

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        stem = os.path.join(args.out, f"{datetime.date.today().isoformat()}-{socket.gethostname()}")
        doc = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "machine": machine,
            "peak_gflops": {str(t): v for t, v in peaks.items()},
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
        chart = plot(
            rows,
            impls,
            stem + ".png",
            f"dlcore speedups, {machine['cpu']} ({machine['cores']} cores), {doc['date'][:10]}",
        )
        print(f"wrote {stem}.json" + (f" and {chart}" if chart else ""))


if __name__ == "__main__":
    main()
