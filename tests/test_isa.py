"""Instruction-set dispatch: the probe, the choice of level, DLCORE_ISA, build_info, and
every level this CPU can run agreeing with the others (python/dlcore/_isa.py)."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import dlcore
from dlcore import _core, _cpu, _isa

HERE = os.path.dirname(os.path.abspath(__file__))
X86_64 = _cpu.architecture == "x86_64"
BUILT = [name for name, _ in _isa.LEVELS]
RUNNABLE = [name for name in BUILT if not _isa.missing(name)]


def run_python(code, isa=None, timeout=300):
    env = dict(os.environ)
    env.pop(_isa.ENV, None)
    if isa is not None:
        env[_isa.ENV] = isa
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_build_info_is_a_dict_and_answers_a_call():
    info = dlcore.build_info
    assert isinstance(info, dict)
    assert info() is info
    assert info["isa_level"] == _core.build_info["arch"] == info["arch"]
    assert info["isa_levels_built"] == BUILT
    assert info["isa_level"] in info["isa_levels_runnable"]
    assert json.loads(json.dumps(info)) == dict(info)


def test_the_best_runnable_level_is_chosen_unless_forced():
    forced = os.environ.get(_isa.ENV, "auto")
    if forced in ("", "auto"):
        assert dlcore.build_info["isa_level"] == RUNNABLE[0]
        assert dlcore.build_info["isa_chosen"] == "the best level this CPU supports"
    else:
        assert dlcore.build_info["isa_level"] == forced


def test_levels_are_listed_best_first_with_the_platform_default():
    if X86_64:
        assert set(BUILT) <= {"avx512", "avx2", "baseline"}
        order = ["avx512", "avx2", "baseline"]
        assert BUILT == sorted(BUILT, key=order.index)
        # This CPU can run every level below one it can run.
        for hi, lo in zip(BUILT, BUILT[1:]):
            assert _isa.missing(hi) or not _isa.missing(lo), (hi, lo)
    else:
        assert BUILT == ["default"]
        assert _isa.LEVELS == [("default", ())]


@pytest.mark.skipif(not (X86_64 and sys.platform.startswith("linux")), reason="reads /proc/cpuinfo")
def test_probe_agrees_with_the_kernel():
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split(":")[1].split())
    probed = _cpu.features()
    names = {
        "sse4_2": "sse4_2",
        "ssse3": "ssse3",
        "popcnt": "popcnt",
        "avx": "avx",
        "avx2": "avx2",
        "fma": "fma",
        "avx512f": "avx512f",
        "avx512bw": "avx512bw",
    }
    for ours, linux in names.items():
        assert probed[ours] == (linux in flags), ours
    # Linux lists avx only when the OS saves the AVX state.
    assert probed["os_avx"] == ("avx" in flags)


def test_choice_with_a_cpu_lacking_features(monkeypatch):
    monkeypatch.setattr(
        _isa, "LEVELS", [("avx2", ("avx2", "fma", "os_avx")), ("baseline", ("sse4_2", "popcnt"))]
    )
    monkeypatch.setattr(
        _isa,
        "FEATURES",
        {"sse4_2": True, "popcnt": True, "avx2": True, "fma": True, "os_avx": False},
    )
    assert _isa.choose(None) == ("baseline", "the best level this CPU supports")
    assert _isa.choose("auto")[0] == "baseline"
    assert _isa.choose(" Baseline ") == ("baseline", "forced by DLCORE_ISA")
    with pytest.raises(
        ImportError,
        match=r"DLCORE_ISA='avx2': this CPU or its OS lacks "
        r"os_avx.*can run: baseline",
    ):
        _isa.choose("avx2")
    with pytest.raises(
        ImportError,
        match=r"DLCORE_ISA='avx512': this build of dlcore has "
        r"the levels avx2, baseline",
    ):
        _isa.choose("avx512")
    monkeypatch.setattr(_isa, "FEATURES", {"sse4_2": True})
    with pytest.raises(
        ImportError,
        match=r"lowest instruction-set level, 'baseline', "
        r"needs popcnt",
    ):
        _isa.choose(None)


def test_asking_for_a_level_this_build_lacks_is_a_clear_error():
    out = run_python("import dlcore", isa="avx512" if "avx512" not in BUILT else "nonesuch")
    assert out.returncode == 1, out.stderr  # an exception, not a signal
    assert "ImportError: DLCORE_ISA=" in out.stderr
    assert "this build of dlcore has the levels " + ", ".join(BUILT) in out.stderr


@pytest.mark.skipif(RUNNABLE == BUILT, reason="this CPU runs every level of this build")
def test_asking_for_a_level_this_cpu_lacks_is_a_clear_error():
    lacking = next(name for name in BUILT if name not in RUNNABLE)
    out = run_python("import dlcore", isa=lacking)
    assert out.returncode == 1, out.stderr
    assert f"DLCORE_ISA='{lacking}': this CPU or its OS lacks" in out.stderr


CASES = r"""
import json, sys
import numpy as np
import dlcore
from dlcore import ops
rng = np.random.default_rng(7)
a, b = rng.standard_normal((67, 45), np.float32), rng.standard_normal((45, 39), np.float32)
x = rng.standard_normal((2, 11, 10, 32), np.float32)
k = rng.standard_normal((3, 3, 32, 16), np.float32)
xs = rng.standard_normal((3, 7, 5), np.float32)
lk, lr = rng.standard_normal((5, 24), np.float32), rng.standard_normal((6, 24), np.float32)
out = {
    "level": dlcore.build_info()["isa_level"],
    "gemm": ops.gemm(a, b).tolist(),
    "conv": ops.conv2d_forward(x, k, padding=1).tolist(),
    "pool": ops.maxpool2d_forward(x)[0].tolist(),
    "lstm": ops.lstm_forward(xs, None, None, 0.3 * lk, 0.3 * lr, np.zeros(24, np.float32))[0].tolist(),
}
json.dump(out, sys.stdout)
"""


@pytest.mark.skipif(len(RUNNABLE) < 2, reason="this CPU runs one level only")
def test_every_runnable_level_gives_the_same_results():
    results = {}
    for level in RUNNABLE:
        out = run_python(CASES, isa=level)
        assert out.returncode == 0, out.stderr
        results[level] = json.loads(out.stdout)
        assert results[level]["level"] == level
    best = results[RUNNABLE[0]]
    for level in RUNNABLE[1:]:
        for family, tol in (("gemm", 1e-5), ("conv", 1e-5), ("pool", 0), ("lstm", 1e-5)):
            got, want = np.array(results[level][family]), np.array(best[family])
            np.testing.assert_allclose(
                got,
                want,
                rtol=tol,
                atol=tol * np.abs(want).max(),
                err_msg=f"{family}: {level} against {RUNNABLE[0]}",
            )


def test_show_config_reports_the_levels():
    out = subprocess.run(
        [sys.executable, "-m", "dlcore.show_config"], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(rf"^levels built +{', '.join(BUILT)}$", out, re.M), out
    assert re.search(rf"^level in use +{dlcore.build_info['isa_level']} \(", out, re.M), out
    as_json = subprocess.run(
        [sys.executable, "-m", "dlcore.show_config", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(as_json)["isa_level"] == dlcore.build_info["isa_level"]


QEMU = shutil.which("qemu-x86_64")
# NumPy's bundled OpenBLAS misreads the emulated CPU and runs AVX (Westmere) or FMA
# kernels under it (seen with NumPy 2.4.6: SIGILL in libscipy_openblas64 on `import
# numpy`); naming the core keeps it on SSE kernels. dlcore does not use OpenBLAS.
EMULATED_OPENBLAS_CORE = "Nehalem"


@pytest.mark.skipif(not (X86_64 and sys.platform.startswith("linux")), reason="x86-64 Linux")
@pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 is not installed (apt install qemu-user)")
def test_smoke_on_an_emulated_cpu_without_avx():
    """Westmere: SSE4.2 and POPCNT, no AVX. The avx2 level must not be chosen, and every
    kernel family and a few training steps must work at the level that is."""
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("the sanitizer runtimes do not run under the emulator")
    if not set(BUILT) - {"avx2", "avx512"}:
        pytest.skip(f"this build has only {BUILT}, no level a CPU without AVX runs "
                    f"(a DLCORE_ISA_LEVELS=host development build)")  # fmt: skip
    cmd = [
        QEMU,
        "-cpu",
        "Westmere",
        "-L",
        "/",
        sys.executable,
        os.path.join(HERE, "isa_smoke.py"),
        "--not-level",
        "avx2",
        "--not-level",
        "avx512",
    ]
    env = {k: v for k, v in os.environ.items() if k != _isa.ENV}
    env["OPENBLAS_CORETYPE"] = EMULATED_OPENBLAS_CORE
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "smoke: dlcore" in out.stdout and ", 0 failed" in out.stdout
    if "baseline" in BUILT:
        assert "level baseline" in out.stdout
