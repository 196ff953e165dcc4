"""Child process of test_hostile_files.py and saving/test_keras_hostile.py: opens each hostile file under an address-space
cap (so a reader that trusts a file fails here instead of exhausting the machine) and
prints, as JSON, how each attempt ended and how much its resident memory peaked above
where it started.

    python _hostile_worker.py '[["name", "load_model", "/path"], ...]'
"""

import json
import resource
import sys

HEADROOM = 1 << 30  # address space allowed beyond what the imports took


def status(field):
    """A /proc/self/status figure in bytes (VmRSS, VmHWM, VmSize)."""
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
    try:
        import h5py  # noqa: F401  (imported before the cap, as a Keras-file loader has it)
    except ImportError:
        pass
    from dlcore import layers, models, saving
    from dlcore.datasets import mnist

    def small_model():
        return models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])

    run = {
        "load_model": models.load_model,
        "load_weights": lambda path: small_model().load_weights(path),
        "read_checkpoint": saving.read_checkpoint,
        "read_idx": mnist.read_idx,
    }
    small_model()  # whatever a first model costs is not the file's doing
    limit = status("VmSize") + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    results = {}
    for name, kind, path in cases:
        exact = reset_peak()
        before = status("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            run[kind](path)
            error, message = None, ""
        except BaseException as e:  # MemoryError included: that is a finding
            error, message = e, str(e)
        if exact:
            grew = status("VmHWM") - before
        else:  # ru_maxrss (KiB) is the peak of the whole run: an upper bound
            grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
        results[name] = {
            "error": type(error).__name__ if error is not None else None,
            "value_error": isinstance(error, ValueError),
            "message": message[:400],
            "grew_mb": grew / 2**20,
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
