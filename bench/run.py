"""Side-by-side benchmark: dlcore against NumPy and PyTorch on the same machine.

Each implementation runs in a process of its own (their OpenMP pools would otherwise
compete for the cores), the implementations alternate over several rounds, and the
figures are medians over every repeat of every round.

    python bench/run.py                      # everything, 1 and 2 threads
    python bench/run.py --filter gemm --threads 2 --rounds 5
"""

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import all_workloads  # noqa: E402

# The machine's fp32 peak as specified (2 cores x 2 FMA pipes x 8 lanes x 2 flops x
# ~3.1 GHz); used only to express GFLOP/s as a share of what the hardware can do.
NOMINAL_PEAK_GFLOPS = 200.0


def available(impl):
    module = {"dlcore": "dlcore", "numpy": "numpy", "torch": "torch"}[impl]
    code = f"import {module}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def run_worker(impl, threads, cases, repeats):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    payload = json.dumps([[c.suite, c.name, c.params] for c in cases])
    cmd = [sys.executable, os.path.join(HERE, "worker.py"), "--impl", impl,
           "--threads", str(threads), "--repeats", str(repeats), payload]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{impl} worker failed:\n{out.stderr}")
    return json.loads(out.stdout)


def fmt_time(s):
    return f"{s * 1e3:9.3f} ms" if s >= 1e-3 else f"{s * 1e6:9.1f} us"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--filter", default="", help="only cases whose 'suite/name' contains this")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--rounds", type=int, default=5, help="rounds over the implementations")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per case per round")
    p.add_argument("--quick", action="store_true", help="a reduced set of cases")
    p.add_argument("--impls", default="dlcore,numpy,torch")
    p.add_argument("--json", help="also write every raw repeat to this file")
    args = p.parse_args()

    threads_list = [int(t) for t in args.threads.split(",")]
    wanted = [i for i in args.impls.split(",") if i]
    impls = [i for i in wanted if available(i)]
    for missing in sorted(set(wanted) - set(impls)):
        print(f"note: {missing} is not installed; its column is left out", file=sys.stderr)

    raw = {}  # (impl, threads, case key) -> [seconds]
    extra = {}  # (impl, threads, case key, name) -> [value per round], e.g. test accuracy
    cases = {}
    for w in all_workloads():
        for c in w.cases(args.quick):
            if args.filter in c.key:
                cases[c.key] = (w, c)
    if not cases:
        sys.exit(f"no case matches --filter {args.filter!r}")

    for threads in threads_list:
        for r in range(args.rounds):
            order = impls[r % len(impls):] + impls[: r % len(impls)]
            for impl in order:
                mine = [c for w, c in cases.values() if impl in w.IMPLS]
                if not mine:
                    continue
                for key, res in run_worker(impl, threads, mine, args.repeats).items():
                    raw.setdefault((impl, threads, key), []).extend(res["seconds"])
                    for name, value in res.get("extra", {}).items():
                        extra.setdefault((impl, threads, key, name), []).append(value)
            print(f"threads={threads} round {r + 1}/{args.rounds} done", file=sys.stderr)

    others = [i for i in impls if i != "dlcore"]
    head = f"{'case':<28}{'thr':>4}" + "".join(f"{i:>14}" for i in impls)
    head += f"{'dlcore GF/s':>13}{'% peak':>8}" + "".join(f"{'vs ' + o:>11}" for o in others)
    print(head)
    print("-" * len(head))
    for key, (w, c) in cases.items():
        for threads in threads_list:
            med = {i: statistics.median(raw[(i, threads, key)]) for i in impls
                   if (i, threads, key) in raw}
            line = f"{key:<28}{threads:>4}"
            line += "".join(f"{fmt_time(med[i]) if i in med else '-':>14}" for i in impls)
            if "dlcore" in med and c.flops:
                gf = c.flops / med["dlcore"] / 1e9
                line += f"{gf:>13.1f}{100 * gf / NOMINAL_PEAK_GFLOPS:>7.0f}%"
            else:
                line += f"{'':>13}{'':>8}"
            for o in others:
                ratio = med[o] / med["dlcore"] if o in med and "dlcore" in med else None
                line += f"{ratio:>10.2f}x" if ratio else f"{'-':>11}"
            notes = []
            for (i, t, k, name), values in sorted(extra.items()):
                if t == threads and k == key:
                    notes.append(f"{i} {name} {statistics.median(values):.4g}")
            print(line + ("   " + ", ".join(notes) if notes else ""))
    print(f"\nmedians of {args.rounds} rounds x {args.repeats} repeats; 'vs X' = X time / "
          f"dlcore time (> 1: dlcore faster); % peak of {NOMINAL_PEAK_GFLOPS:.0f} GFLOP/s")

    if args.json:
        doc = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "machine": platform.processor() or platform.machine(),
            "raw": [{"impl": i, "threads": t, "case": k, "seconds": v}
                    for (i, t, k), v in raw.items()],
            "extra": [{"impl": i, "threads": t, "case": k, "name": n, "values": v}
                      for (i, t, k, n), v in extra.items()],
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
