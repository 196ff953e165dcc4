"""Child process of tests/saving/test_keras_hostile.py: loads each file under an
address-space cap (so a reader that trusts a file fails here instead of exhausting the
machine) and prints, as JSON, how each attempt ended and how far its resident memory
rose above where it started.

    python _hostile_keras_worker.py '[["name", "load_model" | "load_weights", "/path"], ...]'
"""

import json
import resource
import sys

HEADROOM = 1 << 30  # address space allowed beyond what the imports took


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak():
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main():
    cases = json.loads(sys.argv[1])
    import h5py  # noqa: F401  (imported before the cap, as a loader would have it)

    from dlcore import layers, models

    def small():
        return models.Sequential([layers.Dense(3, input_shape=(2,)), layers.Dense(1)])

    run = {
        "load_model": models.load_model,
        "load_weights": lambda path: small().load_weights(path),
    }
    small()
    resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") + HEADROOM, resource.RLIM_INFINITY))
    results = {}
    for name, kind, path in cases:
        exact = reset_peak()
        before = status("VmRSS") if exact else status("VmHWM")
        try:
            run[kind](path)
            error, message = None, ""
        except BaseException as e:  # MemoryError included: that is a finding
            error, message = type(e).__name__, str(e)
        results[name] = {"error": error, "message": message[:500],
                         "rss_rise": status("VmHWM") - before}  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    main()
